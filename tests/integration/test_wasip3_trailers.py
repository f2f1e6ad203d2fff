"""HTTP trailers to and from a WASIp3 guest (server/trailers.py, executors/wasi_http_p3.py), as hyper
(Spin's HTTP server) handles them: the real spin-sdk 5 app (python-p3's `/trailers` route, written
against the SDK's wasi:http 0.3 bindings) through the registry and the `tauon` process, over raw
sockets (HTTP clients hide trailers).

The guest reads the request body and its trailers future and answers what it saw, chunked, with the
trailers `x-checksum` (declared in its `trailer` header) and `x-undeclared` (not declared).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.apps import app_file, push_app
from support.components import extra_component_path
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer,
         shared_cache: Path) -> Iterator[int]:
    wasm = extra_component_path("python-p3").read_bytes()
    app = SpinAppSpec(name="p3", components=[SpinComponent(id="p3", wasm=wasm)],
                      triggers=[{"route": "/...", "component": "p3"}])
    ref = push_app(registry, "wasip3/trailers", "v1", app)
    port = free_port()
    with run_tauon(tmp_path_factory.mktemp("trailers"), cache_dir=shared_cache) as tauon:
        (tauon.watch_dir / "p3.json").write_text(app_file(ref, port))
        wait_http(f"http://127.0.0.1:{port}/echo", timeout=300)
        yield port


class Reply:
    def __init__(self, head: list[bytes], body: bytes, trailers: dict[bytes, bytes]) -> None:
        self.status = int(head[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in head[1:])}
        self.body = body
        self.trailers = trailers


class Conn:
    """One keep-alive connection, reading chunked responses with their trailer section."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            assert data, "connection closed mid-response"
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self.sock.recv(65536)
            assert data, "connection closed mid-body"
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def request(self, raw: bytes) -> Reply:
        self.sock.sendall(raw)
        head = []
        while line := self._line():
            head.append(line)
        reply = Reply(head, b"", {})
        assert reply.headers.get(b"transfer-encoding") == b"chunked", reply.headers
        body = b""
        while size := int(self._line().split(b";")[0], 16):
            body += self._exactly(size)
            assert self._line() == b""
        while line := self._line():  # the trailer section, up to the empty line
            name, value = line.split(b":", 1)
            reply.trailers[name.strip().lower()] = value.strip()
        reply.body = body
        return reply


def chunked_post(body: bytes, trailers: bytes, te: bool) -> bytes:
    return (b"POST /trailers HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
            + (b"te: trailers\r\n" if te else b"") + b"\r\n"
            + b"%x\r\n%s\r\n" % (len(body), body) + b"0\r\n" + trailers + b"\r\n")


def test_request_trailers_reach_the_guest_and_its_declared_trailers_come_back(port: int) -> None:
    conn = Conn(port)
    reply = conn.request(chunked_post(b"hello", b"x-sum: 42\r\nx-note: two words\r\n", te=True))
    assert reply.status == 200
    assert reply.body == b"body=5 trailers=x-sum=42,x-note=two words"
    assert reply.headers[b"trailer"] == b"x-checksum"
    assert reply.trailers == {b"x-checksum": b"5"}  # x-undeclared was not declared: not sent


def test_without_te_trailers_the_response_carries_none(port: int) -> None:
    conn = Conn(port)
    reply = conn.request(chunked_post(b"hey", b"x-sum: 7\r\n", te=False))
    assert reply.body == b"body=3 trailers=x-sum=7"
    assert reply.trailers == {}


def test_a_body_without_trailers_says_none_and_the_connection_goes_on(port: int) -> None:
    conn = Conn(port)
    first = conn.request(b"POST /trailers HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nte: trailers\r\n"
                         b"\r\nabcd")
    assert first.body == b"body=4 trailers=none"
    assert first.trailers == {b"x-checksum": b"4"}
    # the same connection serves the next requests after a response that ended with trailers
    second = conn.request(chunked_post(b"again", b"x-sum: 1\r\n", te=True))
    assert second.body == b"body=5 trailers=x-sum=1"
    assert second.trailers == {b"x-checksum": b"5"}
    third = conn.request(b"GET /trailers HTTP/1.1\r\nhost: x\r\n\r\n")
    assert third.body == b"body=0 trailers=none"
    assert third.trailers == {}
