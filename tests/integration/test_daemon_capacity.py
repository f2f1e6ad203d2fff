"""Capacity limits of the real tauon process: a full instance pool, an oversized request head."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import httpx

from support.apps import app_file, push_app
from support.daemon import free_port, run_tauon, wait_http
from support.fixtures import fixture_path
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent


def push_echo_and_loop(registry: RegistryServer, repo: str) -> str:
    components = [SpinComponent(id=name, wasm=fixture_path(name).read_bytes()) for name in ("echo", "loop")]
    app = SpinAppSpec(name="capacity", components=components, triggers=[
        {"route": f"/{c.id}/...", "component": c.id, "executor": {"type": "wagi"}} for c in components])
    return push_app(registry, repo, "v1", app)


def test_a_full_instance_pool_answers_503_until_an_instance_frees_up(tmp_path: Path,
                                                                    registry: RegistryServer) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    ref = push_echo_and_loop(registry, "capacity/pool")
    with run_tauon(tmp_path, "--instance-pool", "1") as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(ref, port, limits={"request_timeout": 2}))
        wait_http(f"{base}/echo/x", contains="REQUEST_METHOD")
        looping: dict[str, httpx.Response] = {}

        def run_loop() -> None:
            # One of the probes below may hold the only slot when the loop arrives: then the loop is the
            # one told to come back later, so it does, as a client honouring Retry-After would.
            while True:
                looping["r"] = httpx.get(f"{base}/loop/", timeout=20)
                if looping["r"].status_code != 503:
                    return
                time.sleep(0.01)

        thread = threading.Thread(target=run_loop)
        thread.start()
        # While the looping guest holds the only instance, others are told to come back later.
        deadline = time.monotonic() + 10
        while True:
            r = httpx.get(f"{base}/echo/busy", timeout=10)
            if r.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        thread.join()
        assert looping["r"].status_code == 500  # its own request timeout
        assert httpx.get(f"{base}/echo/after").status_code == 200
        log = tauon.log()
        assert "app.json/echo: GET /echo/busy: 503, every instance slot is in use" in log
        assert "raise --instance-pool" in log


def raw_request(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # A refused head is answered and closed before all of it is read: then read what came back.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def test_a_request_head_over_hypers_limit_is_refused(tmp_path: Path, registry: RegistryServer) -> None:
    """Spin's hyper takes a head of up to 8 KiB + 100 x 4 KiB (417,792 bytes) and 100 fields; over
    either it answers 431 (server/httpproto.py)."""
    port = free_port()
    ref = push_echo_and_loop(registry, "capacity/head")
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(ref, port))
        wait_http(f"http://127.0.0.1:{port}/echo/x", contains="REQUEST_METHOD")
        filler = b"".join(b"x-fill-%d: %s\r\n" % (i, b"a" * 1000) for i in range(60))  # ~61 KB
        head = b"GET /echo/ok HTTP/1.1\r\nhost: t\r\nconnection: close\r\n"
        ok = raw_request(port, head + filler + b"\r\n")
        assert ok.startswith(b"HTTP/1.1 200 ") and b"X_FILL_59" in ok  # over the old 64 KiB too
        cookie = b"cookie: c=" + b"b" * 300_000 + b"\r\n"
        ok = raw_request(port, head + cookie + b"\r\n")
        assert ok.startswith(b"HTTP/1.1 200 ") and b"HTTP_COOKIE=c=bbb" in ok
        big = b"GET /echo/big HTTP/1.1\r\nhost: t\r\ncookie: c=" + b"b" * 420_000 + b"\r\n\r\n"
        assert raw_request(port, big).startswith(b"HTTP/1.1 431 ")
        long_target = b"/echo/big" + b"a" * 420_000
        refused = raw_request(port, b"GET " + long_target + b" HTTP/1.1\r\nhost: t\r\n\r\n")
        assert refused.startswith(b"HTTP/1.1 431 ")
        many = b"".join(b"x-f%d: v\r\n" % i for i in range(100))  # + host: 101 fields
        assert raw_request(port, b"GET /echo/big HTTP/1.1\r\nhost: t\r\n" + many + b"\r\n").startswith(
            b"HTTP/1.1 431 ")
        assert httpx.get(f"http://127.0.0.1:{port}/echo/after").status_code == 200
        assert "/echo/big" not in tauon.log()  # never reached the app
