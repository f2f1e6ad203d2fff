"""Building the `RoutedRequest` an executor gets, for a request from the listener (switchboard.py) or a
chained one (chaining.py): one place computes Spin's per-request values from the match."""

from __future__ import annotations

from typing import Any

from tauon.app.routes import RouteMatch
from tauon.app.spinvalues import spin_values
from tauon.executors.base import RoutedRequest


def routed_request(match: RouteMatch[Any], *, method: str, path: str, query: str,
                   headers: tuple[tuple[str, str], ...], scheme: str, authority: str,
                   client: tuple[str, int], http_version: str = "1.1",
                   path_and_query: str | None = None,
                   trailers: list[tuple[bytes, bytes]] | None = None,
                   accepts_trailers: bool = False) -> RoutedRequest:
    """`path_and_query`: the request target as the client wrote it (default: `path` and `?query` when
    there is one), which Spin's full-URL value uses."""
    if path_and_query is None:
        path_and_query = path + (f"?{query}" if query else "")
    return RoutedRequest(
        method=method, path=path, query=query, headers=headers,
        spin_values=spin_values(match, scheme=scheme, host=authority, path_and_query=path_and_query,
                                client=client),
        scheme=scheme, authority=authority, client=client, http_version=http_version, match=match,
        trailers=trailers, accepts_trailers=accepts_trailers)
