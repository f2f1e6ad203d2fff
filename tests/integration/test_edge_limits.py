"""What clients can hold at the edge: an oversized body is answered 413 and the connection closed, not
read to its end."""

from __future__ import annotations

import json
import shutil
import socket
import time
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


def test_after_413_the_rest_of_the_body_is_not_read(tmp_path: Path) -> None:
    """tauon used to keep reading (and discarding) the body after answering 413: 12 GiB in 10 s."""
    watch, port = hello(tmp_path, max_body_mib=1)
    with run_tauon(tmp_path, "--workers", "1", watch_dir=watch):
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
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
