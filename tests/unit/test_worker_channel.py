"""The daemon-worker channel over a real socketpair: framing, ordering, sockets passed with messages."""

from __future__ import annotations

import socket

import anyio
import pytest

from tauon import settings
from tauon.metrics import Metrics, RequestStats
from tauon.settings import worker_count
from tauon.workers.channel import Channel, ChannelClosed


def pair() -> tuple[Channel, Channel]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    return Channel(a), Channel(b)


def test_messages_arrive_whole_and_in_order_even_when_larger_than_one_read() -> None:
    async def main() -> list[dict[str, object]]:
        left, right = pair()
        big = {"op": "deploy", "plan": b"p" * (3 * 1024 * 1024)}  # several socket buffers
        received = []

        async def reader() -> None:
            for _ in range(3):
                message, sock = await right.receive()
                assert sock is None
                received.append(message)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await left.send({"op": "a", "n": 1})
            await left.send(big)
            await left.send({"op": "c", "n": 3})
        left.close()
        right.close()
        return received

    received = anyio.run(main)
    assert [m["op"] for m in received] == ["a", "deploy", "c"]
    assert received[1]["plan"] == b"p" * (3 * 1024 * 1024)


def test_a_listening_socket_sent_along_accepts_connections_in_the_receiver() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]

    async def main() -> bytes:
        left, right = pair()
        await left.send({"op": "deploy", "key": 7, "fd": True}, listener)
        await left.send({"op": "other", "key": 8})
        listener.close()  # the receiver's copy keeps the socket open
        message, received = await right.receive()
        assert message["key"] == 7 and received is not None
        message, nothing = await right.receive()
        assert message["key"] == 8 and nothing is None
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            received.setblocking(True)
            conn, _ = received.accept()
            client.sendall(b"hello")
            data = conn.recv(5)
            conn.close()
        received.close()
        left.close()
        right.close()
        return data

    assert anyio.run(main) == b"hello"


def test_the_other_end_going_away_is_reported_as_closed() -> None:
    async def main() -> None:
        left, right = pair()
        left.close()
        with pytest.raises(ChannelClosed):
            await right.receive()
        with pytest.raises(ChannelClosed):
            await right.send({"op": "late"})
        right.close()

    anyio.run(main)


def test_request_stats_of_several_processes_add_up() -> None:
    one, two = RequestStats(), RequestStats()
    one.observe("web", 200, 0.002)
    one.observe("web", 404, 0.2)
    two.observe("web", 200, 0.002)
    two.inflight = 3
    total = RequestStats.combined([one, None, two])
    assert total.requests == {("web", 200): 2, ("web", 404): 1}
    assert sum(total.buckets) == 3 and total.inflight == 3
    assert total.total_seconds == pytest.approx(0.204)

    metrics = Metrics()
    metrics.requests_for("app.json").observe("web", 200, 0.001)
    metrics.remote_requests = lambda: {"app.json": [one], "other.json": [two]}
    merged = dict(metrics.request_items())
    assert merged["app.json"].requests == {("web", 200): 2, ("web", 404): 1}
    assert merged["other.json"].requests == {("web", 200): 1}
    assert metrics.local_requests() == (1, 0)
    text = metrics.render()[0].decode()
    assert 'tauon_http_requests_total{app="app.json",class="2xx",code="200",component="web"} 2.0' in text


def test_worker_count_accepts_numbers_and_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    assert worker_count("1") == 1
    assert worker_count("4") == 4
    assert worker_count("auto") >= 1
    monkeypatch.setattr(settings, "usable_cpus", lambda: 6)
    assert worker_count("auto") == 6
    with pytest.raises(ValueError, match="neither a number nor 'auto'"):
        worker_count("many")
    with pytest.raises(ValueError, match=">= 1"):
        worker_count("0")


def _is_open(fd: int) -> bool:
    import os

    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def test_a_socket_that_cannot_be_received_is_reported_not_a_closed_channel() -> None:
    """At the descriptor limit the kernel drops an SCM_RIGHTS fd (MSG_CTRUNC). A worker used to read
    that as "the daemon has gone" and exit; the message now arrives, marked, and the channel lives."""
    import resource

    async def main() -> tuple[dict[str, object], object, dict[str, object]]:
        left, right = pair()
        listening = socket.socket()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        await anyio.sleep(0)  # the event loop's own descriptors exist before the limit drops
        await left.send({"op": "deploy", "fd": True}, listening)
        await left.send({"op": "after"})
        lowest_free = next(n for n in range(soft) if not _is_open(n))
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no descriptor free
        try:
            message, sock = await right.receive()
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        after, _ = await right.receive()
        listening.close()
        left.close()
        right.close()
        return message, sock, after

    message, sock, after = anyio.run(main)
    assert message == {"op": "deploy", "fd": True, "fd_lost": True} and sock is None
    assert after == {"op": "after"}
