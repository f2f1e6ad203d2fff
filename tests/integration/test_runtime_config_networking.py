"""`[outbound_networking] block_networks` through the registry and the real tauon process: loopback
addresses the apps' `allowed_outbound_hosts` allow are refused by a runtime config's CIDR or by its
'private' keyword, for wasi:http (destination-IP-prohibited) and the Spin 1.x outbound HTTP import
(runtime-error), without a connection reaching the upstream; the same app without the runtime config
reaches it. Guests: the C wasi:http handler fixture and tests/fixtures/legacy/spin-legacy-outbound.wat.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from test_daemon_outbound_http import _handler_wasm, _legacy_wasm

from support.apps import app_file, push_app
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.upstream import CountingUpstream, counting_upstream
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration


def _deploy(tauon: TauonProcess, registry: RegistryServer, name: str, wasm: bytes, allowed: list[str],
            runtime_config: str | None, *, legacy: bool = False) -> str:
    key = "allowed_http_hosts" if legacy else "allowed_outbound_hosts"
    app = SpinAppSpec(name=name, components=[SpinComponent(id=name, wasm=wasm, metadata={key: allowed})],
                      triggers=[{"route": "/...", "component": name}])
    ref = push_app(registry, f"blocknet/{name}", "v1", app)
    port = free_port()
    extra = {"runtime_config": runtime_config} if runtime_config else {}
    (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port, **extra))
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           registry: RegistryServer) -> Iterator[tuple[dict[str, str], CountingUpstream]]:
    with counting_upstream() as up, run_tauon(tmp_path_factory.mktemp("blocknet"), "--workers", "1") as tauon:
        for name, entry in (("cidr", "127.0.0.0/8"), ("private", "private")):
            toml = f'[outbound_networking]\nblock_networks = ["{entry}"]\n'
            (tauon.watch_dir / f"{name}.toml").write_text(toml)
        allowed = [f"http://127.0.0.1:{up.port}", f"http://localhost:{up.port}"]
        handler = _handler_wasm()
        urls = {
            "open": _deploy(tauon, registry, "open", handler, allowed, None),
            "cidr": _deploy(tauon, registry, "cidr", handler, allowed, "cidr.toml"),
            "private": _deploy(tauon, registry, "private", handler, allowed, "private.toml"),
            "legacy": _deploy(tauon, registry, "legacy", _legacy_wasm(), [f"127.0.0.1:{up.port}"],
                              "private.toml", legacy=True),
        }
        for url in urls.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=180)
        tauon.wait_log(r"block_networks=127\.0\.0\.0/8", timeout=10)
        yield urls, up


def test_allowed_loopback_reached_without_block_networks(
        served: tuple[dict[str, str], CountingUpstream]) -> None:
    urls, up = served
    r = httpx.get(f"{urls['open']}/outbound?http://127.0.0.1:{up.port}/a", timeout=30)
    assert (r.status_code, r.text) == (200, "status=200\nupstream saw /a")


@pytest.mark.parametrize(("app", "host"), [("cidr", "127.0.0.1"), ("private", "127.0.0.1"),
                                           ("private", "localhost")])
def test_block_networks_wins_over_allowed_hosts(served: tuple[dict[str, str], CountingUpstream],
                                                app: str, host: str) -> None:
    urls, up = served
    before = up.connections
    r = httpx.get(f"{urls[app]}/outbound?http://{host}:{up.port}/b", timeout=30)
    assert (r.status_code, r.text) == (502, "error-code=4")  # 4: destination-IP-prohibited
    assert up.connections == before


def test_block_networks_for_the_spin_1_import(served: tuple[dict[str, str], CountingUpstream]) -> None:
    urls, up = served
    before = up.connections
    r = httpx.get(f"{urls['legacy']}/fetch?http://127.0.0.1:{up.port}/c", timeout=30)
    assert (r.status_code, r.text) == (200, "error=4")  # runtime-error, as any failed connection
    assert up.connections == before


