"""Outbound HTTP from real guests through the registry and the real tauon process: keep-alive pooling
seen from the upstream, the app's request timeout governing a slow upstream, and the Spin 1.x
`wasi-outbound-http` import really sending.

The wasi:http guest is the C handler fixture (tests/fixtures/wasi-http/handler.c: `/outbound?<url>`);
the Spin 1.x guest is tests/fixtures/legacy/spin-legacy-outbound.wat, a core module calling
`wasi-outbound-http.request` through the wit-bindgen 0.2 ABI.

The wasi:http tests run on both component runtimes (`component_runtime`): on tauon's, the guest waits for
the slow upstream in a host call it made through a trampoline, and the request deadline must still end
it. The Spin 1.x module is a core module, which no component runtime runs: its tests run once.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import wasmtime

from support import runtimes
from support.apps import app_file, push_app
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.upstream import CountingUpstream, counting_upstream
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLOSED_PORT = free_port()
"""Allowed for the Spin 1.x app, but nothing listens there."""


def _handler_wasm() -> bytes:
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"building the wasi-http fixture failed:\n{result.stdout}{result.stderr}")
    return (ROOT / "tests" / "fixtures" / "wasi-http" / "build" / "handler.wasm").read_bytes()


def _legacy_wasm() -> bytes:
    return wasmtime.wat2wasm((ROOT / "tests/fixtures/legacy/spin-legacy-outbound.wat").read_text())


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[CountingUpstream, CountingUpstream]]:
    with counting_upstream() as fast, counting_upstream(delay=3.0) as slow:
        yield fast, slow


def _deploy(tauon: TauonProcess, registry: RegistryServer, name: str, wasm: bytes, allowed: list[str],
            request_timeout: float, *, legacy: bool = False) -> str:
    key = "allowed_http_hosts" if legacy else "allowed_outbound_hosts"
    app = SpinAppSpec(name=name, components=[SpinComponent(id=name, wasm=wasm, metadata={key: allowed})],
                      triggers=[{"route": "/...", "component": name}])
    ref = push_app(registry, f"outbound/{name}", "v1", app)
    port = free_port()
    (tauon.watch_dir / f"{name}.json").write_text(
        app_file(ref, port, limits={"request_timeout": request_timeout}))
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer,
           upstreams: tuple[CountingUpstream, CountingUpstream], component_runtime: str,
           shared_cache: Path) -> Iterator[dict[str, str]]:
    fast, slow = upstreams
    allowed = [f"http://127.0.0.1:{fast.port}", f"http://127.0.0.1:{slow.port}"]
    legacy_allowed = [f"127.0.0.1:{fast.port}", f"127.0.0.1:{slow.port}", f"127.0.0.1:{CLOSED_PORT}"]
    handler = _handler_wasm()
    # One serving process: each process keeps its own pool, and the test counts connections.
    with run_tauon(tmp_path_factory.mktemp("outbound"), "--workers", "1", cache_dir=shared_cache) as tauon:
        urls = {
            "wasi": _deploy(tauon, registry, "wasi", handler, allowed, 10),
            "short": _deploy(tauon, registry, "short", handler, allowed, 1.5),
            "legacy": _deploy(tauon, registry, "legacy", _legacy_wasm(), legacy_allowed, 10, legacy=True),
        }
        for url in urls.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=120)
        runtimes.check_on_tauon(tauon.log(), "wasi.json/wasi", "short.json/short")
        yield urls


def test_sequential_guest_requests_share_one_upstream_connection(
        served: dict[str, str], upstreams: tuple[CountingUpstream, CountingUpstream]) -> None:
    fast, _ = upstreams
    before = fast.connections
    for i in range(20):
        r = httpx.get(f"{served['wasi']}/outbound?http://127.0.0.1:{fast.port}/n{i}", timeout=30)
        assert (r.status_code, r.text) == (200, f"status=200\nupstream saw /n{i}")
    assert fast.connections - before == 1  # one connection for all twenty


def test_the_app_request_timeout_governs_a_slow_upstream(
        served: dict[str, str], upstreams: tuple[CountingUpstream, CountingUpstream]) -> None:
    """The upstream answers after 3 s: within a 10 s request timeout the guest gets the answer; with
    a 1.5 s request timeout the request ends at its deadline (500), not at some other default."""
    _, slow = upstreams
    r = httpx.get(f"{served['wasi']}/outbound?http://127.0.0.1:{slow.port}/slow", timeout=30)
    assert (r.status_code, r.text) == (200, "status=200\nupstream saw /slow")
    start = time.monotonic()
    r = httpx.get(f"{served['short']}/outbound?http://127.0.0.1:{slow.port}/slow", timeout=30)
    assert r.status_code == 500
    assert time.monotonic() - start < 3.0


@pytest.mark.runtimes("wasmtime")
def test_legacy_outbound_http_sends(served: dict[str, str],
                                    upstreams: tuple[CountingUpstream, CountingUpstream]) -> None:
    fast, _ = upstreams
    r = httpx.get(f"{served['legacy']}/fetch?http://127.0.0.1:{fast.port}/legacy/path?x=1", timeout=30)
    assert (r.status_code, r.text) == (200, "status=200 body=upstream saw /legacy/path?x=1")


@pytest.mark.runtimes("wasmtime")
def test_legacy_outbound_http_errors(served: dict[str, str]) -> None:
    """Spin's v1 http-error cases: a host not allowed, or a URI that does not parse, is
    destination-not-allowed (1); an allowed host that refuses the connection is runtime-error (4)."""
    r = httpx.get(f"{served['legacy']}/fetch?http://127.0.0.1:{free_port()}/", timeout=30)
    assert (r.status_code, r.text) == (200, "error=1")
    r = httpx.get(f"{served['legacy']}/fetch?not a url", timeout=30)
    assert (r.status_code, r.text) == (200, "error=1")
    r = httpx.get(f"{served['legacy']}/fetch?http://127.0.0.1:{CLOSED_PORT}/", timeout=30)
    assert (r.status_code, r.text) == (200, "error=4")
