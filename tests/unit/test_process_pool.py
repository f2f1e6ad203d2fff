"""The process pool's logic (workers/pool.py) with real small child processes: each worker is
tests/support/tinyworker.py, a stand-in that speaks the real protocol over the real socketpair (with
listening sockets passed along) but serves nothing, so it starts in a fraction of tauon's worker's
time. tests/integration/test_worker_processes.py runs the pool with tauon's own workers."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from tauon.app.plan import GenerationPlan
from tauon.metrics import Metrics
from tauon.model.address import Address
from tauon.settings import Settings
from tauon.workers import pool as pool_module
from tauon.workers.pool import ProcessPool
from tauon.workers.process import WorkerProcess

TINY = (sys.executable, str(Path(__file__).resolve().parents[1] / "support" / "tinyworker.py"))
DEADLINE = 30.0


async def until(check: Callable[[], bool], what: str) -> None:
    try:
        with anyio.fail_after(DEADLINE):
            while not check():
                await anyio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"{what}: not reached within {DEADLINE}s") from None


def plan(name: str) -> GenerationPlan:
    return GenerationPlan(app_id=f"{name}.json", reference="r:1", digest="sha256:00", name=name,
                          version=None, triggers=(), components={})


def restarts(metrics: Metrics) -> float:
    return metrics.registry.get_sample_value("tauon_worker_restarts_total") or 0.0


def test_deploys_resyncs_restarts_and_stop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    monkeypatch.setattr(pool_module, "LAUNCH_DELAY", 0.0)
    settings = Settings(watch_dir=tmp_path, state_root=tmp_path, cache_dir=tmp_path, drain_timeout=1.0)
    metrics = Metrics()
    address = Address("127.0.0.1", 1)
    listening = socket.create_server(("127.0.0.1", 0))

    async def main() -> None:
        pool = ProcessPool(settings, 3, metrics, command=TINY)
        async with anyio.create_task_group() as tg:
            await tg.start(pool.run)
            pool.launch()
            await until(lambda: len(pool.live) == 2, "two workers up")
            await until(lambda: pool.capacity() == (0, 3, 2), "their stats reports")

            # A deploy reaches every worker, the socket with the first deploy of its key only.
            await pool.deploy("ok.json", 1, plan("ok"), address, 7, listening)
            await pool.deploy("ok.json", 2, plan("ok"), address, 7, listening)
            assert all(w.keys == {7} for w in pool.live.values())
            await until(lambda: pool.capacity()[0] >= 4, "both deploys answered by each")

            # A worker that cannot serve a deploy is restarted, and re-sent what is being served.
            first: WorkerProcess = pool.live[1]
            await pool.deploy("bad.json", 1, plan("refuse"), address, 8, listening)
            assert first.proc.wait(DEADLINE) < 0  # killed, before deploy() returned
            await pool.remove("bad.json", 8)  # the file is fixed meanwhile: not re-sent
            await until(lambda: len(pool.live) == 2 and all(w.keys == {7} for w in pool.live.values()),
                        "both workers back, resynced")
            assert pool.live[1] is not first and restarts(metrics) == 2.0  # both refused it

            # Out of descriptors (transient): the worker stays; the key is sent again later.
            survivor = pool.live[2]
            await pool.deploy("later.json", 1, plan("later"), address, 9, listening)
            assert pool.live[2] is survivor and 9 not in survivor.keys
            await pool.remove("later.json", 9)

            # A listener closed: only workers holding its key are asked.
            await pool.close_listener(7)
            assert all(not w.keys for w in pool.live.values())

            # An answer that is not the protocol's restarts the worker that sent it.
            await pool.deploy("odd.json", 1, plan("garble"), address, 10, listening)
            await until(lambda: "broke the protocol: unknown message 'bogus'" in caplog.text,
                        "the garbled answer refused")
            await pool.remove("odd.json", 10)

            await pool.stop()
            assert not pool.live and not pool.runtime_dir.exists()
            tg.cancel_scope.cancel()

    with caplog.at_level(logging.INFO, logger="tauon.workers"):
        anyio.run(main)
    listening.close()
    assert "worker 1 (pid" in caplog.text and "could not serve bad.json generation 1" in caplog.text
    assert "restarting in 1s; the other processes keep serving" in caplog.text
