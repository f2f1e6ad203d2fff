"""`[outbound_http]` of a runtime config, as Spin's factor-outbound-http runtime_config/spin.rs reads
it: `connection_pooling` (a bool; note Spin's serde default makes it false when the table is there
without the key, true only without the table), `max_connections` (requests in flight per app), and
the deprecated `max_concurrent_requests` (n allows n + 1, as Spin keeps its old meaning; not both)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tauon.runtimeconfig.errors import RuntimeConfigError

_WHERE = "outbound_http"
_KEYS = ("connection_pooling", "max_connections", "max_concurrent_requests")


@dataclass(frozen=True, slots=True)
class OutboundHttp:
    pooling: bool = True
    limit: dict[str, int] = field(default_factory=dict)
    """{'http': n} when bounded."""


def outbound_http(value: Any) -> OutboundHttp:
    if value is None:
        return OutboundHttp()
    if not isinstance(value, dict):
        raise RuntimeConfigError("must be a table", where=_WHERE, hint="[outbound_http] max_connections = 16")
    unknown = sorted(set(value) - set(_KEYS))
    if unknown:
        raise RuntimeConfigError(f"unknown key(s) {', '.join(map(repr, unknown))}", where=_WHERE,
                                 hint=f"this table takes {', '.join(_KEYS)}")
    pooling = value.get("connection_pooling", False)
    if not isinstance(pooling, bool):
        raise RuntimeConfigError(f"must be true or false, got {pooling!r}",
                                 where=f"{_WHERE}.connection_pooling")
    if "max_connections" in value and "max_concurrent_requests" in value:
        raise RuntimeConfigError("and max_concurrent_requests are both set",
                                 where=f"{_WHERE}.max_connections",
                                 hint="use max_connections only (max_concurrent_requests is deprecated)")
    limit = None
    for key, extra in (("max_connections", 0), ("max_concurrent_requests", 1)):
        n = value.get(key)
        if n is None:
            continue
        if isinstance(n, bool) or not isinstance(n, int) or n < 1 - extra:
            raise RuntimeConfigError(f"must be a whole number >= {1 - extra}, got {n!r}",
                                     where=f"{_WHERE}.{key}",
                                     hint="to allow no requests, remove allowed_outbound_hosts entries")
        limit = n + extra
    return OutboundHttp(pooling=pooling, limit={"http": limit} if limit is not None else {})
