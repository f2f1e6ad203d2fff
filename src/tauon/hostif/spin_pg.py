"""Spin outbound PostgreSQL (crates/factor-outbound-pg): fermyon:spin/postgres@2.0.0,
spin:postgres/postgres@3.0.0 and @4.0.0/@4.1.0 (resource `connection`, 4.1's `connection-builder`), the
sync functions of @4.2.0, and the unversioned v1 fermyon:spin/postgres (address per call).

Every call goes through the v4 shapes (`services/pg_types.py`), then is narrowed per version as Spin's
spin-world conversions narrow it: v3 keeps dates and times but reads the v4-only types as
`unsupported`, v2/v1 keep only the scalar types, and query errors become their text. The address is
checked against `allowed_outbound_hosts` (scheme `postgres`, every host of the connection string)
before any connection. The client side (pools, timeouts, TLS) is `services/postgres.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tauon import tracing
from tauon.hostif.netblock import refused
from tauon.hostif.registry import HostInterface, HostTrap
from tauon.hostif.spin_common import ConnectionHandle, Handle, Result, lookup, reserve, services_of
from tauon.hostif.state import HostState
from tauon.services.pg_address import PgError, parse_address
from tauon.wasm.component.codec import Frozen

if TYPE_CHECKING:  # psycopg is imported once an app opens a connection (45 ms of start-up)
    from tauon.services.postgres import PgClients, PgConnection

T = TypeVar("T")

_V3_TYPES = frozenset({"boolean", "int8", "int16", "int32", "int64", "floating32", "floating64", "str",
                       "binary", "date", "time", "datetime", "timestamp"})
_V2_TYPES = frozenset({"boolean", "int8", "int16", "int32", "int64", "floating32", "floating64", "str",
                       "binary"})
_UNSIGNED = frozenset({"uint8", "uint16", "uint32", "uint64"})
MAX_CONNECTIONS = 256
"""Open connections per request, as Spin's resource table."""


class PgHandle(ConnectionHandle["PgConnection"]):
    """A guest's connection: its pooled client goes back to the pool when the guest drops it."""

    kind = "pg-connection"

    def release(self) -> None:
        self.conn.release()


class Builder(Handle):
    """spin:postgres@4.1 `connection-builder`: an address and, optionally, a CA root to trust."""

    def __init__(self, address: str, counts: dict[str, int]) -> None:
        super().__init__(counts, "pg-builder")
        self.address = address
        self.root_ca: str | None = None


def pg_hosts(address: str) -> list[str]:
    """'host[:port]' for each host of a connection string, as Spin builds the URL it checks from the
    parsed config (the port at the host's index, else the only port). Raises PgError."""
    options = parse_address(address)
    hosts = options["host"].split(",")
    ports = options["_spin_ports"].split(",") if options["_spin_ports"] else []
    out = []
    for i, host in enumerate(hosts):
        port = ports[i] if i < len(ports) else (ports[0] if len(ports) == 1 else "")
        out.append(f"{host}:{port}" if port else host)
    return out


def _clients(state: HostState) -> PgClients:
    services = services_of(state)
    if services is None or services.postgres is None:
        raise PgError("other", "tauon has no outbound PostgreSQL client for this component")
    return services.postgres.get()


def check_allowed(address: str, allows: Callable[[str, str], bool] | None) -> None:
    """Spin's check: every host of the address, scheme postgres. Raises PgError (connection-failed)."""
    for host in pg_hosts(address):
        if allows is None or not allows(host, "postgres"):
            raise PgError("connection-failed", f"address postgres://{host} is not permitted")


def connect(state: HostState, address: str, root_ca: str | None = None) -> PgConnection:
    """Check the address, then take a connection from the app's pool. Raises PgError."""
    allowed = state.config.allowed_hosts
    check_allowed(address, allowed.allows if allowed is not None else None)
    for host in pg_hosts(address):
        if (reason := refused(state, host, "postgres", "PostgreSQL")) is not None:
            raise PgError("connection-failed", reason)
    before = state.before_block
    if before is not None:
        before()
    clients = _clients(state)
    with state.slot.blocked():
        return clients.acquire(address, state.deadline, root_ca)


def _open(state: HostState, address: str, root_ca: str | None = None) -> int:
    counts = reserve(state, "pg-connection", MAX_CONNECTIONS)
    if counts is None:
        raise PgError("connection-failed", "too many connections")
    try:
        conn = connect(state, address, root_ca)
    except BaseException:
        counts["pg-connection"] -= 1
        raise
    return state.table.push(PgHandle(conn, counts))


def _conn(state: HostState, rep: int) -> PgConnection:
    found = lookup(state, rep, PgHandle)
    if found is None:
        raise PgError("connection-failed", "no connection found")
    return found.conn


# -- narrowing v4 values for the older interfaces --------------------------------------------------------


def _v3_type(dtype: Any) -> Any:
    return dtype if isinstance(dtype, str) and dtype in _V3_TYPES else "other"


def _v3_value(value: Any) -> Any:
    if isinstance(value, str):
        return value  # db-null
    if value[0] in _V3_TYPES:
        return value
    return "unsupported"


def _v2_type(dtype: Any) -> Any:
    return dtype if isinstance(dtype, str) and dtype in _V2_TYPES else "other"


def _v2_value(value: Any) -> Any:
    if isinstance(value, str):
        return value
    return value if value[0] in _V2_TYPES else "unsupported"


def _row_set(result: tuple[list[Any], list[Any]], dtype: Callable[[Any], Any],
             value: Callable[[Any], Any]) -> tuple[Sequence[Any], list[Any]]:
    columns, rows = result
    return (Frozen((name, dtype(t)) for name, t in columns), [[value(v) for v in row] for row in rows])


def _text_error(exc: PgError) -> tuple[str, Any]:
    """v3/v2: query-failed carries only the text."""
    if exc.kind == "query-failed":
        kind, payload = exc.payload
        return ("query-failed", payload if kind == "text" else payload[0])
    return exc.variant()


def v2_params(params: Sequence[Any]) -> list[Any]:
    for p in params:
        if not isinstance(p, str) and p[0] in _UNSIGNED:
            raise PgError("value-conversion-failed", "Postgres does not support unsigned integers")
    return list(params)


def v1_row_set(result: tuple[list[Any], list[Any]]) -> tuple[Sequence[Any], list[Any]]:
    """v4 results in the v2 / unversioned rdbms types."""
    return _row_set(result, _v2_type, _v2_value)


# -- the interfaces ------------------------------------------------------------------------------------


def _guarded(op: Callable[..., Any], error: Callable[[PgError], Any]) -> Callable[..., Result]:
    def call(state: HostState, *args: Any) -> Result:
        try:
            return ("ok", op(state, *args))
        except PgError as exc:
            return ("err", error(exc))

    return call


def _lending(state: HostState, call: Callable[..., T], *args: Any) -> T:
    """`call(*args, deadline)` with the run slot lent: while it waits on the server, another guest
    may run (`SlotHold.lend`, not `blocked()`: its generator costs more than the lending)."""
    hold = state.slot
    lent = hold.lend()
    try:
        return call(*args, state.deadline)
    finally:
        hold.reclaim(lent)


def _query(state: HostState, rep: int, statement: str, params: Sequence[Any]) -> Any:
    return _lending(state, _conn(state, rep).query, statement, params)


def _execute(state: HostState, rep: int, statement: str, params: Sequence[Any]) -> int:
    return _lending(state, _conn(state, rep).execute, statement, params)


def _funcs(query: Callable[..., Any], execute: Callable[..., Any],
           error: Callable[[PgError], Any]) -> dict[str, Callable[..., Result]]:
    return {
        "[static]connection.open": _guarded(_open, error),
        "[method]connection.query": _guarded(query, error),
        "[method]connection.execute": _guarded(execute, error),
    }


def _v4_query(state: HostState, rep: int, statement: str, params: Sequence[Any]) -> Any:
    columns, rows = _query(state, rep, statement, params)
    # the same columns come back from every run of a statement: their lowering is kept
    return (Frozen(columns), rows)


V4_FUNCS = _funcs(_v4_query, _execute, PgError.variant)
V3_FUNCS = _funcs(lambda s, r, q, p: _row_set(_query(s, r, q, p), _v3_type, _v3_value), _execute, _text_error)
V2_FUNCS = _funcs(lambda s, r, q, p: _row_set(_query(s, r, q, v2_params(p)), _v2_type, _v2_value),
                  lambda s, r, q, p: _execute(s, r, q, v2_params(p)), _text_error)


def _builder_new(state: HostState, address: str) -> int:
    counts = reserve(state, "pg-builder")
    if counts is None:
        raise PgError("other", "out of builder table space")
    return state.table.push(Builder(address, counts))


def _set_ca_root(state: HostState, rep: int, certificate: str) -> None:
    if "-----BEGIN CERTIFICATE-----" not in certificate:
        raise PgError("other", "invalid root certificate: no PEM certificate found")
    state.table.get(rep, Builder).root_ca = certificate


def _build(state: HostState, rep: int) -> int:
    builder = state.table.get(rep, Builder)
    return _open(state, builder.address, builder.root_ca)


def _builder_constructor(state: HostState, address: str) -> int:
    result = _guarded(_builder_new, PgError.variant)(state, address)
    if result[0] == "err":  # the constructor cannot fail in WIT: Spin traps here too
        raise HostTrap(str(result[1][1]))
    return int(result[1])


V41_FUNCS: dict[str, Callable[..., Any]] = {
    **V4_FUNCS,
    "[constructor]connection-builder": _builder_constructor,
    "[method]connection-builder.set-ca-root": _guarded(_set_ca_root, PgError.variant),
    "[method]connection-builder.build": _guarded(_build, PgError.variant),
}


# -- v1: an address per call, a connection only for that call ------------------------------------------


def _v1_error(exc: PgError) -> tuple[str, Any]:
    kind, payload = _text_error(exc)
    return ("other-error" if kind == "other" else kind, payload)


def _v1(op: Callable[[PgConnection, str, list[Any], float], Any]) -> Callable[..., Result]:
    def call(state: HostState, address: str, statement: str, params: Sequence[Any]) -> Result:
        try:
            checked = v2_params(params)
            conn = connect(state, address)
            try:
                return ("ok", op(conn, statement, checked, state.deadline))
            finally:
                conn.release()
        except PgError as exc:
            return ("err", _v1_error(exc))

    return call


V1_FUNCS: dict[str, Callable[..., Result]] = {
    "query": _v1(lambda c, q, p, d: v1_row_set(c.query(q, p, d))),
    "execute": _v1(lambda c, q, p, d: c.execute(q, p, d)),
}


POSTGRES = {"db.system.name": "postgresql"}
"""Span attributes of this client's calls (OpenTelemetry semantic conventions)."""
POSTGRES_SPAN = "spin_outbound_pg.{}".format
"""Span names as Spin names them."""

INTERFACES = [
    HostInterface("fermyon:spin/postgres@2.0.0",
                  tracing.traced(V2_FUNCS, POSTGRES, POSTGRES_SPAN),
                  ("connection",), flat=True),
    HostInterface("spin:postgres/postgres@3.0.0",
                  tracing.traced(V3_FUNCS, POSTGRES, POSTGRES_SPAN),
                  ("connection",), flat=True),
    HostInterface("spin:postgres/postgres@4.0.0",
                  tracing.traced(V4_FUNCS, POSTGRES, POSTGRES_SPAN),
                  ("connection",), flat=True),
    HostInterface("spin:postgres/postgres@4.1.0", tracing.traced(V41_FUNCS, POSTGRES, POSTGRES_SPAN),
                  ("connection", "connection-builder"), flat=True),
    HostInterface("spin:postgres/postgres@4.2.0", tracing.traced(V41_FUNCS, POSTGRES, POSTGRES_SPAN),
                  ("connection", "connection-builder"), flat=True),
    HostInterface("fermyon:spin/postgres", tracing.traced(V1_FUNCS, POSTGRES, POSTGRES_SPAN),
                  flat=True),
]
