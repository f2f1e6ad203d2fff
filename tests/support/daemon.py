"""Run the real `tauon` process for integration tests and watch what it says."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from support import runtimes
from support.ports import free_port as free_port


@dataclass
class TauonProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path
    watch_dir: Path
    state_root: Path
    cache_dir: Path
    admin: str | None = None
    """The admin endpoints' base URL when started with `admin=True`."""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 20.0, *, count: int = 1) -> str:
        """Wait until `pattern` (a regex) has matched `count` times in the log; return the log."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            text = self.log()
            if len(rx.findall(text)) >= count:
                return text
            if self.proc.poll() is not None:
                raise AssertionError(f"tauon exited ({self.proc.returncode}) before /{pattern}/:\n{text}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no /{pattern}/ x{count} in tauon's log within {timeout}s:\n{text}")
            time.sleep(0.05)

    def wait_in_flight(self, count: int = 1, timeout: float = 20.0) -> None:
        """Wait until the apps hold `count` requests between head and response end (needs `admin=True`).

        Tests that act on a request "while it runs" wait for this instead of sleeping, which a slow
        machine can outlast before the request has even arrived.
        """
        assert self.admin is not None, "run_tauon(..., admin=True) is needed to see requests in flight"
        deadline = time.monotonic() + timeout
        while True:
            apps = httpx.get(f"{self.admin}/status", timeout=5).json()["apps"]
            if sum(app["in_flight"] for app in apps) >= count:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} request(s) not in flight within {timeout}s: {apps}")
            time.sleep(0.02)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


NO_DAC_OVERRIDE = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")
"""Run as root but bound by file permissions (util-linux setpriv), as a systemd service user would be."""


@contextmanager
def run_tauon(tmp: Path, *args: str, watch_dir: Path | None = None, cache_dir: Path | None = None,
              state_root: Path | None = None, env: dict[str, str] | None = None,
              apps_file: Path | None = None, admin: bool = False, cwd: Path | None = None,
              log_level: str = "debug", wait_started: bool = True,
              wrapper: tuple[str, ...] = (), fallback_ok: bool = False) -> Iterator[TauonProcess]:
    """Start tauon watching `watch_dir` (default tmp/apps), or in lepton mode with `apps_file`.

    `admin=True` adds `--admin` on a free port (`TauonProcess.admin` is its URL). `wrapper` is a command
    prefix (e.g. `NO_DAC_OVERRIDE`: root without the capabilities that ignore file permissions).
    Under the `component_runtime` fixture the daemon runs that runtime (`args` may still override it);
    on tauon, a component falling back to the wasmtime path (or none running on tauon) fails the test
    unless `fallback_ok`.
    """
    watch_dir = watch_dir or tmp / "apps"
    cache_dir = cache_dir or tmp / "cache"
    state_root = state_root or tmp / "state"
    tmp.mkdir(parents=True, exist_ok=True)
    log_path = tmp / f"tauon-{time.monotonic_ns()}.log"
    # Tiering (on by default) swaps a second generation in after every cold start; tests that are not
    # about it count generations and swaps, so they run with it off unless `env` turns it on.
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "TAUON_TIERING": "off", **(env or {})}
    source = ["--apps", str(apps_file)] if apps_file is not None else [str(watch_dir)]
    admin_url: str | None = None
    if admin:
        port = free_port()
        admin_url = f"http://127.0.0.1:{port}"
        source += ["--admin", f"127.0.0.1:{port}"]
    cmd = [sys.executable, "-m", "tauon", *source, "--cache-dir", str(cache_dir), "--state-root",
           str(state_root), "--log-level", log_level, "--progress", "log", "--resync-interval", "5",
           "--max-backoff", "2", *runtimes.daemon_args(), *args]
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen([*wrapper, *cmd], stdout=log_file, stderr=subprocess.STDOUT, env=full_env,
                                cwd=cwd)
    tp = TauonProcess(proc, log_path, watch_dir, state_root, cache_dir, admin_url)
    try:
        if wait_started:
            tp.wait_log(r"tauon (watching|serving the apps in)")
        yield tp
    finally:
        tp.stop()
    if not fallback_ok:
        runtimes.check_daemon_log(tp.log())


@contextmanager
def hanging_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a hung registry). Yields host:port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)  # never accept(): the kernel completes handshakes, nobody ever replies
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@contextmanager
def dribbling_server(interval: float = 0.5, *, limit: float = 300.0) -> Iterator[str]:
    """A registry that answers `/v2/` and then sends every other response one byte per `interval`
    seconds (each byte resets a read timeout, so only an overall deadline ends a pull). Yields
    host:port. Each connection gives up after `limit` seconds, so nothing outlives a test for long."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    stop = threading.Event()

    def dribble(conn: socket.socket) -> None:
        with conn:
            try:
                request = conn.recv(65536)
                if request.startswith(b"GET /v2/ "):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json"
                             b"\r\nContent-Length: 100000\r\n\r\n")
                ends = time.monotonic() + limit
                while not stop.is_set() and time.monotonic() < ends:
                    conn.sendall(b" ")
                    stop.wait(interval)
            except OSError:
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            threading.Thread(target=dribble, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        sock.close()


def wait_http(url: str, *, status: int = 200, timeout: float = 20.0,
              contains: str | None = None) -> httpx.Response:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url, timeout=5)
            last = f"{r.status_code} {r.text[:200]!r}"
            if r.status_code == status and (contains is None or contains in r.text):
                return r
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise AssertionError(
        f"{url} did not answer {status} (containing {contains!r}) in {timeout}s; last: {last}")


def wait_refused(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
        except httpx.ConnectError:
            return
        except (httpx.RemoteProtocolError, httpx.ReadError):
            pass  # accepted just as the listener closed: it is on its way out, keep looking
        time.sleep(0.05)
    raise AssertionError(f"{url} still accepts connections after {timeout}s")
