"""A small stand-in for tauon's worker process, for the process pool's unit tests: it speaks the
daemon<->worker protocol (workers/messages.py) over the socketpair it is handed, as
`python tinyworker.py FD`, and serves nothing. It answers every request Ok, except a deploy whose
plan is named "refuse" (Failed) or "later" (Failed, transient), or "garble" (an answer that is not
the protocol's: {"op": "bogus"}); it reports stats once at start and
after each request, and exits 0 on Stop or when the daemon goes away."""

from __future__ import annotations

import os
import signal
import socket
import sys

import anyio

from tauon.workers.channel import Channel, ChannelClosed
from tauon.workers.messages import Deploy, Failed, Init, Ok, Ready, Reply, Stats, Stop, decode, encode


def answer(message: object) -> Reply | None:
    if isinstance(message, Stop):
        return None
    seq = getattr(message, "seq")  # noqa: B009 - every request has one
    if isinstance(message, Deploy) and message.plan.name in ("refuse", "later"):
        return Failed(seq=seq, error=f"the test worker refuses {message.app}",
                      transient=message.plan.name == "later")
    return Ok(seq=seq)


async def run(sock: socket.socket) -> None:
    channel = Channel(sock)
    raw, _ = await channel.receive()
    init = decode(raw)
    assert isinstance(init, Init)
    await channel.send(encode(Ready(pid=os.getpid())))
    served = 0
    while True:
        await channel.send(encode(Stats(apps={}, capacity=(served, init.worker, 1))))
        try:
            raw, passed = await channel.receive()
        except ChannelClosed:
            return
        if passed is not None:
            passed.close()
        message = decode(raw)
        reply = answer(message)
        if reply is None:
            return
        served += 1
        garbled = isinstance(message, Deploy) and message.plan.name == "garble"
        await channel.send({"op": "bogus", "seq": reply.seq} if garbled else encode(reply))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    anyio.run(run, socket.socket(fileno=int(sys.argv[1])))
