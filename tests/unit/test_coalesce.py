"""A connection's writes within one loop step leave as one send (server/coalesce.py), against a
transport that records what it is handed (the socket is the boundary: what reaches it is the point)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from tauon.server.coalesce import MAX_HELD, CoalescingTransport


class Recorder:
    """The real transport's side: every call that would reach the socket."""

    def __init__(self) -> None:
        self.sends: list[list[bytes]] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.sends.append([data])

    def writelines(self, data: list[bytes]) -> None:
        self.sends.append(list(data))

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 8080) if name == "sockname" else None


def wrapped(loop: asyncio.AbstractEventLoop) -> tuple[CoalescingTransport, Recorder]:
    real = Recorder()
    return CoalescingTransport(cast(asyncio.Transport, real), loop), real


def test_a_head_and_body_written_in_one_step_leave_in_one_send() -> None:
    async def main() -> None:
        transport, real = wrapped(asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        transport.write(b"hello")
        assert real.sends == []  # held until the response completes or the step ends
        transport.flush()  # what the protocol does when the response completes
        assert real.sends == [[b"HTTP/1.1 200 OK\r\n\r\n", b"hello"]]
        transport.flush()
        assert len(real.sends) == 1  # nothing held: nothing sent

    asyncio.run(main())


def test_what_is_held_leaves_when_the_step_ends() -> None:
    """A streaming response's head must not wait for its body."""
    async def main() -> None:
        transport, real = wrapped(asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
        await asyncio.sleep(0)
        assert real.sends == [[b"HTTP/1.1 200 OK\r\n\r\n"]]

    asyncio.run(main())


def test_big_writes_are_not_held() -> None:
    async def main() -> None:
        transport, real = wrapped(asyncio.get_running_loop())
        transport.write(b"x" * (MAX_HELD + 1))
        assert real.sends == [[b"x" * (MAX_HELD + 1)]]
        transport.write(b"head")
        transport.write(b"y" * MAX_HELD)  # over the limit together: handed over at once
        assert real.sends[-1] == [b"head", b"y" * MAX_HELD]

    asyncio.run(main())


def test_close_sends_what_is_held_first_and_abort_drops_it() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, real = wrapped(loop)
        transport.write(b"431")
        transport.close()
        assert real.sends == [[b"431"]] and real.closed
        transport, real = wrapped(loop)
        transport.write(b"partial")
        transport.abort()
        await asyncio.sleep(0)
        assert real.sends == [] and real.aborted
        # Anything else is the real transport's.
        assert transport.get_extra_info("sockname") == ("127.0.0.1", 8080)

    asyncio.run(main())


def test_a_close_the_protocol_takes_over_waits_for_a_second_close() -> None:
    """A lingering close: the first close is the protocol's to finish; writes after it are dropped;
    a second close (a server shutting down) or close_now ends the connection."""
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport, real = wrapped(loop)
        asked: list[bool] = []
        transport.on_close = lambda: asked.append(True) or True
        transport.write(b"HTTP/1.1 413 Payload Too Large\r\n\r\n")
        transport.close()
        assert asked == [True] and real.sends == [[b"HTTP/1.1 413 Payload Too Large\r\n\r\n"]]
        assert not real.closed and transport.is_closing()
        transport.write(b"late")  # a write after close never reaches the socket
        transport.flush()
        assert len(real.sends) == 1
        transport.close()
        assert real.closed and asked == [True]

        transport, real = wrapped(loop)
        transport.on_close = lambda: asked.append(True) or True
        transport.close_now()
        assert real.closed and len(asked) == 1  # a client out of time: not asked

        transport, real = wrapped(loop)
        transport.on_close = lambda: False  # nothing unread: an ordinary close
        transport.close()
        assert real.closed

    asyncio.run(main())
