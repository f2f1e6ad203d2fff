"""The daemon's pool of worker processes (`--workers N`): start them, deploy to them, restart them.

The daemon itself is the first of the N serving processes; this pool runs the other N-1. Each gets the
daemon's listening sockets and every generation the daemon puts into service, and answers when it
serves it. A worker that dies (a crash in a guest's native code, the OOM killer) is restarted with
backoff and re-sent everything being served; meanwhile the others keep accepting on the same sockets,
so clients see no refused connections. Request metrics come back once a second and are summed into
the daemon's /metrics (workers/stats.py). One process and its requests: workers/process.py; the
messages: workers/messages.py.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from tauon.app.plan import GenerationPlan
from tauon.metrics import Metrics, RequestStats
from tauon.model.address import Address
from tauon.server.balance import KEYS, ProcessShares, ShareBoard
from tauon.settings import Settings
from tauon.workers.channel import ChannelClosed
from tauon.workers.messages import BadMessage, Close, Deploy, Failed, Init, Ok, Ready, Remove, Stats, Stop
from tauon.workers.process import CHILD_COMMAND, WorkerProcess
from tauon.workers.stats import RemoteStats

log = logging.getLogger("tauon.workers")

START_TIMEOUT = 60.0
"""Seconds a new worker may take to import tauon and start its engine."""
REPLY_TIMEOUT = 120.0
"""Seconds a worker may take to build a generation. The daemon has compiled it already, so a worker
only loads it from the cache; a worker slower than this is restarted (and re-sent everything)."""
LAUNCH_DELAY = 1.0
"""Seconds the daemon serves alone after its initial apps are up, before starting the workers."""
STOP_TIMEOUT = 5.0
"""Seconds past the drain timeout a stopping worker gets before it is killed."""


@dataclass(frozen=True)
class _Deployed:
    serial: int
    number: int
    plan: GenerationPlan
    address: Address
    key: int
    sock: socket.socket


RUNTIME_PREFIX = "tauon-shared-"
RETRY_DEPLOY = 5.0
"""Seconds before a worker that could not take an app (no descriptor free) is sent it again."""


def remove_stale_runtime_dirs(parent: Path) -> None:
    """Remove the shared-store directories of daemons that are gone (killed, crashed): their stores
    lived only as long as the daemon. Named `tauon-shared-<pid>-*`; a live pid's directory is kept."""
    try:
        entries = list(parent.glob(f"{RUNTIME_PREFIX}*-*"))
    except OSError:
        return
    for entry in entries:
        pid_text = entry.name[len(RUNTIME_PREFIX):].split("-", 1)[0]
        if not pid_text.isdigit() or pid_text == str(os.getpid()) or _alive(int(pid_text)):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink() and entry.stat().st_uid == os.getuid():
                shutil.rmtree(entry, ignore_errors=True)
                log.info("removed %s, left behind by a tauon that is gone", entry)
        except OSError:
            continue


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ProcessPool:
    def __init__(self, settings: Settings, count: int, metrics: Metrics, *,
                 command: Sequence[str] = CHILD_COMMAND) -> None:
        self.settings = settings
        self.count = count
        self.metrics = metrics
        self.command = command
        """What a worker process runs (its end of the channel's fd is appended)."""
        self.live: dict[int, WorkerProcess] = {}
        self.desired: dict[str, _Deployed] = {}
        self.stats = RemoteStats()
        self._serial = itertools.count(1)
        self._stopping = False
        self._launch = anyio.Event()
        self._tg: TaskGroup | None = None
        parent = Path(os.environ.get("RUNTIME_DIRECTORY") or tempfile.gettempdir())
        remove_stale_runtime_dirs(parent)
        self.board = ShareBoard.create(count)
        self.shares = ProcessShares(self.board, 0)
        """The daemon is process 0 of the connection board its workers map (server/balance.py)."""
        self.runtime_dir = Path(tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{os.getpid()}-", dir=parent))
        """Apps without a state_dir keep their stores here, shared by every process (control/runner.py)."""

    # -- life -----------------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep N-1 workers alive from `launch()` until `stop()`; `started()` at once."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            for index in range(1, self.count):
                tg.start_soon(self._keep, index)
            task_status.started()

    def launch(self) -> None:
        """Start the workers. The daemon calls this once its initial apps are up: starting N Python
        processes costs CPU the first requests of a (warm) restart should get, so the daemon serves
        alone until LAUNCH_DELAY after that, and each worker is sent everything being served when it
        is ready."""
        self._launch.set()

    async def _keep(self, index: int) -> None:
        await self._launch.wait()
        await anyio.sleep(LAUNCH_DELAY)
        delay = 1.0
        while not self._stopping:
            started = time.monotonic()
            try:
                await self._run_one(index)
            except Exception:
                log.exception("worker %d: unexpected failure", index)
            if self._stopping:
                return
            self.metrics.worker_restarts.inc()
            if time.monotonic() - started > 60:
                delay = 1.0  # it served for a while: this is a fresh failure, not a crash loop
            log.error("worker %d: restarting in %.0fs; the other processes keep serving", index, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _run_one(self, index: int) -> None:
        worker = WorkerProcess.spawn(index, self.command, self.board.fds)
        try:
            await worker.send(Init(settings=self.settings, worker=index))
            with anyio.fail_after(START_TIMEOUT):
                message = await worker.receive()
            if not isinstance(message, Ready):
                raise BadMessage(f"a {message.op!r} message where 'ready' was expected")
            log.info("%s serving", worker.label)
            self.live[index] = worker
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._resync, worker)
                await self._read(worker)
                tg.cancel_scope.cancel()
        except (ChannelClosed, TimeoutError, BadMessage) as exc:
            if not self._stopping:
                log.error("worker %d (pid %d) failed: %s", index, worker.proc.pid, exc or "no answer")
        finally:
            self.live.pop(index, None)
            self.stats.fold(index, self.desired)
            worker.abandon()  # anyone waiting for this worker gets no reply
            worker.channel.close()
            with anyio.CancelScope(shield=True):
                await self._reap(worker)
            self.board.clear_process(index, KEYS.rows())  # its connections went with it

    async def _resync(self, worker: WorkerProcess) -> None:
        """Everything being served, to a worker that has just started."""
        async with anyio.create_task_group() as tg:
            for app_id in list(self.desired):
                tg.start_soon(self._deploy_to, worker, app_id)
        if self.desired:
            log.info("%s serves %d apps", worker.label, len(self.desired))

    async def _read(self, worker: WorkerProcess) -> None:
        """Until the worker goes away; a message that is not the protocol's restarts it."""
        while True:
            try:
                message = await worker.receive()
                if isinstance(message, Stats):
                    self.stats.report(worker.index, message)
                elif isinstance(message, Ok | Failed):
                    worker.answered(message)
                else:
                    raise BadMessage(f"a {message.op!r} message, which only the daemon sends")
            except ChannelClosed:
                return
            except BadMessage as exc:
                log.error("%s broke the protocol: %s; restarting it", worker.label, exc)
                worker.proc.kill()
                return

    async def _reap(self, worker: WorkerProcess) -> None:
        proc = worker.proc
        deadline = time.monotonic() + self.settings.drain_timeout + STOP_TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            await anyio.sleep(0.05)
        if proc.poll() is None:
            log.warning("%s did not stop; killing it", worker.label)
            proc.kill()
            await anyio.to_thread.run_sync(proc.wait)
        code = proc.returncode
        if code and not self._stopping:
            how = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit code {code}"
            log.error("%s exited (%s)", worker.label, how)

    async def stop(self) -> None:
        """Ask every worker to drain and exit; wait for them (killing any that overstay)."""
        self._stopping = True
        for worker in self.live.values():
            worker.abandon()  # nobody waits for a reply from a worker that is being stopped
        async with anyio.create_task_group() as tg:
            for worker in list(self.live.values()):
                tg.start_soon(self._stop_one, worker)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    async def _stop_one(self, worker: WorkerProcess) -> None:
        with contextlib.suppress(ChannelClosed):
            await worker.send(Stop())
        await self._reap(worker)

    # -- what the workers serve -----------------------------------------------------------------

    async def _deploy_to(self, worker: WorkerProcess, app_id: str) -> None:
        deployed = self.desired.get(app_id)
        if deployed is None:
            return
        first = deployed.key not in worker.keys
        if first and deployed.sock.fileno() < 0:
            return  # the daemon closed this listener meanwhile; a newer deploy or removal follows
        if first:
            worker.keys.add(deployed.key)
        reply = await worker.request(
            Deploy(seq=0, app=app_id, serial=deployed.serial, number=deployed.number, plan=deployed.plan,
                   address=deployed.address, key=deployed.key, fd=first),
            deployed.sock if first else None, timeout=REPLY_TIMEOUT)
        if isinstance(reply, Failed) and worker.alive and not self._stopping:
            if reply.transient:  # e.g. out of descriptors: retry later, kill nothing
                worker.keys.discard(deployed.key)
                log.warning("%s could not serve %s generation %d yet: %s; trying again in %.0fs",
                            worker.label, app_id, deployed.number, reply.error, RETRY_DEPLOY)
                if self._tg is not None:
                    self._tg.start_soon(self._retry_deploy, worker, app_id)
                return
            log.error("%s could not serve %s generation %d: %s; restarting it", worker.label, app_id,
                      deployed.number, reply.error)
            worker.proc.kill()

    async def _retry_deploy(self, worker: WorkerProcess, app_id: str) -> None:
        await anyio.sleep(RETRY_DEPLOY)
        if self.live.get(worker.index) is worker and worker.alive:
            await self._deploy_to(worker, app_id)

    async def deploy(self, app_id: str, number: int, plan: GenerationPlan, address: Address,
                     key: int, sock: socket.socket) -> None:
        """Serve this generation in every worker (on listening socket `key`); returns when each
        live worker serves it, or has failed and is being restarted."""
        self.desired[app_id] = _Deployed(next(self._serial), number, plan, address, key, sock)
        await self._each(self._deploy_to, app_id)

    async def close_listener(self, key: int) -> None:
        """Every worker stops accepting on `key` and drains it (before the daemon rebinds the port)."""
        async def close(worker: WorkerProcess, key: int) -> None:
            if key in worker.keys:
                await worker.request(Close(seq=0, key=key), timeout=REPLY_TIMEOUT)
                worker.keys.discard(key)

        await self._each(close, key)

    async def remove(self, app_id: str, key: int | None) -> None:
        """The app file is gone: drain and drop what the workers serve for it on listener `key`."""
        deployed = self.desired.get(app_id)
        if deployed is not None and deployed.key == key:
            del self.desired[app_id]

        async def remove(worker: WorkerProcess, app_id: str) -> None:
            await worker.request(Remove(seq=0, app=app_id, key=key), timeout=REPLY_TIMEOUT)
            if key is not None:
                worker.keys.discard(key)

        await self._each(remove, app_id)

    async def _each(self, fn: Callable[[WorkerProcess, Any], Coroutine[Any, Any, None]], arg: Any) -> None:
        async with anyio.create_task_group() as tg:
            for worker in list(self.live.values()):
                tg.start_soon(fn, worker, arg)

    # -- metrics --------------------------------------------------------------------------------

    def forget(self, app_id: str) -> None:
        self.stats.forget(app_id)

    def request_stats(self) -> Mapping[str, list[RequestStats]]:
        return self.stats.merged(self.desired)

    def capacity(self) -> tuple[int, int, int]:
        return self.stats.capacity()

    def connections(self, index: int) -> int:
        """Client connections process `index` holds open (0: the daemon), from the board."""
        return self.board.connections(index, KEYS.rows())

    def describe(self) -> list[dict[str, Any]]:
        """/status rows: each live worker, its pid, the requests it has served and is serving (as of
        its last report)."""
        rows = []
        for worker in sorted(self.live.values(), key=lambda w: w.index):
            stats = self.stats.of(worker.index).values()
            rows.append({"worker": worker.index, "pid": worker.proc.pid,
                         "up_seconds": round(time.monotonic() - worker.started, 1),
                         "requests": sum(sum(s.requests.values()) for s in stats),
                         "in_flight": sum(s.inflight for s in stats),
                         "connections": self.connections(worker.index)})
        return rows
