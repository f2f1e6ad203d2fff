"""`fermyon:spin/http` send-request from a real guest, through the registry and the real tauon process:
the hand-written C component tests/fixtures/components/c-spin-http sends to a loopback upstream in this
process when `allowed_outbound_hosts` allows it, and gets Spin's `destination-not-allowed` (with no
connection made) when it does not. Every test runs on both component runtimes (`component_runtime`).
"""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import runtimes
from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

CLOSED_PORT = free_port()
"""Allowed for the `closed` app; nothing listens there."""


class EchoUpstream(http.server.ThreadingHTTPServer):
    """Answers every request with what it saw (method, path, the guest's x-guest header, body), counting
    the TCP connections it accepts."""

    daemon_threads = True

    def __init__(self) -> None:
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _Echo)
        self.port: int = self.server_address[1]

    def process_request_thread(self, request: object, client_address: object) -> None:
        self.connections += 1
        super().process_request_thread(request, client_address)  # type: ignore[misc]


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # head and body go out in two writes: without this, the second waits for the client's
        # delayed ACK (Nagle), 40 ms a response on a kept-alive connection
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        text = f"{self.command} {self.path} guest={self.headers.get('x-guest')} got={body.decode()}".encode()
        self.send_response(201)
        self.send_header("x-upstream", "echo-1")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[EchoUpstream]:
    server = EchoUpstream()
    threading.Thread(target=server.serve_forever, name="test-spin-http-upstream", daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, upstream: EchoUpstream,
         component_runtime: str, shared_cache: Path) -> Iterator[dict[str, str]]:
    wasm = component_path("c-spin-http").read_bytes()
    apps = {"allowed": [f"http://127.0.0.1:{upstream.port}"],
            "closed": [f"http://127.0.0.1:{CLOSED_PORT}"],
            "other-port": [f"http://127.0.0.1:{upstream.port + 1}"],
            "none": []}
    out: dict[str, str] = {}
    # One process: the pool is per process, and the reuse test counts the upstream's connections
    # (with --workers auto a request may land on a second process and open its own).
    with run_tauon(tmp_path_factory.mktemp("spin-http"), "--workers", "1", cache_dir=shared_cache) as tauon:
        for name, allowed in apps.items():
            app = SpinAppSpec(name=f"spin-http-{name}", components=[SpinComponent(
                id="test", wasm=wasm, metadata={"allowed_outbound_hosts": allowed})],
                triggers=[{"route": "/...", "component": "test"}])
            ref = push_app(registry, f"spin-http/{name}", "v1", app)
            port = free_port()
            (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port, limits={"request_timeout": 10}))
            out[name] = f"http://127.0.0.1:{port}"
        for url in out.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=120)
        runtimes.check_on_tauon(tauon.log(), *(f"{name}.json/test" for name in apps))
        yield out


def _get(app_url: str, **headers: str) -> httpx.Response:
    return httpx.get(app_url + "/", headers=headers, timeout=30)


def test_send_request_reaches_the_upstream(urls: dict[str, str], upstream: EchoUpstream) -> None:
    target = f"http://127.0.0.1:{upstream.port}/v1/path?q=1"
    r = _get(urls["allowed"], url=target)
    assert r.status_code == 200, r.text
    assert r.text == "status=201 x-upstream=echo-1 body=GET /v1/path?q=1 guest=c-spin-http got="
    r = _get(urls["allowed"], url=target, method="post", **{"send-body": "hello upstream"})
    assert r.text == ("status=201 x-upstream=echo-1 "
                      "body=POST /v1/path?q=1 guest=c-spin-http got=hello upstream")


def test_send_request_reuses_pooled_connections(urls: dict[str, str], upstream: EchoUpstream) -> None:
    """Sequential guest requests (each a new instance) share the app's keep-alive pool."""
    _get(urls["allowed"], url=f"http://127.0.0.1:{upstream.port}/warm")
    before = upstream.connections
    for i in range(5):
        r = _get(urls["allowed"], url=f"http://127.0.0.1:{upstream.port}/n{i}")
        assert r.status_code == 200 and f"GET /n{i} " in r.text
    assert upstream.connections == before


@pytest.mark.parametrize("app", ["other-port", "none"])
def test_send_request_denied_as_spin_denies(urls: dict[str, str], upstream: EchoUpstream, app: str) -> None:
    before = upstream.connections
    r = _get(urls[app], url=f"http://127.0.0.1:{upstream.port}/secret")
    assert (r.status_code, r.text) == (502, "error: destination-not-allowed")
    assert upstream.connections == before  # refused before any connection


def test_send_request_errors(urls: dict[str, str]) -> None:
    """An unparsable URI is checked against the allowed hosts first (Spin's order); an allowed host
    where nothing listens is a runtime error."""
    assert _get(urls["allowed"], url="not a url").text == "error: destination-not-allowed"
    r = _get(urls["closed"], url=f"http://127.0.0.1:{CLOSED_PORT}/")
    assert (r.status_code, r.text) == (502, "error: runtime-error")


def test_send_request_many_times_in_one_guest_request(urls: dict[str, str], upstream: EchoUpstream) -> None:
    """`count` sends one after another from one instance (what the benchmark uses): every response is
    read (the last one answered), all over one pooled connection."""
    _get(urls["allowed"], url=f"http://127.0.0.1:{upstream.port}/warm")
    before = upstream.connections
    r = _get(urls["allowed"], url=f"http://127.0.0.1:{upstream.port}/many", count="200")
    assert (r.status_code, r.text) == (200, "status=201 x-upstream=echo-1 "
                                            "body=GET /many guest=c-spin-http got=")
    assert upstream.connections == before
    assert _get(urls["allowed"], url="http://127.0.0.1:1/", count="0").status_code == 400
