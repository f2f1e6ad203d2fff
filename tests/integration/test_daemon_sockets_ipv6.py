"""wasi:sockets over IPv6 through the registry and the real tauon process: the C guest
(tests/fixtures/components/c-sockets) opens an IPv6 TCP socket to `[::1]` and echoes through a real
server listening on the IPv6 loopback, when `allowed_outbound_hosts` allows it (exactly, by CIDR, by
`*`), and gets Spin's `access-denied` when it does not (other address, other port, IPv4 only). Every
test runs on both component runtimes (`component_runtime`): IPv6 addresses are their own variant case.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import runtimes
from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.echo import TcpEchoServer

pytestmark = pytest.mark.integration

MESSAGE = "So rested he by the Tumtum tree"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


if not _has_ipv6_loopback():
    pytest.skip("this machine has no IPv6 loopback (::1 cannot be bound)", allow_module_level=True)


@pytest.fixture(scope="module")
def echo6() -> Iterator[TcpEchoServer]:
    server = TcpEchoServer("::1")
    try:
        yield server
    finally:
        server.close()


def _apps(port: int) -> dict[str, list[str]]:
    """App name -> allowed_outbound_hosts."""
    return {
        "exact": [f"tcp://[::1]:{port}"],
        "cidr": [f"*://::/64:{port}"],  # a CIDR host is bare, as Spin parses it (IpNetwork)
        "any-host": [f"tcp://*:{port}"],
        "other-ip": [f"tcp://[::2]:{port}"],
        "other-port": [f"tcp://[::1]:{port + 1}"],
        "ipv4-only": [f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.0/8:{port}"],
        "http-only": [f"http://[::1]:{port}"],
    }


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, echo6: TcpEchoServer,
         component_runtime: str, shared_cache: Path) -> Iterator[dict[str, str]]:
    from support.spinpush import SpinAppSpec, SpinComponent

    wasm = component_path("c-sockets").read_bytes()
    out: dict[str, str] = {}
    with run_tauon(tmp_path_factory.mktemp("sockets6"), cache_dir=shared_cache) as tauon:
        for name, allowed in _apps(echo6.port).items():
            app = SpinAppSpec(name=f"v6-{name}", components=[SpinComponent(
                id="test", wasm=wasm, metadata={"allowed_outbound_hosts": allowed})],
                triggers=[{"route": "/...", "component": "test"}])
            ref = push_app(registry, f"sockets6/{name}", "v1", app)
            port = free_port()
            (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port, limits={"request_timeout": 10}))
            out[name] = f"http://127.0.0.1:{port}"
        for url in out.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=120)
        runtimes.check_on_tauon(tauon.log(), *(f"{name}.json/test" for name in out))
        yield out


def _get(url: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(url + path, headers={"host": "example.com", **headers}, timeout=30)


@pytest.mark.parametrize("app", ["exact", "cidr", "any-host"])
def test_tcp_echo_over_ipv6_allowed(urls: dict[str, str], echo6: TcpEchoServer, app: str) -> None:
    before = len(echo6.connections)
    r = _get(urls[app], "/tcp", address=f"[::1]:{echo6.port}")
    assert (r.status_code, r.text) == (200, MESSAGE)
    conn = echo6.wait_connections(before + 1)[before]
    assert conn.peer[0] == "::1"  # the guest's socket really was IPv6
    assert bytes(conn.received) == MESSAGE.encode()


def test_tcp_shutdown_over_ipv6(urls: dict[str, str], echo6: TcpEchoServer) -> None:
    message = "".join(chr(ord("a") + i % 26) for i in range(9_000))
    r = _get(urls["exact"], "/tcp-shutdown", address=f"[::1]:{echo6.port}", message=message)
    assert (r.status_code, r.text) == (200, message)


@pytest.mark.parametrize("app", ["other-ip", "other-port", "ipv4-only", "http-only"])
def test_tcp_over_ipv6_denied_as_spin_denies(urls: dict[str, str], echo6: TcpEchoServer, app: str) -> None:
    before = len(echo6.connections)
    r = _get(urls[app], "/tcp", address=f"[::1]:{echo6.port}")
    assert (r.status_code, r.text) == (500, "access-denied (error 1)")
    assert len(echo6.connections) == before  # refused before any connection was made
