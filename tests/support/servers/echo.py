"""TCP and UDP echo servers in the test process, on loopback (what guests' sockets talk to).

The TCP server records each connection's fate: how many bytes it echoed and whether the client closed
it (EOF), so a test can check that a socket a guest left open is closed when its request ends.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class TcpConnection:
    peer: tuple[str, int]
    received: bytearray = field(default_factory=bytearray)
    eof: threading.Event = field(default_factory=threading.Event)


class TcpEchoServer:
    """Listens on `host` (an IPv4 or IPv6 loopback address) at a free port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port: int = self.sock.getsockname()[1]
        self.connections: list[TcpConnection] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="test-tcp-echo", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, peer = self.sock.accept()
            except OSError:
                return
            conn = TcpConnection((peer[0], peer[1]))  # an IPv6 peer has four fields
            with self._lock:
                self.connections.append(conn)
            threading.Thread(target=self._echo, args=(client, conn), daemon=True).start()

    @staticmethod
    def _echo(client: socket.socket, conn: TcpConnection) -> None:
        with client:
            try:
                while data := client.recv(65536):
                    conn.received += data
                    client.sendall(data)
            except OSError:
                pass
            conn.eof.set()

    def wait_connections(self, count: int, timeout: float = 20.0) -> list[TcpConnection]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.connections) >= count:
                    return list(self.connections)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} connection(s), got {len(self.connections)}")

    def close(self) -> None:
        self.sock.close()


class UdpEchoServer:
    """Echoes every datagram to its sender; `transform` may change what goes back."""

    def __init__(self, transform: Callable[[bytes], bytes] = lambda data: data) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.received: list[tuple[bytes, tuple[str, int]]] = []
        self._transform = transform
        threading.Thread(target=self._serve, name="test-udp-echo", daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(65535)
            except OSError:
                return
            self.received.append((data, peer))
            self.sock.sendto(self._transform(data), peer)

    def close(self) -> None:
        self.sock.close()


@contextmanager
def echo_servers() -> Iterator[tuple[TcpEchoServer, UdpEchoServer]]:
    tcp, udp = TcpEchoServer(), UdpEchoServer(lambda data: b"echo:" + data)
    try:
        yield tcp, udp
    finally:
        tcp.close()
        udp.close()
