"""Outbound HTTP from one request holds a bounded number of threads, and denial logs hide credentials."""

from __future__ import annotations

import logging

from tauon.hostif import http_out
from tauon.hostif.state import HostConfig, HostState


def state() -> HostState:
    return HostState(HostConfig(label="app.json/web", logger=logging.getLogger("t")), timeout=30)


def test_in_flight_outbound_requests_are_bounded_per_request() -> None:
    """One request once started 16,352 threads, each waiting on a remote that did not answer."""
    s = state()
    releases = [http_out._take_slot(s) for _ in range(http_out.PER_REQUEST)]
    assert all(r is not None for r in releases)
    assert http_out._take_slot(s) is None  # the 65th waits for none of them: it is refused
    other = http_out._take_slot(state())
    assert other is not None  # another request has its own share
    other()
    releases[0]()  # type: ignore[misc]
    again = http_out._take_slot(s)
    assert again is not None
    for release in [*releases[1:], again]:
        release()  # type: ignore[misc]


def test_denied_urls_are_logged_without_credentials_or_query() -> None:
    assert http_out.loggable_url("https://user:s3cret@evil.example:8443/p?token=x") == \
        "https://evil.example:8443/p"
    assert http_out.loggable_url("http://a@b@host/x") == "http://host/x"
    assert http_out.loggable_url("http://host") == "http://host"
