"""A real Spin 4 app (the spin-sdk 5.0.0 `python-p3` fixture) through the registry and the `tauon`
process, for what its routes ask of tauon's p3 host interfaces: key-value@3 state in the app's state
dir that survives a restart (Spin's file and schema), variables@3 from the app file and from
`SPIN_VARIABLE_*` (secret values never logged), and outbound HTTP over wasi:http/client@0.3 to an
allowed loopback server, with a denied host refused before any connection.
"""

from __future__ import annotations

import http.server
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.components import component_path, extra_component_path
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.upstream import http_server
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

SECRET = "p3-s3cret-4c1e"
RUNTIME = ("--component-runtime", "tauon")
LOAD_TIMEOUT = 300  # a cold compile of the 25 MB component on a shared machine


class _Upstream(http.server.BaseHTTPRequestHandler):
    paths: list[str] = []

    def do_GET(self) -> None:  # http.server's naming
        _Upstream.paths.append(self.path)
        body = f"saw {self.path}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with http_server(_Upstream) as port:
        yield port


def p3_app(upstream: int) -> SpinAppSpec:
    return SpinAppSpec(
        name="p3host",
        components=[SpinComponent(
            id="web", wasm=extra_component_path("python-p3").read_bytes(),
            metadata={"key_value_stores": ["default"],
                      "allowed_outbound_hosts": [f"http://127.0.0.1:{upstream}"]},
            config={"greeting": "{{ greeting }}", "who": "{{ who }}"})],
        triggers=[{"route": "/...", "component": "web"}],
        variables={"greeting": {"secret": True}, "who": {"default": "the default"}},
    )


def test_key_value_survives_a_restart_and_variables_resolve_as_spin_resolves_them(
        tmp_path: Path, registry: RegistryServer, upstream: int, shared_cache: Path) -> None:
    ref = push_app(registry, "wasip3/host", "v1", p3_app(upstream))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    spec = app_file(ref, port, state_dir="shop", variables={"greeting": SECRET})
    cache, state = shared_cache, tmp_path / "state"
    env = {"SPIN_VARIABLE_WHO": "from the environment"}
    with run_tauon(tmp_path / "run1", *RUNTIME, cache_dir=cache, state_root=state, env=env) as tauon:
        (tauon.watch_dir / "shop.json").write_text(spec)
        wait_http(f"{base}/echo", timeout=LOAD_TIMEOUT)
        assert httpx.put(f"{base}/kv/fruit", content=b"apple\x00\xff").text == "stored"
        assert httpx.put(f"{base}/kv/gone", content=b"x").text == "stored"
        assert httpx.delete(f"{base}/kv/gone").text == "deleted"
        assert httpx.get(f"{base}/kv/gone").status_code == 404
        assert httpx.get(f"{base}/var/greeting").text == SECRET  # the app may show it
        assert httpx.get(f"{base}/var/who").text == "from the environment"
        assert httpx.get(f"{base}/var/nope").status_code == 500  # undefined: the SDK raises
        log1 = tauon.log()
    with run_tauon(tmp_path / "run2", *RUNTIME, cache_dir=cache, state_root=state) as tauon:
        (tauon.watch_dir / "shop.json").write_text(spec)
        got = wait_http(f"{base}/kv/fruit", timeout=LOAD_TIMEOUT)
        assert got.content == b"apple\x00\xff"  # survived the restart
        assert httpx.get(f"{base}/var/who").text == "the default"  # no SPIN_VARIABLE_WHO this time
        log2 = tauon.log()
    with sqlite3.connect(state / "shop" / "sqlite_key_value.db") as db:  # Spin's file and schema
        assert db.execute("SELECT store, key, value FROM spin_key_value").fetchall() == [
            ("default", "fruit", b"apple\x00\xff")]
    for log in (log1, log2):
        assert SECRET not in log


def test_outbound_http_to_an_allowed_host_and_a_denied_one(tmp_path: Path, registry: RegistryServer,
                                                           upstream: int, shared_cache: Path) -> None:
    ref = push_app(registry, "wasip3/outbound", "v1", p3_app(upstream))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_tauon(tmp_path, *RUNTIME, cache_dir=shared_cache) as tauon:
        (tauon.watch_dir / "out.json").write_text(app_file(ref, port, variables={"greeting": SECRET}))
        wait_http(f"{base}/echo", timeout=LOAD_TIMEOUT)
        allowed = httpx.get(f"{base}/outbound", params={"url": f"http://127.0.0.1:{upstream}/hi?x=1"},
                            timeout=60)
        assert allowed.status_code == 200
        assert allowed.text == "upstream 200 saw /hi?x=1"
        seen = len(_Upstream.paths)
        denied = httpx.get(f"{base}/outbound", params={"url": f"http://localhost:{upstream}/no?token=t0k"},
                           timeout=60)
        assert denied.status_code == 500  # the SDK raises HTTP-request-denied
        assert len(_Upstream.paths) == seen  # no connection was made
        log = tauon.wait_log(r"outbound request to http://localhost:\d+/no denied by allowed_outbound_hosts")
        assert "t0k" not in log


def test_a_p3_guest_chains_to_a_private_component(tmp_path: Path, registry: RegistryServer,
                                                  shared_cache: Path) -> None:
    """`*.spin.internal` from wasi:http/client@0.3 is served in-process by the app's component, as
    Spin chains service requests, here a private C component that echoes the path it got."""
    app = SpinAppSpec(name="p3chain", components=[
        SpinComponent(id="web", wasm=extra_component_path("python-p3").read_bytes(),
                      metadata={"allowed_outbound_hosts": ["http://*.spin.internal"]}),
        SpinComponent(id="back", wasm=component_path("c").read_bytes()),
    ], triggers=[{"route": "/...", "component": "web"}, {"route": {"private": True}, "component": "back"}])
    ref = push_app(registry, "wasip3/chain", "v1", app)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with run_tauon(tmp_path, *RUNTIME, cache_dir=shared_cache) as tauon:
        (tauon.watch_dir / "chain.json").write_text(app_file(ref, port))
        wait_http(f"{base}/echo", timeout=LOAD_TIMEOUT)
        r = httpx.get(f"{base}/outbound", params={"url": "http://back.spin.internal/echo-path/deep?q=1"},
                      timeout=60)
        assert r.status_code == 200 and r.text == "upstream 200 /echo-path/deep?q=1"
        denied = httpx.get(f"{base}/outbound", params={"url": "http://127.0.0.1:9/"}, timeout=60)
        assert denied.status_code == 500  # not in allowed_outbound_hosts
