"""`[outbound_networking] block_networks` through the registry and the real tauon process: loopback
addresses the apps' `allowed_outbound_hosts` allow are refused by a runtime config's CIDR or by its
'private' keyword, for wasi:http (destination-IP-prohibited) and the Spin 1.x outbound HTTP import
(runtime-error), without a connection reaching the upstream; the same app without the runtime config
reaches it. Guests: the C wasi:http handler fixture and tests/fixtures/legacy/spin-legacy-outbound.wat.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from test_daemon_outbound_http import _handler_wasm, _legacy_wasm

from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.echo import TcpEchoServer, echo_servers
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




@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory,
            registry: RegistryServer) -> Iterator[tuple[dict[str, str], TcpEchoServer]]:
    """The c-sockets guest (a real TCP echo server in this process) and the spin-sdk python-outbound
    guest (Redis, MQTT, MySQL, PostgreSQL clients), each allowed every loopback port and each run
    with and without `block_networks = ["private"]`."""
    with echo_servers() as (tcp, _udp), \
            run_tauon(tmp_path_factory.mktemp("blocknet-clients"), "--workers", "1") as tauon:
        (tauon.watch_dir / "private.toml").write_text('[outbound_networking]\nblock_networks = ["private"]\n')
        urls = {}
        for name, fixture, rc in (("sockets", "c-sockets", "private.toml"),
                                  ("sockets-open", "c-sockets", None),
                                  ("clients", "python-outbound", "private.toml")):
            app = SpinAppSpec(name=name, components=[SpinComponent(
                id="test", wasm=component_path(fixture).read_bytes(),
                metadata={"allowed_outbound_hosts": ["*://127.0.0.1:*"]})],
                triggers=[{"route": "/...", "component": "test"}])
            ref = push_app(registry, f"blocknet/{name}", "v1", app)
            port = free_port()
            extra: dict[str, Any] = {"runtime_config": rc} if rc else {}
            (tauon.watch_dir / f"{name}.json").write_text(
                app_file(ref, port, limits={"request_timeout": 10}, **extra))
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=240)
        yield urls, tcp


def test_block_networks_for_sockets(clients: tuple[dict[str, str], TcpEchoServer]) -> None:
    urls, tcp = clients
    headers = {"host": "example.com", "address": f"127.0.0.1:{tcp.port}"}
    r = httpx.get(f"{urls['sockets-open']}/tcp", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    before = len(tcp.connections)
    r = httpx.get(f"{urls['sockets']}/tcp", headers=headers, timeout=30)
    assert (r.status_code, r.text) == (500, "access-denied (error 1)")
    assert len(tcp.connections) == before


def test_block_networks_for_redis_mqtt_mysql_postgres(clients: tuple[dict[str, str], TcpEchoServer]) -> None:
    """Each client is refused before connecting (the port has no server: a connection attempt would
    fail differently), with the interface's error naming block_networks and never the password."""
    urls, _ = clients
    base, port = urls["clients"], free_port()
    blocked = (f"every address of 127.0.0.1:{port} is in the runtime config's [outbound_networking] "
               "block_networks")
    r = httpx.get(f"{base}/redis/conformance", headers={"redis-address": f"redis://127.0.0.1:{port}"},
                  timeout=30)
    assert (r.status_code, r.text) == (502, f"error: other: {blocked}")
    r = httpx.get(f"{base}/mqtt/conformance", headers={"mqtt-address": f"mqtt://127.0.0.1:{port}"},
                  timeout=30)
    assert (r.status_code, r.text) == (502, f"error: connection-failed: {blocked}")
    for path, scheme in (("/mysql/v2/batch", "mysql"), ("/pg/v4/batch", "postgres")):
        r = httpx.post(f"{base}{path}", json={"address": f"{scheme}://u:pw-s3cret@127.0.0.1:{port}/db",
                                              "steps": []}, timeout=30)
        assert r.status_code == 502 and blocked in r.text and "pw-s3cret" not in r.text, r.text
