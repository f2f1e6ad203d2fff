"""sd_notify over a real AF_UNIX datagram socket (path and abstract), watchdog timing, STATUS text."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from tauon.notify import Notifier, StatusReporter, notify_address, watchdog_interval
from tauon.status import summary


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(2)
    yield sock, str(path)
    sock.close()


def test_messages_reach_the_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(path)
    notifier.ready("1 app(s) serving, 0 failing")
    assert sock.recv(4096) == b"READY=1\nSTATUS=1 app(s) serving, 0 failing"
    before = time.monotonic_ns() // 1000
    notifier.reloading()
    fields = dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())
    assert fields["RELOADING"] == "1"
    assert before <= int(fields["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000
    notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_abstract_namespace() -> None:
    name = f"tauon-unit-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        Notifier("@" + name).status("pulling 1 app(s)…")
        assert sock.recv(4096) == "STATUS=pulling 1 app(s)…".encode()
    assert notify_address("@x") == "\0x" and notify_address("/run/x") == "/run/x"


def test_unset_or_dead_socket_is_harmless(tmp_path: Path) -> None:
    assert not Notifier("").enabled
    Notifier("").ready("x")  # nothing to send to
    Notifier(str(tmp_path / "gone.sock")).ready("x")  # systemd went away: never fatal


@pytest.mark.parametrize(("env", "expected"), [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "4242"}, 1.0),
    ({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval(env: dict[str, str], expected: float | None) -> None:
    assert watchdog_interval(env, 4242) == expected


def test_summary() -> None:
    assert summary({"pulling": 2, "running": 1}) == "pulling 2 app(s)…; 1 app(s) serving, 0 failing"
    assert summary({"running": 3, "failed": 1}) == "3 app(s) serving, 1 failing"
    assert summary({"running": 1, "invalid": 2}) == "1 app(s) serving, 2 failing"
    assert summary({}) == "0 app(s) serving, 0 failing"


def test_status_reporter_sends_changes_once(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    sock.setblocking(False)
    counts = {"pulling": 1}
    looked = 0

    def current() -> str:
        nonlocal looked
        looked += 1
        return summary(counts)

    async def reporter_looked(times: int) -> None:
        # The reporter sends (or not) right after it looks, before it next waits: once it has
        # looked `times` times, what it sent is in the socket (a local datagram arrives at once).
        with anyio.fail_after(10):
            while looked < times:
                await anyio.sleep(0.005)
        await anyio.wait_all_tasks_blocked()

    def pending() -> list[bytes]:
        received = []
        while True:
            try:
                received.append(sock.recv(4096))
            except BlockingIOError:
                return received

    async def scenario() -> list[list[bytes]]:
        reporter = StatusReporter(Notifier(path), current, settle=0.01)
        batches = []
        async with anyio.create_task_group() as tg:
            tg.start_soon(reporter.run)
            for _ in range(3):  # a burst of pokes: one message
                reporter.poke()
            await reporter_looked(1)
            batches.append(pending())
            reporter.poke()  # nothing changed: nothing sent
            await reporter_looked(2)
            batches.append(pending())
            counts.clear()
            counts["running"] = 1
            reporter.poke()
            await reporter_looked(3)
            batches.append(pending())
            tg.cancel_scope.cancel()
        assert looked == 3  # the burst was looked at once
        return batches

    batches = anyio.run(scenario)
    received = [message for batch in batches for message in batch]
    assert received == ["STATUS=pulling 1 app(s)…; 0 app(s) serving, 0 failing".encode(),
                        b"STATUS=1 app(s) serving, 0 failing"]
    assert batches[1] == []  # the poke with nothing changed sent nothing
