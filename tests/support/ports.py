"""Free loopback ports for the tests' servers and apps.

The kernel may hand the same ephemeral port to two `bind(0)` calls in a row once the first socket is
closed. Two apps given one address then look like one (the second fails to bind, and requests meant for
it reach the first), so a port handed out once is never handed out again in this test process."""

from __future__ import annotations

import socket
import threading

_given: set[int] = set()
_lock = threading.Lock()


def free_port() -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        with _lock:
            if port not in _given:
                _given.add(port)
                return port
