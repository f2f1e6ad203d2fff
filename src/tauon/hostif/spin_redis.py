"""Outbound Redis for components: fermyon:spin/redis@2.0.0 (resource `connection`) and the unversioned v1
fermyon:spin/redis (the address in every call), as Spin's crates/factor-outbound-redis maps them.

`open` checks `allowed_outbound_hosts` (scheme `redis`, default port 6379) before any connection: a
denied address is `invalid-address`, as in Spin. The client side is tauon.outbound.redis_client. v1 calls
open a connection per call, as Spin's do, and answer every failure with the bare `error`.
spin:redis/redis@3.0.0 is component-model async, which this host cannot call: not provided.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tauon import tracing
from tauon.hostif.netblock import refused
from tauon.hostif.outbound_common import allowed, clients, log_failure
from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_common import ConnectionHandle, Result, reserve
from tauon.hostif.state import HostState
from tauon.outbound.limits import OutboundError

if TYPE_CHECKING:  # redis-py loads on first use (tauon.outbound)
    from tauon.outbound.redis_client import RedisConnection  # noqa: F401  (a string below)

_KIND = "redis-connection"
_PLAIN = frozenset({"invalid-address", "too-many-connections", "type-error"})


class OpenConnection(ConnectionHandle["RedisConnection"]):  # the client loads lazily
    """A guest's connection: closed when the guest drops it or the request ends."""

    kind = _KIND

    def release(self) -> None:
        self.conn.close()


def _error(exc: OutboundError) -> Result:
    return ("err", exc.kind if exc.kind in _PLAIN else ("other", exc.message or exc.kind))


def _open(state: HostState, address: str) -> Result:
    if not allowed(state, address, "redis", "Redis"):
        return ("err", "invalid-address")
    if (reason := refused(state, address, "redis", "Redis")) is not None:
        return ("err", ("other", reason))
    try:
        with state.slot.blocked():  # connecting waits on the network: another guest may run
            conn = clients(state).redis.open(address, state.deadline)
    except OutboundError as exc:
        log_failure(state, "Redis connection", address, exc)
        return _error(exc)
    counts = reserve(state, _KIND)
    if counts is None:  # the request's own handle table is full
        conn.close()
        return ("err", "too-many-connections")
    return ("ok", state.table.push(OpenConnection(conn, counts)))


def _method(name: str) -> Callable[..., Result]:
    """A connection method as `result<T, error>`: RedisConnection.<name>(deadline, *args)."""

    def call(state: HostState, rep: int, *args: Any) -> Result:
        conn = state.table.get(rep, OpenConnection).conn
        try:
            with state.slot.blocked():  # waiting on the server: another guest may run meanwhile
                return ("ok", getattr(conn, name)(state.deadline, *args))
        except OutboundError as exc:
            return _error(exc)

    return call


V2_FUNCS: dict[str, Callable[..., Result]] = {
    "[static]connection.open": _open,
    "[method]connection.publish": _method("publish"),
    "[method]connection.get": _method("get"),
    "[method]connection.set": _method("set"),
    "[method]connection.incr": _method("incr"),
    "[method]connection.del": _method("delete"),
    "[method]connection.sadd": _method("sadd"),
    "[method]connection.smembers": _method("smembers"),
    "[method]connection.srem": _method("srem"),
    "[method]connection.execute": _method("execute"),
}


def _v1(name: str, convert: Callable[[Any], Any] = lambda value: value) -> Callable[..., Result]:
    """A v1 call: check, connect, run RedisConnection.<name>, close; any failure is the bare `error`."""

    def call(state: HostState, address: str, *args: Any) -> Result:
        if not allowed(state, address, "redis", "Redis"):
            return ("err", "error")
        try:
            with state.slot.blocked(), clients(state).redis.connection(address, state.deadline) as conn:
                return ("ok", convert(getattr(conn, name)(state.deadline, *args)))
        except OutboundError as exc:
            log_failure(state, "Redis call", address, exc)
            return ("err", "error")

    return call


V1_FUNCS: dict[str, Callable[..., Result]] = {
    "publish": _v1("publish"),
    "get": _v1("get", lambda value: value if value is not None else b""),
    "set": _v1("set"),
    "incr": _v1("incr"),
    "del": _v1("delete"),
    "sadd": _v1("sadd"),
    "smembers": _v1("smembers"),
    "srem": _v1("srem"),
    "execute": _v1("execute"),
}

REDIS = {"db.system.name": "redis"}
"""Span attributes of this client's calls (OpenTelemetry semantic conventions)."""
REDIS_SPAN = str.upper
"""Span names as Spin names them."""

INTERFACES = [
    HostInterface("fermyon:spin/redis@2.0.0", tracing.traced(V2_FUNCS, REDIS, REDIS_SPAN), ("connection",)),
    HostInterface("fermyon:spin/redis", tracing.traced(V1_FUNCS, REDIS, REDIS_SPAN)),
]
