"""A real Mosquitto broker (Debian's mosquitto package) on a free loopback port, config in a temp dir.

With `users`, the broker gets a password file (made with mosquitto_passwd) and still allows anonymous
clients, like the conformance suite's broker. `Subscriber` is a paho client that records what arrives,
so a test can check what a guest published.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from support.servers import ServerProcess, find_binary, free_port, give_to_unprivileged, port_open


class MosquittoServer:
    def __init__(self, root: Path, *, users: Mapping[str, str] | None = None,
                 allow_anonymous: bool = True) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        anonymous = "true" if allow_anonymous else "false"
        lines = [f"listener {self.port} 127.0.0.1", f"allow_anonymous {anonymous}",
                 "persistence false", "log_dest stderr", "log_type error", "log_type warning",
                 "log_type notice", "log_type information"]
        if users:
            passwd = root / "passwd"
            passwd.touch()
            for user, password in users.items():
                subprocess.run([find_binary("mosquitto_passwd"), "-b", str(passwd), user, password],
                               check=True, capture_output=True)
            passwd.chmod(0o600)
            lines.append(f"password_file {passwd}")
        config = root / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        user = give_to_unprivileged(root)
        self.process = ServerProcess("mosquitto", [find_binary("mosquitto", "/usr/sbin/mosquitto"), "-c",
                                                   str(config)],
                                     root / "mosquitto.log", lambda: port_open(self.port), user=user)

    @property
    def address(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()


class Subscriber:
    """A paho client subscribed to `topic` (its own network thread), collecting (topic, payload, qos)."""

    def __init__(self, port: int, topic: str, *, username: str | None = None,
                 password: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, int]] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"test-subscriber-{free_port()}")
        if username is not None:
            client.username_pw_set(username, password)
        client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=2)
        client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.loop_start()
        self.client = client
        if not self._subscribed.wait(10):
            self.close()
            raise RuntimeError(f"the test subscriber could not subscribe to {topic!r}")

    def _on_message(self, client: paho.Client, userdata: object, message: paho.MQTTMessage) -> None:
        with self._cond:
            self.messages.append((message.topic, message.payload, message.qos))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[str, bytes, int]]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count and time.monotonic() < deadline:
                self._cond.wait(deadline - time.monotonic())
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextlib.contextmanager
def run_mosquitto(root: Path, *, users: Mapping[str, str] | None = None,
                  allow_anonymous: bool = True) -> Iterator[MosquittoServer]:
    server = MosquittoServer(root, users=users, allow_anonymous=allow_anonymous)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def subscribed(port: int, topic: str, **credentials: str) -> Iterator[Subscriber]:
    sub = Subscriber(port, topic, **credentials)
    try:
        yield sub
    finally:
        sub.close()
