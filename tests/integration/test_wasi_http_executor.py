"""The wasi:http executor end to end: a real component, a real uvicorn server, a real HTTP client.

The component is tests/fixtures/wasi-http/handler.c (built by scripts/build-wasi-http-fixtures); each
path exercises one behaviour. The ASGI shim stands in for the switchboard (routing is not under test).
Every test runs on both component runtimes (wasmtime's component API and tauon's own).
"""

from __future__ import annotations

import hashlib
import http.server
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from tauon.app.plan import ComponentPlan, Limits
from tauon.app.routes import RouteMatch
from tauon.executors.base import Executor, GuestError, RoutedRequest
from tauon.executors.builder import build_component_executor
from tauon.model.component_meta import ComponentMeta
from tauon.model.spinvalue import SpinValue
from tauon.wasm.engine import WasmEngine

ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits(request_timeout=1.0, max_memory=8 * 1024 * 1024, max_request_body=2 * 1024 * 1024,
                max_concurrency=4)
LOGGER = "tauon.app.test-wasi-http"


def build_fixture() -> Path:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"building the wasi-http fixture failed:\n{result.stdout}{result.stderr}")
    return ROOT / "tests" / "fixtures" / "wasi-http" / "build" / "handler.wasm"


class Upstream(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = f"upstream saw {self.path}".encode()
        self.send_response(203)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def shim(executor: Executor) -> Any:
    """A stand-in for the switchboard: builds the RoutedRequest and maps GuestError to 500."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        started = False

        async def tracking(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        headers = tuple((k.decode("latin-1"), v.decode()) for k, v in scope["headers"])
        host = dict(headers).get("host", "")
        path = scope["raw_path"].decode()
        query = scope["query_string"].decode()
        request = RoutedRequest(
            method=scope["method"], path=path, query=query, headers=headers,
            spin_values=(SpinValue("spin-path-info", "PATH_INFO", path),), scheme="http",
            authority=host, client=tuple(scope["client"]), http_version="1.1",  # type: ignore[arg-type]
            match=RouteMatch(target=None, raw_route="/...", normalized_route="/...", component_route="",
                             path_info=path))
        try:
            await executor.serve(request, receive, tracking)
        except GuestError:
            if not started:
                await tracking({"type": "http.response.start", "status": 500, "headers": []})
                await tracking({"type": "http.response.body", "body": b""})
            else:
                raise

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()


@pytest.fixture(scope="module", params=["wasmtime", "tauon"])
def base_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             upstream: int) -> Iterator[str]:
    wasm = build_fixture()
    engine = WasmEngine(tmp_path_factory.mktemp("cache"))
    engine.start()
    plan = ComponentPlan(
        id="handler", wasm_path=str(wasm),
        wasm_digest="sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(), env={"GREETING": "hi"},
        metadata=ComponentMeta(allowed_outbound_hosts=("http://127.0.0.1:*",)))
    executor = build_component_executor(
        app_id="app.json", component=plan, engine=engine, limits=LIMITS,
        limiter=anyio.CapacityLimiter(LIMITS.max_concurrency), logger=logging.getLogger(LOGGER),
        trigger_executor="http", wagi_argv="", component_runtime=request.param)
    assert executor._runner.name == request.param  # type: ignore[attr-defined]  # no silent fallback
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(shim(executor), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)
    engine.stop()


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as c:
        yield c


def test_response_status_headers_body_and_guest_output(client: httpx.Client,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=LOGGER):
        r = client.get("/hello")
        # The response streams to the client before the guest returns; the unterminated last line is
        # flushed when it does, so give the guest a moment to finish.
        deadline = time.monotonic() + 5
        while True:
            lines = [rec.getMessage() for rec in caplog.records if rec.name == LOGGER]
            if "app.json/handler stdout: second line" in lines or time.monotonic() > deadline:
                break
            time.sleep(0.01)
    assert r.status_code == 200
    assert r.text == "hello, wasi-http\n"
    assert r.headers["content-type"] == "text/plain"
    assert r.headers.get_list("x-fixture") == ["a", "b"]
    assert "app.json/handler stdout: hello from stdout" in lines
    assert "app.json/handler stdout: second line" in lines  # unterminated last line is flushed
    assert "app.json/handler stderr: a warning on stderr" in lines


def test_request_as_seen_by_the_guest(client: httpx.Client) -> None:
    r = client.get("/info?x=1&y=%20", headers={"Host": "example.com", "X-Custom": "v",
                                               "Spin-Path-Info": "spoofed", "Keep-Alive": "5"})
    lines = r.text.splitlines()
    assert lines[:4] == ["method=GET", "path=/info?x=1&y=%20", "authority=example.com", "scheme=HTTP"]
    headers = [line.removeprefix("header ") for line in lines[4:]]
    assert "x-custom: v" in headers
    assert not any(h.startswith(("host:", "keep-alive:", "connection:")) for h in headers)
    # spin-* values are appended after the client's headers: a spoofed one stays, as in Spin
    assert headers[-1] == "spin-path-info: /info"
    assert "spin-path-info: spoofed" in headers


def test_environment_is_the_component_env(client: httpx.Client) -> None:
    assert client.get("/env").text == "GREETING=hi\n"


def test_status_without_body(client: httpx.Client) -> None:
    r = client.get("/status?418")
    assert (r.status_code, r.content) == (418, b"")


def test_one_mib_echo_streams_both_ways(client: httpx.Client) -> None:
    body = bytes(range(256)) * 4096
    r = client.post("/echo", content=body)
    assert r.status_code == 200 and r.content == body

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 10_000

    r = client.post("/echo", content=chunks())  # chunked transfer encoding
    assert r.content == b"x" * 640_000


def test_requests_without_a_body_read_as_empty(client: httpx.Client) -> None:
    # No content-length / transfer-encoding (or a zero length): the executor ends the guest's body
    # stream itself, without a feeder; the guest still reads a clean end of stream.
    assert client.get("/count").text == "0"
    assert client.post("/count", content=b"").text == "0"
    assert client.request("DELETE", "/count", headers={"content-length": "0"}).text == "0"
    assert client.post("/count", content=b"abc").text == "3"


def test_large_response_streams(client: httpx.Client) -> None:
    size = 5 * 1024 * 1024  # more than the guest's memory limit: it cannot be buffered in the guest
    with client.stream("GET", f"/big?{size}") as r:
        assert r.status_code == 200
        assert "content-length" not in r.headers
        total = sum(len(chunk) for chunk in r.iter_bytes())
    assert total == size


def test_output_goes_out_while_the_guest_computes(client: httpx.Client) -> None:
    # The guest writes "first", then computes for 600 ms without blocking. tauon holds a running
    # guest's output to send it in one wake-up, but no longer than an epoch tick (10 ms).
    started = time.monotonic()
    with client.stream("GET", "/slow-stream?600") as r:
        chunks = r.iter_bytes()
        first = next(chunks)
        first_at = time.monotonic() - started
        rest = b"".join(chunks)
    assert first == b"first\n" and rest == b"second\n"
    assert first_at < 0.3
    assert time.monotonic() - started >= 0.6


@pytest.mark.parametrize("size", [1, 2, 65535, 65536, 200_001])
def test_writes_from_even_and_odd_addresses_give_the_same_bytes(client: httpx.Client, size: int) -> None:
    # /big writes from an aligned buffer (the string import), /odd from an odd address (the list import).
    expected = bytes(ord("a") + i % 65536 % 26 for i in range(size))  # each 64 KiB chunk restarts at a
    assert client.get(f"/big?{size}").content == expected
    assert client.get(f"/odd?{size}").content == expected


def test_request_body_over_the_limit_is_413(client: httpx.Client) -> None:
    too_big = b"x" * (LIMITS.max_request_body + 1)
    assert client.post("/echo", content=too_big).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(LIMITS.max_request_body // 65536 + 2):
            yield b"y" * 65536

    assert client.post("/count", content=chunks()).status_code == 413  # no content-length: found late
    assert client.post("/count", content=b"z" * 1000).text == "1000"


@pytest.mark.parametrize("path", ["/trap", "/noresponse", "/oom", "/missing"])
def test_guest_failures_are_500_with_empty_body(client: httpx.Client, path: str) -> None:
    r = client.get(path)
    assert (r.status_code, r.content) == (500, b"")
    assert client.get("/status?200").status_code == 200  # the next request is unaffected


@pytest.mark.parametrize("status", [601, 999])
def test_a_status_the_server_cannot_send_is_500(client: httpx.Client, status: int) -> None:
    """wasi:http accepts 100-999 in set-status-code; the HTTP server sends 100-600, as Spin does."""
    r = client.get(f"/status?{status}")
    assert (r.status_code, r.content) == (500, b"")
    assert client.get("/status?599").status_code == 599  # same connection, next request fine


def test_loop_is_stopped_at_the_deadline(client: httpx.Client) -> None:
    started = time.monotonic()
    assert client.get("/loop").status_code == 500
    assert time.monotonic() - started < LIMITS.request_timeout + 2
    assert client.get("/status?204").status_code == 204


def test_trap_after_the_head_truncates_the_response(client: httpx.Client) -> None:
    with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", "/late-trap") as r:
        assert r.status_code == 200
        r.read()


def test_outbound_allowed_host_is_fetched(client: httpx.Client, upstream: int) -> None:
    r = client.get(f"/outbound?http://127.0.0.1:{upstream}/path?q=1")
    assert r.status_code == 200
    assert r.text == "status=203\nupstream saw /path?q=1"


def test_outbound_denied_host_makes_no_connection(client: httpx.Client, upstream: int) -> None:
    before = Upstream.hits
    r = client.get(f"/outbound?http://localhost:{upstream}/")  # same server, but not an allowed host
    assert (r.status_code, r.text) == (502, "error-code=15")  # 15: HTTP-request-denied
    assert Upstream.hits == before


def test_outbound_connection_refused_is_an_error_code(client: httpx.Client) -> None:
    r = client.get(f"/outbound?http://127.0.0.1:{free_port()}/")  # allowed, but nothing listens
    assert (r.status_code, r.text) == (502, "error-code=6")  # 6: connection-refused


def test_concurrent_requests(client: httpx.Client, base_url: str) -> None:
    def one(i: int) -> bool:
        with httpx.Client(base_url=base_url, timeout=10) as c:
            body = f"request {i}".encode() * 100
            return c.post("/echo", content=body).content == body

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(one, range(64)))
