"""The request-head limit at the edge, as Spin's hyper applies it: a real listener (embedded uvicorn with
tauon's bounded httptools protocol) and raw sockets, so the exact bytes on the wire are under test.

hyper's default `max_buf_size` is 8192 + 4096 * 100 bytes (408 KiB) and it allows 100 header fields;
a head over either gets `431 Request Header Fields Too Large` and the connection is closed.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import start_blocking_portal

from support.daemon import free_port, run_tauon, wait_http
from tauon.model.address import Address
from tauon.server.listener import Listener
from tauon.settings import DEFAULT_MAX_REQUEST_HEAD, EdgeLimits, loop_options

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Says how many header fields and cookie bytes it was given."""
    if scope["type"] != "http":
        return
    headers = scope["headers"]
    cookie = sum(len(v) for k, v in headers if k == b"cookie")
    body = json.dumps({"fields": len(headers), "cookie": cookie}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(**kwargs: Any) -> Iterator[int]:
    port = free_port()
    listener = Listener(Address("127.0.0.1", port), _app, owner="test", drain_timeout=1, **kwargs)
    with start_blocking_portal(backend="asyncio", backend_options=loop_options()) as portal:
        portal.start_task(listener.run)
        try:
            yield port
        finally:
            portal.call(listener.stop)


def _head(extra: list[tuple[str, str]]) -> bytes:
    lines = ["GET /shape HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `data`, read one response; (status, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        # The server may answer and close before taking everything: then read what it said.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        return _read_response(sock)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed without a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def _closed(sock: socket.socket) -> bool:
    sock.settimeout(10)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_100kb_cookie_is_accepted_and_the_connection_kept() -> None:
    with serving() as port, socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(_head([("Cookie", "c=" + "x" * 100_000)]))
        status, _, body = _read_response(sock)
        assert status == 200 and json.loads(body)["cookie"] == 100_002
        sock.sendall(_head([("Cookie", "small=1")]))  # the count starts again for the next request
        status, _, body = _read_response(sock)
        assert status == 200 and json.loads(body)["cookie"] == 7


def test_a_head_just_under_hyper_default_is_accepted() -> None:
    assert DEFAULT_MAX_REQUEST_HEAD == 417_792
    with serving() as port:
        status, _, body = _exchange(port, _head([("Cookie", "x" * 400_000)]))
    assert status == 200 and json.loads(body)["cookie"] == 400_000


def test_a_head_over_the_limit_is_answered_431_and_closed() -> None:
    with serving() as port, socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(_head([("Cookie", "x" * 420_000)]))
        status, headers, body = _read_response(sock)
        assert status == 431 and body == b""
        assert headers["connection"] == "close"
        assert _closed(sock)


def test_a_head_that_never_ends_is_cut_off() -> None:
    """A client trickling one endless header: answered 431 once the limit is passed, not buffered on."""
    with serving() as port, socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: ")
        sent = 0
        try:
            while sent < 4 * DEFAULT_MAX_REQUEST_HEAD:
                sock.sendall(b"y" * 16384)
                sent += 16384
                time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert sent < 2 * DEFAULT_MAX_REQUEST_HEAD, f"the server took {sent} bytes of an unfinished head"
        status, _, _ = _read_response(sock)
        assert status == 431


def test_header_count_limit_is_hypers() -> None:
    with serving() as port:
        fields = [(f"X-F{i}", "v") for i in range(99)]  # + Host = 100
        status, _, body = _exchange(port, _head(fields))
        assert status == 200 and json.loads(body)["fields"] == 100
        status, _, _ = _exchange(port, _head([*fields, ("X-One-Too-Many", "v")]))
        assert status == 431


def test_a_configured_limit() -> None:
    with serving(edge=EdgeLimits(max_head=16 * 1024)) as port:
        assert _exchange(port, _head([("Cookie", "x" * 12_000)]))[0] == 200
        assert _exchange(port, _head([("Cookie", "x" * 20_000)]))[0] == 431
        # A body does not count against the head.
        body = b"z" * 100_000
        status, _, _ = _exchange(port, _head([("Content-Length", str(len(body)))]) + body)
        assert status == 200


def test_daemon_flag_applies_in_every_process(tmp_path: Path) -> None:
    """`--max-request-head` reaches the worker processes too: fresh connections (which either process
    may accept from the shared socket) are all held to it, in rounds until the worker has answered
    some of the interleaved small requests (so it took part)."""
    apps = tmp_path / "apps"
    apps.mkdir()
    port = free_port()
    (apps / "hello.json").write_text(json.dumps(
        {"reference": str(ROOT / "tauon" / "images" / "hello"), "address": f"127.0.0.1:{port}"}))
    with run_tauon(tmp_path, "--max-request-head", "16KiB", "--workers", "2", watch_dir=apps,
                   admin=True) as tauon:
        wait_http(f"http://127.0.0.1:{port}/hello", timeout=60)
        tauon.wait_log(r"worker 1 \(pid \d+\) serves 1 app", timeout=60)
        for _ in range(10):
            for _ in range(20):
                r = httpx.get(f"http://127.0.0.1:{port}/hello", headers={"cookie": "x" * 12_000,
                                                                          "connection": "close"})
                assert r.status_code == 200
                assert _exchange(port, _head([("Cookie", "x" * 20_000)]))[0] == 431
            time.sleep(1.2)  # a worker stats push
            if httpx.get(f"{tauon.admin}/status").json()["processes"][1]["requests"] > 0:
                break
        else:
            pytest.fail("the worker never answered a request")
