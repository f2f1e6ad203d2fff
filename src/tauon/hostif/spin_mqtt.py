"""Outbound MQTT for components: fermyon:spin/mqtt@2.0.0 (resource `connection`), as Spin's
crates/factor-outbound-mqtt maps it.

`open` checks `allowed_outbound_hosts` (scheme `mqtt`, default port 1883) first: a denied address is
`connection-failed("address <address> is not permitted")`, Spin's text (the address as the guest gave
it; it is never logged). The client side is tauon.outbound.mqtt_client: `open` only parses, the first
`publish` connects. spin:mqtt/mqtt@3.0.0 is component-model async, which this host cannot call: not
provided.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tauon import tracing
from tauon.hostif.netblock import refused
from tauon.hostif.outbound_common import allowed, clients, log_failure
from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_common import ConnectionHandle, Result, reserve
from tauon.hostif.state import HostState
from tauon.outbound.limits import OutboundError

if TYPE_CHECKING:  # paho loads on first use (tauon.outbound)
    from tauon.outbound.mqtt_client import MqttConnection  # noqa: F401  (a string below)

_KIND = "mqtt-connection"
_PLAIN = frozenset({"invalid-address", "too-many-connections"})
MAX_KEEP_ALIVE = 0xFFFF
"""MQTT's keep-alive field is 16 bits of seconds."""


class OpenConnection(ConnectionHandle["MqttConnection"]):  # the client loads lazily
    kind = _KIND

    def release(self) -> None:
        self.conn.close()


def _error(exc: OutboundError) -> Result:
    return ("err", exc.kind if exc.kind in _PLAIN else (exc.kind, exc.message or exc.kind))


def _open(state: HostState, address: str, username: str, password: str, keep_alive: int) -> Result:
    if not allowed(state, address, "mqtt", "MQTT"):
        return ("err", ("connection-failed", f"address {address} is not permitted"))
    if (reason := refused(state, address, "mqtt", "MQTT")) is not None:
        return ("err", ("connection-failed", reason))
    try:
        with state.slot.blocked():
            conn = clients(state).mqtt.open(address, username, password,
                                            min(keep_alive, MAX_KEEP_ALIVE), state.deadline)
    except OutboundError as exc:
        log_failure(state, "MQTT connection", address, exc)
        return _error(exc)
    counts = reserve(state, _KIND)
    if counts is None:
        conn.close()
        return ("err", "too-many-connections")
    return ("ok", state.table.push(OpenConnection(conn, counts)))


def _publish(state: HostState, rep: int, topic: str, payload: bytes, qos: str) -> Result:
    conn = state.table.get(rep, OpenConnection).conn
    try:
        with state.slot.blocked():  # connecting and the broker's acknowledgement: another guest may run
            conn.publish(state.deadline, topic, payload, qos)
    except OutboundError as exc:
        state.config.logger.info("%s: outbound MQTT publish to %s failed: %s", state.config.label,
                                 conn.target.where, exc.message or exc.kind)
        return _error(exc)
    return ("ok", None)


FUNCS: dict[str, Callable[..., Result]] = {
    "[static]connection.open": _open,
    "[method]connection.publish": _publish,
}

MQTT = {"messaging.system": "mqtt"}
"""Span attributes of this client's calls (OpenTelemetry semantic conventions)."""
MQTT_SPAN = "spin_outbound_mqtt.{}".format
"""Span names as Spin names them."""

INTERFACES = [HostInterface("fermyon:spin/mqtt@2.0.0",
                            tracing.traced(FUNCS, MQTT, MQTT_SPAN, kind="producer"),
                            ("connection",))]
