"""Spin outbound MySQL (crates/factor-outbound-mysql): fermyon:spin/mysql@2.0.0 (resource `connection`)
and the unversioned v1 fermyon:spin/mysql (address per call). spin:mysql/mysql@3.0.0 is component-model
async, which this host cannot call, so it is not provided.

The whole address is checked against `allowed_outbound_hosts` (scheme `mysql`) before connecting; a
denied one gets Spin's `connection-failed("address … is not permitted")`, the address as the guest
gave it (Spin returns it; tauon never logs it). The client side is `services/mysql.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tauon import tracing
from tauon.hostif.netblock import refused
from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_common import ConnectionHandle, Result, lookup, reserve, services_of
from tauon.hostif.state import HostState
from tauon.services.mysql import MysqlClients, MysqlConnection, MysqlError

MAX_CONNECTIONS = 256
"""Open connections per request, as Spin's resource table."""


class MysqlHandle(ConnectionHandle[MysqlConnection]):
    kind = "mysql-connection"

    def release(self) -> None:
        self.conn.close()


def _clients(state: HostState) -> MysqlClients:
    services = services_of(state)
    if services is None or services.mysql is None:
        raise MysqlError("other", "tauon has no outbound MySQL client for this component")
    return services.mysql


def connect(state: HostState, address: str) -> MysqlConnection:
    """Check the address, then connect. Raises MysqlError."""
    allowed = state.config.allowed_hosts
    if allowed is None or not allowed.allows(address, "mysql"):
        raise MysqlError("connection-failed", f"address {address} is not permitted")
    if (reason := refused(state, address, "mysql", "MySQL")) is not None:
        raise MysqlError("connection-failed", reason)
    before = state.before_block
    if before is not None:
        before()
    clients = _clients(state)
    with state.slot.blocked():
        return clients.connect(address, state.deadline)


def _open(state: HostState, address: str) -> int:
    counts = reserve(state, "mysql-connection", MAX_CONNECTIONS)
    if counts is None:
        raise MysqlError("connection-failed", "too many connections")
    try:
        conn = connect(state, address)
    except BaseException:
        counts["mysql-connection"] -= 1
        raise
    return state.table.push(MysqlHandle(conn, counts))


def _conn(state: HostState, rep: int) -> MysqlConnection:
    found = lookup(state, rep, MysqlHandle)
    if found is None:
        raise MysqlError("connection-failed", "no connection found")
    return found.conn


def _guarded(op: Callable[..., Any]) -> Callable[..., Result]:
    def call(state: HostState, *args: Any) -> Result:
        try:
            return ("ok", op(state, *args))
        except MysqlError as exc:
            return ("err", exc.variant())

    return call


def _query(state: HostState, rep: int, statement: str, params: Sequence[Any]) -> Any:
    conn = _conn(state, rep)
    with state.slot.blocked():  # waiting on the server: another guest may run meanwhile
        return conn.query(statement, params, state.deadline)


def _execute(state: HostState, rep: int, statement: str, params: Sequence[Any]) -> None:
    conn = _conn(state, rep)
    with state.slot.blocked():
        conn.execute(statement, params, state.deadline)


V2_FUNCS: dict[str, Callable[..., Result]] = {
    "[static]connection.open": _guarded(_open),
    "[method]connection.query": _guarded(_query),
    "[method]connection.execute": _guarded(_execute),
}


def _v1(op: Callable[[MysqlConnection, str, Sequence[Any], float], Any]) -> Callable[..., Result]:
    """v1: a connection for this one call; errors as `mysql-error` (other -> other-error)."""

    def call(state: HostState, address: str, statement: str, params: Sequence[Any]) -> Result:
        try:
            conn = connect(state, address)
            try:
                return ("ok", op(conn, statement, params, state.deadline))
            finally:
                conn.close()
        except MysqlError as exc:
            return ("err", ("other-error" if exc.kind == "other" else exc.kind, exc.text))

    return call


V1_FUNCS: dict[str, Callable[..., Result]] = {
    "query": _v1(lambda c, q, p, d: c.query(q, p, d)),
    "execute": _v1(lambda c, q, p, d: c.execute(q, p, d)),
}

MYSQL = {"db.system.name": "mysql"}
"""Span attributes of this client's calls (OpenTelemetry semantic conventions)."""
MYSQL_SPAN = "spin_outbound_mysql.{}".format
"""Span names as Spin names them."""

INTERFACES = [
    HostInterface("fermyon:spin/mysql@2.0.0", tracing.traced(V2_FUNCS, MYSQL, MYSQL_SPAN), ("connection",)),
    HostInterface("fermyon:spin/mysql", tracing.traced(V1_FUNCS, MYSQL, MYSQL_SPAN)),
]
