"""PostgreSQL addresses as guests give them (URL or key=value), checked and turned into the libpq
options tauon connects with (services/postgres.py), and the error every PostgreSQL call raises."""

from __future__ import annotations

import functools
from typing import Any

_OPTIONS = frozenset({
    "host", "port", "user", "password", "dbname", "options", "application_name", "sslmode",
    "connect_timeout", "keepalives", "keepalives_idle", "target_session_attrs", "channel_binding",
    "load_balance_hosts",
})
"""The connection options tokio-postgres accepts, less `hostaddr` (it would connect somewhere other than
the host the allow-list checked); libpq's others read host files or change the transport."""
_NO_PASSFILE = "/proc/self/tauon-no-pgpass"
"""A path that cannot exist: libpq must not read ~/.pgpass for a guest."""
_SSLMODES = frozenset({"disable", "prefer", "require"})


class PgError(Exception):
    """A failed call, as the v4 `error` variant: kind plus payload (a string, or for query-failed a
    v4 `query-error`)."""

    def __init__(self, kind: str, payload: Any) -> None:
        super().__init__(kind, payload)
        self.kind = kind
        self.payload = payload

    def variant(self) -> tuple[str, Any]:
        return (self.kind, self.payload)


def connection_failed(text: str) -> PgError:
    return PgError("connection-failed", text)


def parse_address(address: str) -> dict[str, str]:
    """The libpq options to connect to `address` (URL or key=value). Raises PgError (connection-failed)."""
    return dict(_parsed(address))


@functools.lru_cache(maxsize=256)
def _parsed(address: str) -> tuple[tuple[str, str], ...]:
    """parse_address's work, kept: every guest request opens its connection by the same address, and
    parsing it cost about as much as a point select. Failures are not kept (lru_cache keeps no raise)."""
    import psycopg  # here: psycopg is imported only once an app reaches PostgreSQL (45 ms)
    from psycopg.conninfo import conninfo_to_dict

    try:
        given = {k: str(v) for k, v in conninfo_to_dict(address).items()}
    except psycopg.ProgrammingError as exc:
        raise connection_failed(f"invalid connection string: {exc}") from None
    unknown = sorted(set(given) - _OPTIONS)
    if unknown:
        raise connection_failed(f"invalid connection string: unknown option `{unknown[0]}`")
    hosts = given.get("host", "")
    if not hosts:
        raise connection_failed("invalid connection string: host missing")
    if any(h.startswith("/") or h.startswith("@") for h in hosts.split(",")):
        raise connection_failed("Unix sockets are not supported on WebAssembly")
    if not given.get("user"):
        raise connection_failed("invalid connection string: user missing")
    sslmode = given.pop("sslmode", "prefer")
    if sslmode not in _SSLMODES:
        raise connection_failed(f"invalid connection string: invalid value for option `sslmode`: {sslmode}")
    # Everything libpq would otherwise read from tauon's environment or from files, set explicitly.
    options = {"port": "5432", "dbname": given["user"], "password": "", "passfile": _NO_PASSFILE,
               "sslcertmode": "disable", "gssencmode": "disable", "sslnegotiation":
               "postgres", "sslrootcert": "system", "client_encoding": "UTF8", **given}
    if sslmode == "disable":
        options["sslmode"] = "disable"
        del options["sslrootcert"]
    else:
        options["sslmode"] = "verify-full"
    options["_spin_sslmode"] = sslmode
    options["_spin_ports"] = given.get("port", "")  # what the allow-list check sees (no default port)
    return tuple(options.items())
