"""A listener's server sleeps until it is stopped (no tick ten times a second per server), yet every
response carries the current `Date`, and `stop()` still ends it at once: real listeners on real sockets,
real HTTP clients."""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from anyio.from_thread import BlockingPortal, start_blocking_portal

from support.daemon import free_port
from tauon.model.address import Address
from tauon.server.listener import Listener
from tauon.settings import loop_options

pytestmark = pytest.mark.integration


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


@contextmanager
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal(backend="asyncio", backend_options=loop_options()) as running:
        yield running


def date_of(port: int) -> float:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    assert head[0] == "HTTP/1.1 200 OK", head
    dates = [line.split(":", 1)[1].strip() for line in head[1:] if line.lower().startswith("date:")]
    assert len(dates) == 1, head
    return email.utils.parsedate_to_datetime(dates[0]).timestamp()


def test_responses_carry_the_current_date_and_the_servers_do_not_tick(monkeypatch: pytest.MonkeyPatch
                                                                      ) -> None:
    ticks = []
    tick = uvicorn.Server.on_tick

    async def counted(self: uvicorn.Server, counter: int) -> bool:
        ticks.append(counter)
        return await tick(self, counter)

    monkeypatch.setattr(uvicorn.Server, "on_tick", counted)
    ports = [free_port() for _ in range(20)]
    listeners = [Listener(Address("127.0.0.1", port), _app, owner=f"app{i}.json", drain_timeout=1)
                 for i, port in enumerate(ports)]
    with portal() as running:
        for listener in listeners:
            running.start_task_soon(listener.run)
        for port in ports:
            _wait_accepting(port)
        first = date_of(ports[0])
        assert abs(first - time.time()) <= 2
        time.sleep(1.2)
        later = date_of(ports[-1])
        assert later > first  # the date moves on though no server woke to refresh it

        assert ticks == []  # uvicorn's own loop would have ticked each server a dozen times by now
        began = time.monotonic()
        for listener in listeners:
            running.call(listener.stop)
        assert time.monotonic() - began < 5  # each stop wakes its server, no tick needed
    for port in ports:
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()


def _wait_accepting(port: int) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)
