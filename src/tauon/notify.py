"""sd_notify: tell systemd (Type=notify) when tauon is ready, reloading or stopping. No-op elsewhere."""

from __future__ import annotations

import os
import socket
import time


class Notifier:
    def __init__(self, socket_path: str | None = None) -> None:
        self.path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")

    @property
    def enabled(self) -> bool:
        return bool(self.path)

    def send(self, **fields: str) -> None:
        if not self.path:
            return
        address = "\0" + self.path[1:] if self.path.startswith("@") else self.path
        payload = "\n".join(f"{k.upper()}={v}" for k, v in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(payload, address)
        except OSError:
            pass  # systemd gone or socket unusable: never fatal for the daemon

    def ready(self, status: str) -> None:
        self.send(ready="1", status=status)

    def reloading(self) -> None:
        self.send(reloading="1", monotonic_usec=str(time.monotonic_ns() // 1000))

    def stopping(self) -> None:
        self.send(stopping="1")

    def status(self, status: str) -> None:
        self.send(status=status)
