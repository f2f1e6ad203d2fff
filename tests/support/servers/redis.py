"""A real redis-server (Debian's redis-server package) on a free loopback port, data in a temp dir."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

from support.servers import ServerProcess, find_binary, free_port


class RedisServer:
    def __init__(self, root: Path, port: int | None = None, *, password: str | None = None) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = port or free_port()
        self.password = password
        argv = [find_binary("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(root), "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--protected-mode", "no", "--logfile", ""]
        if password is not None:
            argv += ["--requirepass", password]
        self.process = ServerProcess("redis-server", argv, root / "redis.log", self._answers)

    @property
    def address(self) -> str:
        """The `redis://` URL a guest (or redis-py) connects with."""
        auth = f":{self.password}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        try:
            return self.command("PING").startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """Send one command (RESP) and return the raw first reply chunk: for readiness and test setup."""
        payload = f"*{len(args)}\r\n".encode() + b"".join(
            f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
            if self.password is not None:
                sock.sendall(f"*2\r\n$4\r\nAUTH\r\n${len(self.password)}\r\n{self.password}\r\n".encode())
                sock.recv(64)
            sock.sendall(payload)
            return sock.recv(65536)

    def start(self) -> None:
        self.process.start()

    def stop(self) -> None:
        self.process.stop()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


@contextlib.contextmanager
def run_redis(root: Path, *, password: str | None = None) -> Iterator[RedisServer]:
    server = RedisServer(root, password=password)
    server.start()
    try:
        yield server
    finally:
        server.stop()
