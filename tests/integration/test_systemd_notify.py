"""The sd_notify protocol of the real tauon process, read from a real AF_UNIX datagram socket."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from support.apps import app_file, push_sleep_app
from support.daemon import free_port, hanging_server, run_tauon, wait_http
from support.registry import RegistryServer


@dataclass
class Message:
    at: float
    """time.monotonic() when received (CLOCK_MONOTONIC, comparable with MONOTONIC_USEC)."""
    fields: dict[str, str]


@dataclass
class NotifySocket:
    sock: socket.socket
    address: str
    """What NOTIFY_SOCKET says: a path, or @name for the abstract namespace."""
    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def collect(self, stop: threading.Event) -> None:
        self.sock.settimeout(0.1)
        while not stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            with self.lock:
                self.messages.append(Message(time.monotonic(), fields))

    def snapshot(self) -> list[Message]:
        with self.lock:
            return list(self.messages)

    def wait_for(self, key: str, value: str | None = None, *, after: int = 0, timeout: float = 30) -> int:
        """Index of the first message from `after` on that has `key` (= `value`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, msg in enumerate(self.snapshot()[after:], start=after):
                if key in msg.fields and (value is None or msg.fields[key] == value):
                    return i
            time.sleep(0.02)
        raise AssertionError(f"no {key}={value} after #{after} in {self.snapshot()}")


@contextmanager
def notify_socket(tmp_path: Path, *, abstract: bool = False) -> Iterator[NotifySocket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"tauon-test-{os.getpid()}-{time.monotonic_ns()}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        path = tmp_path / "notify.sock"
        sock.bind(str(path))
        address = str(path)
    ns = NotifySocket(sock, address)
    stop = threading.Event()
    thread = threading.Thread(target=ns.collect, args=(stop,), daemon=True)
    thread.start()
    try:
        yield ns
    finally:
        stop.set()
        thread.join()
        sock.close()


@pytest.fixture(scope="module")
def image(registry: RegistryServer) -> str:
    return push_sleep_app(registry, "notify/app", "v1", version="v1")


def test_ready_status_reload_stopping_and_watchdog(tmp_path: Path, image: str) -> None:
    good = free_port()
    with notify_socket(tmp_path) as ns, hanging_server() as hung:
        watch = tmp_path / "apps"
        watch.mkdir()
        (watch / "good.json").write_text(app_file(image, good))
        (watch / "hung.json").write_text(app_file(f"{hung}/notify/hung:v1", free_port()))
        env = {"NOTIFY_SOCKET": ns.address, "WATCHDOG_USEC": "400000"}
        with run_tauon(tmp_path, "--pull-timeout", "2", watch_dir=watch, env=env) as tauon:
            # The hung pull holds READY back; STATUS says what is going on meanwhile.
            pulling = ns.wait_for("STATUS")
            assert ns.snapshot()[pulling].fields["STATUS"].startswith("pulling ")
            ready = ns.wait_for("READY", "1")
            assert ns.snapshot()[ready].fields["STATUS"] == "1 app(s) serving, 1 failing"
            assert pulling < ready
            wait_http(f"http://127.0.0.1:{good}/?0", contains="in v1")
            assert "failed" in tauon.log() or "retrying" in tauon.log()

            tauon.signal(signal.SIGHUP)
            reloading = ns.wait_for("RELOADING", "1", after=ready + 1)
            msg = ns.snapshot()[reloading]
            usec = int(msg.fields["MONOTONIC_USEC"])
            assert abs(usec / 1e6 - msg.at) < 1.0  # the same clock systemd compares against
            reloaded = ns.wait_for("READY", "1", after=reloading + 1)
            # READY=1 only once the reload settled: the hung app's new attempt takes its pull timeout.
            assert ns.snapshot()[reloaded].at - msg.at >= 1.5
            log = tauon.log()
            assert log.index("reload done") > log.rindex("hung.json: ")

            tauon.signal(signal.SIGTERM)
            stopping = ns.wait_for("STOPPING", "1", after=reloaded + 1)
            assert tauon.proc.wait(30) == 0
        pings = [m.at for m in ns.snapshot()[:stopping] if m.fields.get("WATCHDOG") == "1"]
        assert len(pings) >= 5
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) < 0.4, gaps  # every WATCHDOG_USEC / 2, never missing the deadline


def test_abstract_namespace_socket_and_foreign_watchdog(tmp_path: Path, image: str) -> None:
    port = free_port()
    with notify_socket(tmp_path, abstract=True) as ns:
        watch = tmp_path / "apps"
        watch.mkdir()
        (watch / "app.json").write_text(app_file(image, port))
        # WATCHDOG_PID names another process: tauon must not ping on its behalf.
        env = {"NOTIFY_SOCKET": ns.address, "WATCHDOG_USEC": "200000", "WATCHDOG_PID": "1"}
        with run_tauon(tmp_path, watch_dir=watch, env=env) as tauon:
            ready = ns.wait_for("READY", "1")
            assert ns.snapshot()[ready].fields["STATUS"] == "1 app(s) serving, 0 failing"
            wait_http(f"http://127.0.0.1:{port}/?0", contains="in v1")
            time.sleep(0.5)
            tauon.stop()
        ns.wait_for("STOPPING", "1")
        assert not any("WATCHDOG" in m.fields for m in ns.snapshot())
