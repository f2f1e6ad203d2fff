"""sd_notify: tell systemd (Type=notify) when tauon is ready, reloading or stopping, and feed its
watchdog. A no-op when $NOTIFY_SOCKET is unset."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

import anyio


def notify_address(path: str) -> str:
    """A leading '@' names a socket in Linux's abstract namespace (a leading NUL byte)."""
    return "\0" + path[1:] if path.startswith("@") else path


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of $WATCHDOG_USEC), or None when not asked for.

    $WATCHDOG_PID, when set, names the process the watchdog is meant for: a child that inherited the
    environment must stay quiet.
    """
    usec = env.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    wanted_pid = env.get("WATCHDOG_PID", "")
    if wanted_pid and (not wanted_pid.isdigit() or int(wanted_pid) != pid):
        return None
    return int(usec) / 2 / 1_000_000


class Notifier:
    def __init__(self, socket_path: str | None = None) -> None:
        self.path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    def send(self, **fields: str) -> None:
        if not self.path:
            return
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload, notify_address(self.path))
        except OSError:
            pass  # systemd gone or socket unusable: never fatal for the daemon

    def ready(self, status: str) -> None:
        self.send(ready="1", status=status)

    def reloading(self) -> None:
        # systemd >= 253 requires MONOTONIC_USEC with RELOADING=1 (CLOCK_MONOTONIC, like time.monotonic).
        self.send(reloading="1", monotonic_usec=str(time.monotonic_ns() // 1000))

    def stopping(self) -> None:
        self.send(stopping="1")

    def status(self, status: str) -> None:
        self.send(status=status)

    def watchdog(self) -> None:
        self.send(watchdog="1")


class StatusReporter:
    """Sends STATUS= whenever the one-line summary changes (poked by the supervisor)."""

    def __init__(self, notifier: Notifier, summary: Callable[[], str], *, settle: float = 0.05) -> None:
        self.notifier = notifier
        self.summary = summary
        self.settle = settle
        self.last: str | None = None
        self._poked = anyio.Event()

    def poke(self) -> None:
        self._poked.set()

    def sent(self, status: str) -> None:
        """READY=1 carried this status already."""
        self.last = status

    async def run(self) -> None:
        while True:
            await self._poked.wait()
            self._poked = anyio.Event()
            await anyio.sleep(self.settle)  # one message for a burst of state changes
            text = self.summary()
            if text != self.last:
                self.last = text
                self.notifier.status(text)


async def run_watchdog(notifier: Notifier, interval: float) -> None:
    """WATCHDOG=1 from the event loop itself, so a blocked loop misses pings and systemd notices."""
    while True:
        notifier.watchdog()
        await anyio.sleep(interval)
