"""What the outbound host interfaces (Redis, MQTT) share: the `allowed_outbound_hosts` check, the
generation's clients, and log lines that never carry credentials."""

from __future__ import annotations

from tauon.hostif.state import HostState
from tauon.outbound import OutboundServices
from tauon.outbound.limits import OutboundError, public_address

NO_OUTBOUND = "tauon has no outbound clients configured for this component"


def allowed(state: HostState, address: str, scheme: str, what: str) -> bool:
    """Spin's check before any connection: the address (a URL, or `host[:port]` read as
    `<scheme>://…`) must match an entry of the component's `allowed_outbound_hosts`."""
    hosts = state.config.allowed_hosts
    if hosts is not None and hosts.allows(address, scheme):
        return True
    state.config.logger.info("%s: outbound %s connection to %s denied by allowed_outbound_hosts",
                             state.config.label, what, public_address(address))
    return False


def clients(state: HostState) -> OutboundServices:
    """The generation's outbound clients. Raises OutboundError('other') when there are none."""
    services = state.config.services
    if services is None or services.outbound is None:
        raise OutboundError("other", NO_OUTBOUND)
    return services.outbound


def log_failure(state: HostState, what: str, address: str, exc: OutboundError) -> None:
    """A failed connection or call, at info (as Spin traces them); the texts name host and port only."""
    state.config.logger.info("%s: outbound %s to %s failed: %s", state.config.label, what,
                             public_address(address), exc.message or exc.kind)
