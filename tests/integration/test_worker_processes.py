"""The process pool (workers/pool.py) with tauon's real worker processes (`python -m
tauon.workers.child`): start after `launch()`, report their capacity, answer requests, get restarted
when killed, stop and leave nothing behind. The pool's logic with small stand-in children is
tests/unit/test_process_pool.py; deploying real generations is test_daemon_workers.py."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tauon.metrics import Metrics
from tauon.model.address import Address
from tauon.server.listener import Listener, bind_socket
from tauon.settings import Settings
from tauon.wasm.pool import PoolSettings
from tauon.workers import pool as pool_module
from tauon.workers.child import HandedSockets
from tauon.workers.pool import RUNTIME_PREFIX, ProcessPool

pytestmark = pytest.mark.integration

DEADLINE = 60.0  # starting a worker imports tauon and wasmtime: seconds on a loaded machine


async def until(check: Callable[[], bool], what: str) -> None:
    try:
        with anyio.fail_after(DEADLINE):
            while not check():
                await anyio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"{what}: not reached within {DEADLINE}s") from None


def test_workers_start_answer_restart_and_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(pool_module, "LAUNCH_DELAY", 0.0)  # no initial apps to give the CPU to first
    stale = tmp_path / f"{RUNTIME_PREFIX}999999999-x"  # a tauon that is gone left this behind
    stale.mkdir()
    settings = Settings(watch_dir=tmp_path, state_root=tmp_path, cache_dir=tmp_path / "cache",
                        drain_timeout=1.0, pool=PoolSettings(instances=3), running_guests=2)
    metrics = Metrics()

    async def main() -> None:
        pool = ProcessPool(settings, 2, metrics)
        assert not stale.exists() and pool.runtime_dir.parent == tmp_path
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            assert not pool.live  # nothing starts before launch()
            pool.launch()
            await until(lambda: 1 in pool.live, "the worker is up")
            first = pool.live[1]
            await until(lambda: pool.capacity() == (0, 2, 3), "its first stats report")
            [row] = pool.describe()
            assert row["worker"] == 1 and row["pid"] == first.proc.pid and row["requests"] == 0

            # A request it can answer: removing an app it does not serve is a no-op, answered Ok.
            await pool.remove("absent.json", None)
            assert first.alive

            os.kill(first.proc.pid, signal.SIGKILL)  # a crash in a guest's native code
            await until(lambda: pool.live.get(1) not in (None, first), "the restarted worker")
            assert metrics.registry.get_sample_value("tauon_worker_restarts_total") == 1.0
            assert first.proc.returncode == -signal.SIGKILL
            second = pool.live[1]

            await pool.stop()
            assert second.proc.returncode == 0  # asked to stop, it drained and exited
            assert not pool.live and not pool.runtime_dir.exists()

    anyio.run(main)


def test_a_listener_the_daemon_closed_while_its_deploy_built_is_not_served() -> None:
    """A stop or a move lands while a worker is still building a deploy: the daemon's Close comes
    first. The deploy is then dropped (workers/child.py), and a listener that was starting when the
    Close came is stopped again, so the worker never accepts on a port the daemon gave up."""
    async def app(scope: object, receive: object, send: object) -> None:
        raise AssertionError("nothing may be served")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            host = HandedSockets(tg)
            host.received(7, bind_socket(Address("127.0.0.1", 0)))
            await host.close_key(7)  # the Close, before the deploy asked for its socket
            assert 7 in host.closed and 7 not in host.sockets
            with pytest.raises(RuntimeError, match="no listening socket for listener 7"):
                host.socket_for("a.json", 7)
            # A Close that came while the listener was starting: it is stopped once started.
            sock = bind_socket(Address("127.0.0.1", 0))
            port = sock.getsockname()[1]
            listener = Listener(Address("127.0.0.1", port), app, owner="a.json", drain_timeout=1.0,
                                sock=sock, key=7)
            await host.start(listener, None)
            assert 7 not in host.listeners and listener.closed.is_set()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()

    anyio.run(main)
