"""`[outbound_http]` through the registry and the real tauon process with the C wasi:http handler
fixture (`/outbound?<url>`): `max_connections = 1` lets one outbound request of the app be in flight
at a time (the others wait their turn, within their deadline), while an app without the table sends
them together; and the table without `connection_pooling` turns pooling off, as Spin's serde default
does (a new upstream connection per request). The upstream records how many requests it serves at
once."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from test_daemon_outbound_http import _handler_wasm

from support.apps import app_file, push_app
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration
DELAY = 1.5


class SlowUpstream(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = self.most = self.connections = 0
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port: int = self.server_address[1]

    def process_request_thread(self, request: object, client_address: object) -> None:
        with self.lock:
            self.connections += 1
        super().process_request_thread(request, client_address)  # type: ignore[misc]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SlowUpstream

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.in_flight += 1
            self.server.most = max(self.server.most, self.server.in_flight)
        try:
            if self.path.startswith("/slow"):
                time.sleep(DELAY)
            body = b"ok"
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def log_message(self, *args: object) -> None:
        pass


def _deploy(tauon: TauonProcess, registry: RegistryServer, name: str, allowed: str, rc: str | None) -> str:
    app = SpinAppSpec(name=name, components=[SpinComponent(id=name, wasm=_handler_wasm(),
                                                           metadata={"allowed_outbound_hosts": [allowed]})],
                      triggers=[{"route": "/...", "component": name}])
    ref = push_app(registry, f"outhttp/{name}", "v1", app)
    port = free_port()
    extra = {"runtime_config": rc} if rc else {}
    text = app_file(ref, port, limits={"request_timeout": 30}, **extra)
    (tauon.watch_dir / f"{name}.json").write_text(text)
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           registry: RegistryServer) -> Iterator[tuple[dict[str, str], SlowUpstream]]:
    up = SlowUpstream()
    threading.Thread(target=up.serve_forever, daemon=True).start()
    try:
        with run_tauon(tmp_path_factory.mktemp("outhttp"), "--workers", "1") as tauon:
            (tauon.watch_dir / "one.toml").write_text("[outbound_http]\nmax_connections = 1\n")
            allowed = f"http://127.0.0.1:{up.port}"
            urls = {"one": _deploy(tauon, registry, "one", allowed, "one.toml"),
                    "open": _deploy(tauon, registry, "open", allowed, None)}
            for url in urls.values():
                wait_http(f"{url}/.well-known/spin/health", timeout=180)
            tauon.wait_log(r"outbound_http: connection_pooling=false", timeout=10)
            yield urls, up
    finally:
        up.shutdown()
        up.server_close()


def _together(url: str, port: int, n: int) -> list[httpx.Response]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(
            lambda i: httpx.get(f"{url}/outbound?http://127.0.0.1:{port}/slow{i}", timeout=60), range(n)))


def test_max_connections_serialises_the_apps_outbound_requests(
        served: tuple[dict[str, str], SlowUpstream]) -> None:
    urls, up = served
    up.most = 0
    start = time.monotonic()
    responses = _together(urls["one"], up.port, 3)
    assert [(r.status_code, r.text) for r in responses] == [(200, "status=200\nok")] * 3
    assert up.most == 1
    assert time.monotonic() - start >= 3 * DELAY * 0.9
    up.most = 0
    responses = _together(urls["open"], up.port, 3)  # without the table: together
    assert all(r.status_code == 200 for r in responses)
    assert up.most >= 2


def test_the_table_without_connection_pooling_turns_pooling_off(
        served: tuple[dict[str, str], SlowUpstream]) -> None:
    urls, up = served
    made = {}
    for name in ("one", "open"):
        before = up.connections
        for i in range(3):
            r = httpx.get(f"{urls[name]}/outbound?http://127.0.0.1:{up.port}/fast{i}", timeout=30)
            assert r.status_code == 200, r.text
        made[name] = up.connections - before
    assert made["one"] == 3 and made["open"] <= 1, made  # pooled: at most one new connection
