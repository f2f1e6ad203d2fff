"""The typed daemon<->worker messages (workers/messages.py) and one worker's request/reply link
(workers/process.py) over a real socketpair. The far end is this test speaking the protocol, standing
in for a worker process (tests/unit/test_process_pool.py runs real ones)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import anyio
import pytest

from tauon.metrics import Metrics
from tauon.model.address import Address
from tauon.settings import Settings
from tauon.workers.channel import Channel
from tauon.workers.messages import (
    BadMessage,
    Close,
    Failed,
    Init,
    Ok,
    Ready,
    Remove,
    Stats,
    Stop,
    decode,
    encode,
)
from tauon.workers.process import WorkerProcess
from tauon.workers.stats import RemoteStats, snapshot


def test_every_message_survives_encode_and_decode(tmp_path: Path) -> None:
    settings = Settings(watch_dir=tmp_path, state_root=tmp_path, cache_dir=tmp_path)
    messages = [
        Init(settings=settings, worker=2), Ready(pid=42), Close(seq=3, key=7),
        Remove(seq=4, app="a.json", key=None), Remove(seq=5, app="a.json", key=9), Stop(),
        Ok(seq=6), Failed(seq=7, error="boom", transient=True),
        Stats(apps={"a.json": ({("web", 200): 3}, [1, 2], 0.5, 1)}, capacity=(1, 2, 3)),
    ]
    for message in messages:
        raw = encode(message)
        assert raw["op"] == message.op
        assert decode(raw) == message


@pytest.mark.parametrize(("raw", "error"), [
    ({"op": "launch"}, "unknown message 'launch'"),
    ({"seq": 1}, "unknown message None"),
    (["op", "ok"], "a list where a message was expected"),
    ({"op": "ok"}, "'ok' message without seq"),
    ({"op": "ok", "seq": 1, "extra": True}, "'ok' message with unknown field(s) extra"),
    ({"op": "ok", "seq": "1"}, "'ok' message: seq is a str, not int"),
    ({"op": "ok", "seq": True}, "'ok' message: seq is a bool, not int"),
    ({"op": "remove", "seq": 1, "app": "a", "key": "k"}, "key is a str, not int or None"),
    ({"op": "deploy", "seq": 1, "app": "a", "serial": 1, "number": 1, "plan": {}, "key": 1,
      "fd": False, "address": "127.0.0.1:80"}, "'deploy' message: "),
])
def test_unknown_and_malformed_messages_are_refused_by_name(raw: object, error: str) -> None:
    with pytest.raises(BadMessage) as refused:
        decode(raw)  # type: ignore[arg-type]
    assert error in str(refused.value)


def test_a_deploy_keeps_its_address_and_the_lost_socket_mark() -> None:
    raw = {"op": "deploy", "seq": 1, "app": "a", "serial": 1, "number": 1, "plan": None, "key": 1,
           "fd": True, "address": Address("127.0.0.1", 80), "fd_lost": True}
    with pytest.raises(BadMessage, match="plan is a NoneType, not GenerationPlan"):
        decode(raw)


def test_worker_stats_fold_into_the_daemons_totals() -> None:
    metrics = Metrics()
    metrics.requests_for("a.json").observe("web", 200, 0.01)
    report = snapshot(metrics, (1, 4, 10))
    stats = RemoteStats()
    stats.report(1, decode(encode(report)))  # type: ignore[arg-type]
    stats.report(2, report)
    assert stats.capacity() == (2, 8, 20)
    merged = stats.merged({"a.json"})
    assert [s.requests for s in merged["a.json"]] == [{("web", 200): 1}] * 2
    stats.fold(1, {"a.json"})  # worker 1 exited: its count stays, its capacity goes
    assert stats.capacity() == (1, 4, 10)
    assert sum(sum(s.requests.values()) for s in stats.merged({"a.json"})["a.json"]) == 2
    assert stats.merged(set()) == {"a.json": [stats.retired["a.json"]]}  # exited ones are kept
    stats.forget("a.json")
    assert stats.merged({"a.json"}) == {}


def sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "60"])


def test_requests_get_their_own_answers_and_an_unanswered_one_kills_the_worker() -> None:
    async def main() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        worker = WorkerProcess(1, sleeper(), Channel(ours))
        peer = Channel(theirs)

        async def answer_in_reverse() -> None:
            first, _ = await peer.receive()
            second, _ = await peer.receive()
            await peer.send(encode(Failed(seq=second["seq"], error="no")))
            await peer.send(encode(Ok(seq=first["seq"])))

        async def read() -> None:
            while True:
                message = await worker.receive()
                assert isinstance(message, Ok | Failed)
                worker.answered(message)

        replies: dict[str, object] = {}

        async def ask(name: str, message: Close | Remove) -> None:
            replies[name] = await worker.request(message, timeout=10)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read)
            tg.start_soon(answer_in_reverse)
            tg.start_soon(ask, "close", Close(seq=0, key=7))
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(ask, "remove", Remove(seq=0, app="a.json", key=None))
            with anyio.fail_after(10):
                while len(replies) < 2:
                    await anyio.sleep(0.01)
            assert isinstance(replies["close"], Ok) and isinstance(replies["remove"], Failed)

            # Nobody answers this one: the worker is killed, to be restarted by its pool.
            assert await worker.request(Close(seq=0, key=8), timeout=0.2) is None
            assert worker.proc.wait(10) == -9
            tg.cancel_scope.cancel()
        worker.channel.close()
        peer.close()

    anyio.run(main)


def test_a_dead_worker_leaves_no_request_waiting() -> None:
    async def main() -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        worker = WorkerProcess(1, sleeper(), Channel(ours))
        async with anyio.create_task_group() as tg:
            async def ask() -> None:
                assert await worker.request(Close(seq=0, key=1), timeout=60) is None

            tg.start_soon(ask)
            await anyio.wait_all_tasks_blocked()
            worker.abandon()  # what the pool does when the worker's channel closes
        assert worker.alive  # given up on, not killed: the pool reaps it
        worker.proc.kill()
        worker.proc.wait()
        worker.channel.close()
        theirs.close()

    anyio.run(main)
