"""The runtime config's `block_networks` for the outbound clients whose libraries connect by name
(Redis, MQTT, PostgreSQL, MySQL): after `allowed_outbound_hosts` allows the address, its host is
resolved and the connection is refused if every address is blocked (as Spin's Redis client's DNS
resolver does). The library then resolves the name again itself: for a host name (not an IP
literal) whose DNS answer changes between the two lookups, the second answer is not checked; outbound
HTTP and sockets connect to exactly the addresses checked."""

from __future__ import annotations

from tauon.app.hosts import default_port, split_url
from tauon.hostif.state import HostState
from tauon.runtimeconfig.networks import BlockedNetworks, DestinationBlocked, IpAddress
from tauon.wasm.slots import SlotHold


def blocked_reason(networks: BlockedNetworks, address: str, scheme: str,
                   hold: SlotHold | None = None) -> str | None:
    """Why a connection to `address` (a URL, or `host[:port]` read as `<scheme>://...`) is refused by
    block_networks, or None (nothing blocked, or the name does not resolve: the client says so).
    `hold`: the guest's run slot, lent while the name resolves (None: a caller without one keeps it)."""
    if networks.empty:
        return None
    parts = split_url(address if "://" in address else f"{scheme}://{address}")
    if parts is None or not parts[1]:
        return None  # not a network address (a Unix socket path): nothing to resolve
    port = parts[2] if parts[2] is not None else default_port(scheme) or 0
    try:
        if hold is None:
            networks.check(parts[1], port)
        else:
            with hold.blocked():
                networks.check(parts[1], port)
    except DestinationBlocked as exc:
        return str(exc)
    except (OSError, UnicodeError):
        return None
    return None


def refused(state: HostState, address: str, scheme: str, what: str) -> str | None:
    """blocked_reason for the component's block_networks, logged (host and port only)."""
    services = state.config.services
    if services is None:
        return None
    reason = blocked_reason(services.blocked_networks, address, scheme, state.slot)
    if reason is not None:
        state.config.logger.info("%s: outbound %s connection refused: %s", state.config.label, what, reason)
    return reason


def socket_refused(state: HostState, ip: IpAddress, port: int) -> bool:
    """A socket address in block_networks (Spin's outbound_socket_addr_check, after allowed hosts)."""
    services = state.config.services
    if services is None or not services.blocked_networks.is_blocked(ip):
        return False
    state.config.logger.info("%s: socket address %s port %d refused: destination IP prohibited by the "
                             "runtime config", state.config.label, ip, port)
    return True
