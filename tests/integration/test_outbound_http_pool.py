"""Outbound HTTP (hostif/http_out.py) against a real loopback upstream: keep-alive pooling, its bounds,
and which timeout governs a slow upstream.

These drive the host functions a guest calls (`outgoing-handler.handle`, then reading the response
body to its end) from the test thread, with real HostState, real HTTP client and real server; the
guest itself is left out so each case controls the request options exactly. The daemon-level tests
(test_daemon_outbound_http.py) run the same paths from a real guest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from support.servers.upstream import CountingUpstream, counting_upstream
from tauon.app.allowed_hosts import parse_allowed_hosts
from tauon.hostif.http import Fields, OutgoingRequest, RequestOptions
from tauon.hostif.http_out import FutureIncomingResponse, future_get, handle
from tauon.hostif.http_pool import MAX_IDLE_PER_ORIGIN, HttpPool
from tauon.hostif.io import PipeInput
from tauon.hostif.pipe import BytePipe
from tauon.hostif.spin_http import send_request
from tauon.hostif.state import HostConfig, HostState

pytestmark = pytest.mark.integration

NS = 1_000_000_000


@pytest.fixture
def upstream() -> Iterator[CountingUpstream]:
    with counting_upstream() as server:
        yield server


def _config(port: int, pool: HttpPool | None, outbound_timeout: float = 30.0) -> HostConfig:
    return HostConfig(label="test/outbound", logger=logging.getLogger("test.outbound"),
                      allowed_hosts=parse_allowed_hosts([f"http://127.0.0.1:{port}"]),
                      outbound_timeout=outbound_timeout, http_pool=pool)


def _get(config: HostConfig, port: int, path: str = "/", *, timeout: float = 10.0,
         options: dict[str, int | None] | None = None) -> tuple[str, object]:
    """One request as a guest makes it: ('ok', (status, body)) or ('err', error-code)."""
    state = HostState(config, timeout=timeout)
    cond = state.cond
    request = OutgoingRequest(Fields([]), BytePipe(cond), scheme=("http", None),
                              authority=f"127.0.0.1:{port}", path_with_query=path)
    req_rep = state.table.push(request)
    opt_rep = state.table.push(RequestOptions(dict(options or {})))
    accepted = handle(state, req_rep, opt_rep)
    assert accepted[0] == "ok", accepted
    future = state.table.get(accepted[1], FutureIncomingResponse)
    state.wait_until(future.ready, "test")
    outcome = future_get(state, accepted[1])
    assert outcome is not None and outcome[0] == "ok"
    if outcome[1][0] == "err":
        return ("err", outcome[1][1])
    response = state.table.get(outcome[1][1], object)  # IncomingResponse
    assert response.body is not None  # type: ignore[attr-defined]
    body = PipeInput(response.body.pipe)  # type: ignore[attr-defined]
    data = bytearray()
    while True:
        state.wait_until(body.readable, "test body")
        chunk = body.take(1 << 16)
        if chunk is None:
            break
        data += chunk
    state.finish()
    return ("ok", (response.status, bytes(data)))  # type: ignore[attr-defined]


def test_sequential_requests_share_one_connection(upstream: CountingUpstream) -> None:
    pool = HttpPool(enabled=True)
    config = _config(upstream.port, pool)
    for i in range(20):
        assert _get(config, upstream.port, f"/n{i}") == ("ok", (200, f"upstream saw /n{i}".encode()))
    assert (upstream.requests, upstream.connections, pool.created) == (20, 1, 1)
    pool.close()
    upstream.wait_open(0)  # retiring the generation closes the idle connection


def test_without_pooling_each_request_connects(upstream: CountingUpstream) -> None:
    pool = HttpPool(enabled=False)
    config = _config(upstream.port, pool)
    for i in range(5):
        assert _get(config, upstream.port, f"/n{i}")[0] == "ok"
    assert upstream.connections == 5
    upstream.wait_open(0)


def test_idle_connections_are_bounded(upstream: CountingUpstream) -> None:
    """More concurrent requests than the per-origin bound: the extra connections are closed."""
    pool = HttpPool(enabled=True)
    config = _config(upstream.port, pool)
    upstream.delay = 0.5  # keeps them in flight together
    results: list[tuple[str, object]] = []
    threads = [threading.Thread(target=lambda: results.append(_get(config, upstream.port)))
               for _ in range(MAX_IDLE_PER_ORIGIN + 8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r[0] == "ok" for r in results) and len(results) == MAX_IDLE_PER_ORIGIN + 8
    assert pool.idle_count() == MAX_IDLE_PER_ORIGIN
    upstream.wait_open(MAX_IDLE_PER_ORIGIN)
    pool.close()
    upstream.wait_open(0)


def test_a_connection_the_server_closed_is_not_reused(upstream: CountingUpstream) -> None:
    upstream.drop_idle = True
    pool = HttpPool(enabled=True)
    config = _config(upstream.port, pool)
    for i in range(5):
        assert _get(config, upstream.port, f"/n{i}") == ("ok", (200, f"upstream saw /n{i}".encode()))
        upstream.wait_open(0)  # the server has closed its end before the next request
    assert upstream.connections == 5


def test_the_request_timeout_governs_a_slow_upstream() -> None:
    """An upstream answering after 3 s, with the app's request timeout at 10 s and no options from
    the guest: it answers. (tauon used to wait min(30 s, request timeout) by default, and answered
    `connection-timeout` to a 35 s upstream under a 120 s request timeout; here that default is
    scaled down to 1 s: `outbound_timeout` no longer cuts the wait short.)"""
    with counting_upstream(delay=3.0) as upstream:
        config = _config(upstream.port, HttpPool(enabled=True), outbound_timeout=1.0)
        start = time.monotonic()
        assert _get(config, upstream.port, "/slow", timeout=10.0) == ("ok", (200, b"upstream saw /slow"))
        assert 2.9 < time.monotonic() - start < 9


def test_the_guests_first_byte_timeout_is_honoured() -> None:
    with counting_upstream(delay=3.0) as upstream:
        config = _config(upstream.port, HttpPool(enabled=True))
        start = time.monotonic()
        outcome = _get(config, upstream.port, timeout=10.0, options={"first-byte-timeout": NS // 2})
        assert outcome == ("err", ("connection-read-timeout", None))
        assert time.monotonic() - start < 2.5


def _v1(config: HostConfig, uri: str, method: str = "get", body: bytes | None = None) -> tuple[str, object]:
    state = HostState(config, timeout=10)
    try:
        return send_request(state, {"method": method, "uri": uri, "headers": [("x-test", "1")],
                                    "params": [], "body": body})
    finally:
        state.finish()


def test_spin_http_v1_send_request(upstream: CountingUpstream) -> None:
    """`fermyon:spin/http` send-request: buffered, pooled, with Spin's v1 error cases."""
    pool = HttpPool(enabled=True)
    config = _config(upstream.port, pool)
    for i in range(3):
        outcome = _v1(config, f"http://127.0.0.1:{upstream.port}/v1/{i}?q=1")
        assert outcome[0] == "ok"
        response = outcome[1]
        assert isinstance(response, dict)
        assert (response["status"], response["body"]) == (200, f"upstream saw /v1/{i}?q=1".encode())
        assert ("content-length", str(len(response["body"]))) in response["headers"]
    assert upstream.connections == 1
    assert _v1(config, f"http://127.0.0.1:{upstream.port + 1}/") == ("err", "destination-not-allowed")
    assert _v1(config, "not a url") == ("err", "destination-not-allowed")
    assert _v1(config, f"http://127.0.0.1:{upstream.port}/a b") == ("err", "invalid-url")
    assert _v1(config, "/relative") == ("err", "destination-not-allowed")  # `self` is not allowed
    pool.close()


def test_spin_http_v1_refused_and_self_requests() -> None:
    with counting_upstream() as upstream:
        port = upstream.port
        config = HostConfig(label="test/v1", logger=logging.getLogger("test.v1"),
                            allowed_hosts=parse_allowed_hosts([f"http://127.0.0.1:{port}", "http://self"]),
                            self_origin=("127.0.0.1", port))
        outcome = _v1(config, "/to/self")
        assert outcome[0] == "ok" and outcome[1]["body"] == b"upstream saw /to/self"  # type: ignore[index]
    assert _v1(config, f"http://127.0.0.1:{port}/") == ("err", "runtime-error")  # nothing listens now
