"""wasi:sockets through the registry and the real tauon process, as Spin's conformance tests
`tcp-sockets`, `tcp-sockets-ip-range`, `tcp-sockets-ip-range-variable-permission`,
`tcp-sockets-no-ip-permission` and `tcp-sockets-no-port-permission` run them, plus UDP, name lookup,
listening, socket options and sockets left open. The guest is the hand-written C component
(tests/fixtures/components/c-sockets); it talks to real TCP and UDP echo servers in this process.
Every test runs on both component runtimes (`component_runtime`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import runtimes
from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.echo import TcpEchoServer, UdpEchoServer, echo_servers
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

MESSAGE = "So rested he by the Tumtum tree"


def _apps(tcp: int, udp: int) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """App name -> (allowed_outbound_hosts, app variables)."""
    return {
        "exact": ([f"*://127.0.0.1:{tcp}", "udp://127.0.0.1:*"], {}),
        "ip-range": ([f"*://127.0.0.0/24:{tcp}"], {}),
        "ip-range-variable": (["*://{{ addr_prefix }}/{{ prefix_len }}:" + str(tcp)],
                              {"addr_prefix": {"default": "127.0.0.0"}, "prefix_len": {"default": "24"}}),
        "no-ip": ([f"*://127.0.0.2:{tcp}"], {}),
        "no-port": ([f"*://127.0.0.1:{tcp + 1}"], {}),
        "http-only": ([f"http://127.0.0.1:{tcp}", f"http://127.0.0.1:{udp}"], {}),
        "udp-bind-only": (["udp://127.0.0.1:0"], {}),
        "none": ([], {}),
    }


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[TcpEchoServer, UdpEchoServer]]:
    with echo_servers() as pair:
        yield pair


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer,
           servers: tuple[TcpEchoServer, UdpEchoServer], component_runtime: str,
           shared_cache: Path) -> Iterator[tuple[TauonProcess, dict[str, str]]]:
    tcp, udp = servers
    wasm = component_path("c-sockets").read_bytes()
    urls: dict[str, str] = {}
    with run_tauon(tmp_path_factory.mktemp("sockets"), cache_dir=shared_cache) as tauon:
        for name, (allowed, variables) in _apps(tcp.port, udp.port).items():
            app = SpinAppSpec(name=name, variables=variables, components=[SpinComponent(
                id="test", wasm=wasm, metadata={"allowed_outbound_hosts": allowed})],
                triggers=[{"route": "/...", "component": "test"}])
            ref = push_app(registry, f"sockets/{name}", "v1", app)
            port = free_port()
            (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port, limits={"request_timeout": 10}))
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=120)
        runtimes.check_on_tauon(tauon.log(), *(f"{name}.json/test" for name in urls))
        yield tauon, urls


def _get(url: str, path: str, **headers: str) -> httpx.Response:
    return httpx.get(url + path, headers={"host": "example.com", **headers}, timeout=30)


@pytest.mark.parametrize("app", ["exact", "ip-range", "ip-range-variable"])
def test_tcp_echo_allowed(served: tuple[TauonProcess, dict[str, str]],
                          servers: tuple[TcpEchoServer, UdpEchoServer], app: str) -> None:
    _, urls = served
    tcp, _ = servers
    r = _get(urls[app], "/tcp", address=f"127.0.0.1:{tcp.port}")
    assert (r.status_code, r.text) == (200, MESSAGE)


@pytest.mark.parametrize("app", ["no-ip", "no-port", "http-only", "none"])
def test_tcp_denied_as_spin_denies(served: tuple[TauonProcess, dict[str, str]],
                                   servers: tuple[TcpEchoServer, UdpEchoServer], app: str) -> None:
    _, urls = served
    tcp, _ = servers
    before = len(tcp.connections)
    r = _get(urls[app], "/tcp", address=f"127.0.0.1:{tcp.port}")
    assert (r.status_code, r.text) == (500, "access-denied (error 1)")
    assert len(tcp.connections) == before  # refused before any connection was made


def test_tcp_shutdown_send_then_read_to_the_end(served: tuple[TauonProcess, dict[str, str]],
                                                servers: tuple[TcpEchoServer, UdpEchoServer]) -> None:
    """The guest writes more than one 4 KiB call, shuts its send side and reads until the echo server,
    seeing EOF, closes: every byte comes back and the read ends."""
    _, urls = served
    tcp, _ = servers
    message = "".join(chr(ord("a") + i % 26) for i in range(12_000))
    r = _get(urls["exact"], "/tcp-shutdown", address=f"127.0.0.1:{tcp.port}", message=message)
    assert (r.status_code, r.text) == (200, message)


def test_tcp_connection_refused(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer,
                                component_runtime: str, shared_cache: Path) -> None:
    closed = free_port()
    app = SpinAppSpec(name="refused", components=[SpinComponent(
        id="test", wasm=component_path("c-sockets").read_bytes(),
        metadata={"allowed_outbound_hosts": [f"tcp://127.0.0.1:{closed}"]})],
        triggers=[{"route": "/...", "component": "test"}])
    ref = push_app(registry, "sockets/refused", "v1", app)
    with run_tauon(tmp_path_factory.mktemp("refused"), cache_dir=shared_cache) as tauon:
        port = free_port()
        (tauon.watch_dir / "refused.json").write_text(app_file(ref, port))
        wait_http(f"http://127.0.0.1:{port}/.well-known/spin/health", timeout=120)
        r = _get(f"http://127.0.0.1:{port}", "/tcp", address=f"127.0.0.1:{closed}")
        assert (r.status_code, r.text) == (500, "connection-refused (error 14)")


def test_socket_left_open_is_closed_when_the_request_ends(
        served: tuple[TauonProcess, dict[str, str]], servers: tuple[TcpEchoServer, UdpEchoServer]) -> None:
    _, urls = served
    tcp, _ = servers
    before = len(tcp.connections)
    r = _get(urls["exact"], "/tcp-open", address=f"127.0.0.1:{tcp.port}", message="still here")
    assert (r.status_code, r.text) == (200, "left open")
    conn = tcp.wait_connections(before + 1)[before]
    assert conn.eof.wait(10), "the guest's socket was not closed when its request ended"
    assert bytes(conn.received) == b"still here"  # what it wrote went out before the close


def test_tcp_options(served: tuple[TauonProcess, dict[str, str]],
                     servers: tuple[TcpEchoServer, UdpEchoServer]) -> None:
    _, urls = served
    tcp, _ = servers
    r = _get(urls["exact"], "/tcp-options", address=f"127.0.0.1:{tcp.port}")
    assert (r.status_code, r.text) == (200, "keepalive=1 hops=33")


def test_listening_is_denied(served: tuple[TauonProcess, dict[str, str]]) -> None:
    """Spin refuses every TCP bind, so a guest can neither bind nor listen, whatever it is allowed."""
    _, urls = served
    for app in ("exact", "none"):
        r = _get(urls[app], "/bind")
        expected = "bind: access-denied (error 1); listen: invalid-state (error 9)"
        assert (r.status_code, r.text) == (200, expected)


def test_udp_round_trip(served: tuple[TauonProcess, dict[str, str]],
                        servers: tuple[TcpEchoServer, UdpEchoServer]) -> None:
    _, urls = served
    _, udp = servers
    for path in ("/udp", "/udp-to"):
        r = _get(urls["exact"], path, address=f"127.0.0.1:{udp.port}", message=f"ping {path}")
        assert (r.status_code, r.text) == (200, f"echo:ping {path}")


def test_udp_denied(served: tuple[TauonProcess, dict[str, str]],
                    servers: tuple[TcpEchoServer, UdpEchoServer]) -> None:
    _, urls = served
    _, udp = servers
    before = len(udp.received)
    # Binding needs udp://<local address>; the tcp-allowing app has none.
    r = _get(urls["ip-range"], "/udp", address=f"127.0.0.1:{udp.port}")
    assert (r.status_code, r.text) == (500, "access-denied (error 1)")
    # Bound, but the destination is not allowed: refused when streaming to it, or when sending.
    for path in ("/udp", "/udp-to"):
        r = _get(urls["udp-bind-only"], path, address=f"127.0.0.1:{udp.port}")
        assert (r.status_code, r.text) == (500, "access-denied (error 1)")
    assert len(udp.received) == before


def test_name_lookup_fails_as_in_spin(served: tuple[TauonProcess, dict[str, str]]) -> None:
    """Spin never enables wasi:sockets name lookups: every valid name is a permanent failure."""
    _, urls = served
    for name in ("localhost", "127.0.0.1", "example.com"):
        r = _get(urls["exact"], "/lookup", name=name)
        assert (r.status_code, r.text) == (200, "permanent-resolver-failure (error 20)")
    r = _get(urls["exact"], "/lookup", name="bad host name")
    assert (r.status_code, r.text) == (200, "invalid-argument (error 3)")
