"""A keep-alive HTTP/1.1 upstream in the test process that counts the TCP connections it accepts.

Outbound-HTTP tests use it to see pooling from the server's side: many sequential guest requests
over one connection, or one connection each when pooling is off. `delay` makes it answer late.
"""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class CountingUpstream(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.drop_idle = False
        """Close each connection after its response without saying so (as a server whose idle
        timeout has passed): the client must not send its next request there."""
        self.connections = 0
        self.requests = 0
        self.open_connections = 0
        self._lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)
        self.port: int = self.server_address[1]

    def process_request_thread(self, request: object, client_address: object) -> None:
        with self._lock:
            self.connections += 1
            self.open_connections += 1
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            with self._lock:
                self.open_connections -= 1

    def wait_open(self, count: int, timeout: float = 20.0) -> None:
        """Until exactly `count` client connections are open (closed ones have been seen closing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.open_connections == count:
                return
            time.sleep(0.02)
        raise AssertionError(f"{self.open_connections} upstream connection(s) open, expected {count}")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says otherwise
    server: CountingUpstream

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.server.delay:
            time.sleep(self.server.delay)
        body = f"upstream saw {self.path}".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.server.drop_idle:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def http_server(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server on a free loopback port answering with `handler`; yields its port."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="test-http-server", daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def counting_upstream(delay: float = 0.0) -> Iterator[CountingUpstream]:
    server = CountingUpstream(delay)
    thread = threading.Thread(target=server.serve_forever, name="test-upstream", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
