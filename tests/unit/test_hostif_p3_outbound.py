"""Outbound HTTP for WASIp3 guests (`p3_outbound_http.send`) against a real loopback HTTP server:
the allowed-host check first, bodies streamed both ways through the component runtime's streams, and
the result completing later (a Deferred), as the runtime gives it to a guest's async `send`.
"""

from __future__ import annotations

import http.server
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tauon.app.allowed_hosts import parse_allowed_hosts
from tauon.hostif.p3_outbound_http import OutboundRequest, OutboundResponse, send
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.runtime.async_host import Deferred, future, stream


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, bytes, str | None]] = []

    def do_GET(self) -> None:
        self._answer(b"")

    def do_POST(self) -> None:
        self._answer(self.rfile.read(int(self.headers["content-length"])))

    def _answer(self, body: bytes) -> None:
        Upstream.seen.append((self.command, self.path, body, self.headers.get("x-probe")))
        payload = b"echo:" + body if self.path != "/big" else bytes(range(256)) * 2048
        self.send_response(201)
        self.send_header("content-length", str(len(payload)))
        self.send_header("x-upstream", "yes")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def make_state(port: int) -> HostState:
    config = HostConfig(label="app.json/web", logger=logging.getLogger("tauon.test.p3-outbound"),
                        allowed_hosts=parse_allowed_hosts([f"http://127.0.0.1:{port}"]))
    return HostState(config, timeout=20.0)


def finished(result: Any) -> Any:
    """The value the runtime lowers into the guest: at once, or once the Deferred completes."""
    if not isinstance(result, Deferred):
        return result
    deadline = time.monotonic() + 20
    while not result.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert result.done
    return result.outcome()


def request(port: int, path: str, **kw: Any) -> OutboundRequest:
    return OutboundRequest(method=kw.pop("method", ("get", None)), scheme=("HTTP", None),
                           authority=kw.pop("authority", f"127.0.0.1:{port}"), path_with_query=path,
                           headers=kw.pop("headers", [("x-probe", b"p3")]), **kw)


def test_an_allowed_get_answers_status_headers_and_a_body_stream(upstream: int) -> None:
    state = make_state(upstream)
    got = finished(send(state, request(upstream, "/hello?q=1"), lambda r: r))
    assert got[0] == "ok"
    response = got[1]
    assert isinstance(response, OutboundResponse)
    assert response.status == 201 and ("x-upstream", b"yes") in response.headers
    assert response.body.read_all(timeout=10) == b"echo:"
    assert response.trailers.read(timeout=10) == ("ok", None)
    assert Upstream.seen[-1] == ("GET", "/hello?q=1", b"", "p3")
    state.finish()


def test_request_and_response_bodies_stream_through(upstream: int) -> None:
    state = make_state(upstream)
    body_reader, body_writer = stream()
    sent_reader, sent_writer = future()
    payload = b"x" * 300_000  # more than the pipes between guest and exchange hold at once
    started = send(state, request(upstream, "/post", method=("post", None), body=body_reader,
                                  sent=sent_writer, headers=[("content-length", str(len(payload)).encode())]),
                   lambda r: r)
    assert isinstance(started, Deferred)  # the guest keeps running: it writes the body after send
    assert body_writer.write(payload, timeout=10) == len(payload)
    body_writer.close()
    got = finished(started)
    assert got[1].body.read_all(timeout=10) == b"echo:" + payload
    assert sent_reader.read(timeout=10) == ("ok", None)
    big = finished(send(state, request(upstream, "/big"), lambda r: r))[1]
    assert big.body.read_all(timeout=10) == bytes(range(256)) * 2048
    state.finish()


def test_a_denied_host_is_refused_before_any_connection(upstream: int,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    state = make_state(upstream)
    before = len(Upstream.seen)
    sent_reader, sent_writer = future()
    with caplog.at_level(logging.INFO, logger="tauon.test.p3-outbound"):
        got = send(state, request(upstream, "/secret?token=abc", authority=f"user:pw@localhost:{upstream}",
                                  sent=sent_writer), lambda r: r)
    assert got == ("err", ("HTTP-request-denied", None))
    assert sent_reader.read(timeout=5) == got
    assert len(Upstream.seen) == before
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "denied by allowed_outbound_hosts" in logged and "pw" not in logged and "abc" not in logged
    state.finish()


def test_a_refused_connection_is_the_error_code(upstream: int) -> None:
    config = HostConfig(label="a/c", logger=logging.getLogger("test"),
                        allowed_hosts=parse_allowed_hosts(["http://127.0.0.1:1"]))
    state = HostState(config, timeout=20.0)
    got = finished(send(state, request(1, "/"), lambda r: r))
    assert got == ("err", ("connection-refused", None))
    state.finish()


def test_finish_runs_on_the_thread_that_takes_the_outcome(upstream: int) -> None:
    state = make_state(upstream)
    threads: list[str] = []

    def finish(result: Any) -> Any:
        threads.append(threading.current_thread().name)
        return ("ok", 7) if result[0] == "ok" else result

    assert finished(send(state, request(upstream, "/"), finish)) == ("ok", 7)
    assert threads == [threading.current_thread().name]
    state.finish()
