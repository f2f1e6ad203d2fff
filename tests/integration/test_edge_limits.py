"""What clients can hold at the edge: an oversized body is answered 413 and the connection closed, not
read to its end."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.daemon import free_port, run_tauon, wait_http

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def hello(tmp_path: Path, **limits: object) -> tuple[Path, int]:
    watch = tmp_path / "apps"
    watch.mkdir()
    shutil.copytree(ROOT / "tauon" / "images", watch / "images")
    port = free_port()
    app = {"reference": "./images/hello", "address": f"127.0.0.1:{port}", "limits": limits}
    (watch / "hello.json").write_text(json.dumps(app))
    return watch, port


@contextlib.contextmanager
def serving_1_mib_bodies(tmp_path: Path) -> Iterator[int]:
    """tauon (one process) serving the hello app with `max_body_mib` 1; yields its port."""
    watch, port = hello(tmp_path, max_body_mib=1)
    with run_tauon(tmp_path, "--workers", "1", watch_dir=watch):
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        yield port


@contextlib.contextmanager
def oversized_post(port: int) -> Iterator[socket.socket]:
    """A connection that has sent the head of a POST announcing 10 GB (the 413 is on its way)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
        yield sock


def test_after_413_the_rest_of_the_body_is_not_read(tmp_path: Path) -> None:
    """tauon used to keep reading (and discarding) the body after answering 413: 12 GiB in 10 s."""
    with serving_1_mib_bodies(tmp_path) as port, oversized_post(port) as sock:
        chunk = b"x" * 65536
        sent = 0
        answer = b""
        deadline = time.monotonic() + 20
        sock.setblocking(False)
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
                if not data:
                    break  # the server closed the connection
                answer += data
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
            except (BrokenPipeError, ConnectionResetError):
                break
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b"connection: close" in answer.lower()
        assert time.monotonic() < deadline, "the connection stayed open"
        assert sent < 512 * 1024 * 1024  # it stopped well short of the announced 10 GB


def read_to_end(sock: socket.socket) -> tuple[bytes, str]:
    """Everything the server sent, and how the connection ended ("eof" or "reset")."""
    answer = b""
    try:
        while data := sock.recv(65536):
            answer += data
    except ConnectionResetError:
        return answer, "reset"
    return answer, "eof"


def test_a_413_reaches_a_client_still_sending_its_body(tmp_path: Path) -> None:
    """Closing at once after a 413, with the client's body bytes unread, made the kernel reset the
    connection: a client that went on sending, or read after the reset, lost the 413 (a CI failure)."""
    with serving_1_mib_bodies(tmp_path) as port:
        for _ in range(3):
            with oversized_post(port) as sock:
                sock.sendall(b"x" * 256 * 1024)
                time.sleep(0.3)  # the 413 has been sent: the server now closes its side
                sock.sendall(b"y" * 256 * 1024)  # a reset would come back for these
                time.sleep(0.3)
                started = time.monotonic()
                answer, ending = read_to_end(sock)
                assert answer.startswith(b"HTTP/1.1 413"), (answer[:200], ending)
                assert ending == "eof"
                assert time.monotonic() - started < 10  # the write side was shut: no wait to see the end


def test_a_lingering_close_ends_when_the_client_goes_on_sending(tmp_path: Path) -> None:
    """A client that never stops sending is cut off after a bounded amount (64 MiB), not read forever."""
    with serving_1_mib_bodies(tmp_path) as port, oversized_post(port) as sock:
        chunk, sent = b"x" * 65536, 0
        deadline = time.monotonic() + 20
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            while time.monotonic() < deadline:  # never reads: a client that ignores the 413
                sent += sock.send(chunk)
        assert time.monotonic() < deadline, "the server read on for 20 s"
        assert 64 * 1024 * 1024 <= sent < 256 * 1024 * 1024, sent


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True once the server has closed `sock` (EOF or reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def test_idle_and_slow_head_connections_are_closed_at_the_head_timeout(tmp_path: Path) -> None:
    """10,000 idle and 2,000 slowloris connections once stayed open for good."""
    watch, port = hello(tmp_path)
    with run_tauon(tmp_path, "--workers", "1", "--head-timeout", "2", watch_dir=watch):
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(200)]
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        for sock in slow:
            sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        for _ in range(6):  # slowloris: a header byte now and then, never the end of the head
            for sock in slow:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X")
            time.sleep(0.5)
            wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")  # others are served meanwhile
        assert all(closed_within(sock, 10) for sock in idle + slow)
        assert time.monotonic() - started < 15
        for sock in idle + slow:
            sock.close()


def test_a_head_left_incomplete_on_a_kept_alive_connection_is_closed_at_the_head_timeout(
        tmp_path: Path) -> None:
    """After a whole request, the next head's first bytes (a partial request line, or only the blank
    line a client may send first) end uvicorn's keep-alive timer; the head timer takes over. It is
    armed only when a read leaves a head incomplete, so these are the cases that must still get one."""
    watch, port = hello(tmp_path)
    request = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
    with run_tauon(tmp_path, "--workers", "1", "--head-timeout", "2", watch_dir=watch):
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        socks = []
        for tail in (b"GET /hel", b"\r\n"):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(request)
            sock.settimeout(5)
            assert b"Hello" in sock.recv(65536)
            sock.sendall(tail)
            socks.append(sock)
        # A pipelined whole request followed by part of the next, in one send.
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(request + b"GET /hello HTTP/1.1\r\nHo")
        socks.append(sock)
        started = time.monotonic()
        assert all(closed_within(sock, 8) for sock in socks)
        assert time.monotonic() - started < 8  # the keep-alive timeout is 5 s; the head timeout 2 s
        for sock in socks:
            sock.close()


def test_a_stalled_body_is_cut_off_at_the_body_timeout(tmp_path: Path) -> None:
    watch, port = hello(tmp_path)
    with run_tauon(tmp_path, "--workers", "1", "--body-timeout", "2", watch_dir=watch):
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            started = time.monotonic()
            assert closed_within(sock, 15)
            assert 1.5 < time.monotonic() - started < 10


def test_connections_past_the_cap_are_closed_with_a_warning(tmp_path: Path) -> None:
    watch, port = hello(tmp_path)
    with run_tauon(tmp_path, "--workers", "1", "--max-connections", "50", watch_dir=watch) as tauon:
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(60)]
        refused = sum(closed_within(sock, 2) for sock in held[50:])
        assert refused == 10
        tauon.wait_log(r"50 client connections are open in this process, the most --max-connections allows")
        for sock in held:
            sock.close()
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")  # room again once they end


def test_client_mistakes_are_logged_once_a_minute_naming_the_app(tmp_path: Path) -> None:
    """Malformed and Upgrade requests used to log an anonymous WARNING on every request."""
    watch, port = hello(tmp_path)
    with run_tauon(tmp_path, "--workers", "1", "--log-level", "info", watch_dir=watch) as tauon:
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 400")
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 200")
        log = tauon.wait_log(r"hello\.json: Upgrade request: served as a plain HTTP request")
        malformed = re.findall(r"hello\.json: malformed HTTP request: answered 400 \(from 127\.0\.0\.1", log)
        assert len(malformed) == 1
        assert "Invalid HTTP request received" not in log and "Unsupported upgrade" not in log
