"""Spin's per-request values (spin-spec §3.4) and its /.well-known/spin/ answers (§3.2 step 2). Pure.

Source: spinframework/spin crates/trigger-http/src/headers.rs (compute_default_headers) and
server.rs (handle, app_info).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from tauon.app.routes import WELL_KNOWN_PREFIX, RouteMatch
from tauon.model.spinvalue import SpinValue

SERVICE_CHAINING_CLIENT = ("0.0.0.0", 0)
"""The client address Spin reports for service-chained requests."""


def _ascii_upper(text: str) -> str:
    # Rust's to_ascii_uppercase leaves non-ASCII letters alone; str.upper() would not.
    return "".join(chr(ord(c) - 32) if "a" <= c <= "z" else c for c in text)


def _value(key: str, wagi: str, value: str) -> SpinValue:
    """One value: SPIN_X_Y becomes header 'spin-x-y'; the WAGI name is given as is."""
    return SpinValue(header=key.replace("_", "-").lower(), wagi=wagi, value=value)


@functools.lru_cache(maxsize=4096)
def _route_values(normalized: str, raw: str, component: str) -> tuple[SpinValue, ...]:
    """The values fixed by the route, made once per route rather than for every request."""
    return (SpinValue("spin-matched-route", "X_MATCHED_ROUTE", normalized),
            SpinValue("spin-base-path", "X_BASE_PATH", "/"),
            SpinValue("spin-raw-component-route", "X_RAW_COMPONENT_ROUTE", raw),
            SpinValue("spin-component-route", "X_COMPONENT_ROUTE", component))


def format_client_addr(client: tuple[str, int]) -> str:
    """'ip:port' as Rust's SocketAddr prints it ('[v6]:port' for IPv6)."""
    host, port = client
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def spin_values(
    match: RouteMatch[Any],
    *,
    scheme: str,
    host: str | None,
    path_and_query: str,
    client: tuple[str, int],
) -> tuple[SpinValue, ...]:
    """The values in Spin's order. `host` is the Host header as received (None if absent)."""
    values = [
        SpinValue("spin-path-info", "PATH_INFO", match.path_info),
        SpinValue("spin-full-url", "X_FULL_URL", f"{scheme}://{host or 'localhost'}{path_and_query}"),
        *_route_values(match.normalized_route, match.raw_route, match.component_route),
        SpinValue("spin-client-addr", "X_CLIENT_ADDR", format_client_addr(client)),
    ]
    # Spin collects captures in a map, so a repeated name yields one value: the last capture.
    captures = dict(match.params)
    for name, value in captures.items():
        upper = _ascii_upper(name)
        values.append(_value(f"SPIN_PATH_MATCH_{upper}", f"X_PATH_MATCH_{upper}", value))
    return tuple(values)


def well_known_response(
    path: str,
    *,
    name: str,
    version: str | None,
    oci_image_digest: str | None,
) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """Spin's answer for a path under /.well-known/spin/ (checked before routing), else None.

    `path` is the raw request path without the query, compared exactly as Spin does.
    """
    if not path.startswith(WELL_KNOWN_PREFIX):
        return None
    rest = path[len(WELL_KNOWN_PREFIX) :]
    if rest == "health":
        return 200, [], b"OK"
    if rest == "info":
        info: dict[str, str] = {"name": name}
        if version is not None:
            info["version"] = version
        if oci_image_digest is not None:
            info["oci_image_digest"] = oci_image_digest
        # serde_json::to_vec_pretty: two-space indent, non-ASCII left as UTF-8.
        body = json.dumps(info, indent=2, ensure_ascii=False).encode()
        return 200, [("content-type", "application/json")], body
    return 404, [], b""
