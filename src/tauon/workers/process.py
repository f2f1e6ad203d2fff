"""One worker process as the daemon sees it: the OS process, the channel to it, and the requests
waiting for its answers (each request carries a `seq` its answer repeats)."""

from __future__ import annotations

import dataclasses
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from tauon.workers.channel import Channel, ChannelClosed
from tauon.workers.messages import Message, Reply, Request, decode, encode

log = logging.getLogger("tauon.workers")

CHILD_COMMAND = (sys.executable, "-m", "tauon.workers.child")


@dataclass(eq=False)
class WorkerProcess:
    index: int
    proc: subprocess.Popen[bytes]
    channel: Channel
    started: float = field(default_factory=time.monotonic)
    keys: set[int] = field(default_factory=set)
    """Listening sockets this worker has been sent."""
    _seq: int = 0
    _waiting: dict[int, anyio.Event] = field(default_factory=dict)
    _replies: dict[int, Reply] = field(default_factory=dict)

    @classmethod
    def spawn(cls, index: int, command: Sequence[str] = CHILD_COMMAND,
              board_fds: Sequence[int] = ()) -> WorkerProcess:
        """Start `command FD [BOARD...]` (`python -m tauon.workers.child FD BOARD...`), FD its end of a
        new socketpair, BOARD the connection board's memfd and eventfds (server/balance.py)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fds = [theirs.fileno(), *board_fds]
        try:
            proc = subprocess.Popen([*command, *map(str, fds)], pass_fds=fds, stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        return cls(index, proc, Channel(ours))

    @property
    def label(self) -> str:
        return f"worker {self.index} (pid {self.proc.pid})"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    async def send(self, message: Message, sock: socket.socket | None = None) -> None:
        await self.channel.send(encode(message), sock)

    async def receive(self) -> Message:
        """The next message (a socket sent along is closed: workers send none). Raises
        ChannelClosed, or BadMessage for one that is not the protocol's."""
        raw, sock = await self.channel.receive()
        if sock is not None:
            sock.close()
        return decode(raw)

    async def request(self, message: Request, sock: socket.socket | None = None, *,
                      timeout: float) -> Reply | None:
        """Send and wait for the answer; None if the worker died or never answered (it is then
        killed: its restart re-sends everything it should serve)."""
        self._seq += 1
        seq = self._seq
        event = anyio.Event()
        self._waiting[seq] = event
        try:
            await self.send(dataclasses.replace(message, seq=seq), sock)
            with anyio.move_on_after(timeout) as scope:
                await event.wait()
        except ChannelClosed:
            return None
        finally:
            self._waiting.pop(seq, None)
        reply = self._replies.pop(seq, None)
        if scope.cancelled_caught and self.alive:
            log.error("%s did not answer %s within %.0fs; restarting it", self.label, message.op, timeout)
            self.proc.kill()
        return reply

    def answered(self, reply: Reply) -> None:
        """An answer came: wake its request (an answer nobody waits for any more is dropped)."""
        event = self._waiting.pop(reply.seq, None)
        if event is not None:
            self._replies[reply.seq] = reply
            event.set()

    def abandon(self) -> None:
        """Nobody gets an answer from this worker any more (it died, or is being stopped)."""
        for event in self._waiting.values():
            event.set()
