"""The daemon's side of the worker processes (`--workers N`): start them, deploy to them, restart them.

The daemon itself is the first of the N serving processes; this pool runs the other N-1. Each gets the
daemon's listening sockets and every generation the daemon puts into service, and answers when it
serves it. A worker that dies (a crash in a guest's native code, the OOM killer) is restarted with
backoff and re-sent everything being served; meanwhile the others keep accepting on the same sockets,
so clients see no refused connections. Request metrics come back once a second and are summed into
the daemon's /metrics.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from tauon.app.plan import GenerationPlan
from tauon.metrics import Metrics, RequestStats
from tauon.model.address import Address
from tauon.settings import Settings
from tauon.workers.channel import Channel, ChannelClosed, Message

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


@dataclass(eq=False)
class _Worker:
    index: int
    proc: subprocess.Popen[bytes]
    channel: Channel
    started: float = field(default_factory=time.monotonic)
    replies: dict[int, Any] = field(default_factory=dict)
    waiting: dict[int, anyio.Event] = field(default_factory=dict)
    keys: set[int] = field(default_factory=set)
    """Listening sockets this worker has been sent."""
    stats: dict[str, RequestStats] = field(default_factory=dict)
    capacity: tuple[int, int, int] = (0, 0, 0)

    @property
    def label(self) -> str:
        return f"worker {self.index} (pid {self.proc.pid})"


def _stats(snapshot: tuple[dict[tuple[str, int], int], list[int], float, int]) -> RequestStats:
    stats = RequestStats()
    stats.requests, stats.buckets, stats.total_seconds, stats.inflight = snapshot
    return stats


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


class WorkerPool:
    def __init__(self, settings: Settings, count: int, metrics: Metrics) -> None:
        self.settings = settings
        self.count = count
        self.metrics = metrics
        self.live: dict[int, _Worker] = {}
        self.desired: dict[str, _Deployed] = {}
        self.retired: dict[str, RequestStats] = {}
        """Request counts of workers that have exited (counters must not go backwards)."""
        self._serial = itertools.count(1)
        self._seq = itertools.count(1)
        self._stopping = False
        self._launch = anyio.Event()
        self._tg: TaskGroup | None = None
        parent = Path(os.environ.get("RUNTIME_DIRECTORY") or tempfile.gettempdir())
        remove_stale_runtime_dirs(parent)
        self.runtime_dir = Path(tempfile.mkdtemp(prefix=f"{RUNTIME_PREFIX}{os.getpid()}-", dir=parent))
        """Apps without a state_dir keep their stores here, shared by every process (supervisor.py)."""

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
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tauon.workers.child", str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        worker = _Worker(index, proc, Channel(ours))
        try:
            await worker.channel.send({"op": "init", "settings": self.settings, "worker": index})
            with anyio.fail_after(START_TIMEOUT):
                message, _ = await worker.channel.receive()
            if message.get("op") != "ready":
                raise ChannelClosed(f"unexpected first message {message.get('op')!r}")
            log.info("%s serving", worker.label)
            self.live[index] = worker
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._resync, worker)
                await self._read(worker)
                tg.cancel_scope.cancel()
        except (ChannelClosed, TimeoutError) as exc:
            if not self._stopping:
                log.error("worker %d (pid %d) failed: %s", index, proc.pid, exc or "no answer")
        finally:
            self.live.pop(index, None)
            self._fold(worker)
            for event in worker.waiting.values():
                event.set()  # anyone waiting for this worker gets no reply
            worker.channel.close()
            with anyio.CancelScope(shield=True):
                await self._reap(worker)

    async def _resync(self, worker: _Worker) -> None:
        """Everything being served, to a worker that has just started."""
        async with anyio.create_task_group() as tg:
            for app_id in list(self.desired):
                tg.start_soon(self._deploy_to, worker, app_id)
        if self.desired:
            log.info("%s serves %d apps", worker.label, len(self.desired))

    async def _read(self, worker: _Worker) -> None:
        while True:
            try:
                message, sock = await worker.channel.receive()
            except ChannelClosed:
                return
            if sock is not None:
                sock.close()
            if message["op"] == "stats":
                worker.stats = {app_id: _stats(s) for app_id, s in message["apps"].items()}
                worker.capacity = message["capacity"]
                continue
            seq: int = message.get("seq", 0)
            event = worker.waiting.pop(seq, None)
            if event is not None:
                worker.replies[seq] = message
                event.set()

    async def _reap(self, worker: _Worker) -> None:
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

    def _fold(self, worker: _Worker) -> None:
        for app_id, stats in worker.stats.items():
            if app_id in self.desired:
                stats.inflight = 0
                self.retired[app_id] = RequestStats.combined([self.retired.get(app_id), stats])
        worker.stats = {}

    async def stop(self) -> None:
        """Ask every worker to drain and exit; wait for them (killing any that overstay)."""
        self._stopping = True
        for worker in self.live.values():
            for event in worker.waiting.values():
                event.set()  # nobody waits for a reply from a worker that is being stopped
        async with anyio.create_task_group() as tg:
            for worker in list(self.live.values()):
                tg.start_soon(self._stop_one, worker)
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    async def _stop_one(self, worker: _Worker) -> None:
        with contextlib.suppress(ChannelClosed):
            await worker.channel.send({"op": "stop"})
        await self._reap(worker)

    # -- requests ---------------------------------------------------------------------------------

    async def _request(self, worker: _Worker, message: Message, sock: socket.socket | None = None,
                       timeout: float = REPLY_TIMEOUT) -> Message | None:
        """Send and wait for the answer; None if the worker died or never answered (it is then
        killed: its restart re-sends everything it should serve)."""
        seq = next(self._seq)
        message["seq"] = seq
        event = anyio.Event()
        worker.waiting[seq] = event
        try:
            await worker.channel.send(message, sock)
            with anyio.move_on_after(timeout) as scope:
                await event.wait()
        except ChannelClosed:
            return None
        finally:
            worker.waiting.pop(seq, None)
        reply: Message | None = worker.replies.pop(seq, None)
        if scope.cancelled_caught and worker.proc.poll() is None:
            log.error("%s did not answer %s within %.0fs; restarting it", worker.label, message["op"],
                      timeout)
            worker.proc.kill()
        return reply

    async def _deploy_to(self, worker: _Worker, app_id: str) -> None:
        deployed = self.desired.get(app_id)
        if deployed is None:
            return
        first = deployed.key not in worker.keys
        if first and deployed.sock.fileno() < 0:
            return  # the daemon closed this listener meanwhile; a newer deploy or removal follows
        if first:
            worker.keys.add(deployed.key)
        reply = await self._request(worker, {
            "op": "deploy", "app": app_id, "serial": deployed.serial, "number": deployed.number,
            "plan": deployed.plan, "address": deployed.address, "key": deployed.key, "fd": first,
        }, deployed.sock if first else None)
        if reply is not None and reply["op"] == "error" and worker.proc.poll() is None:
            if reply.get("transient"):  # e.g. out of descriptors: retry later, kill nothing
                worker.keys.discard(deployed.key)
                log.warning("%s could not serve %s generation %d yet: %s; trying again in %.0fs",
                            worker.label, app_id, deployed.number, reply["error"], RETRY_DEPLOY)
                if self._tg is not None:
                    self._tg.start_soon(self._retry_deploy, worker, app_id)
                return
            log.error("%s could not serve %s generation %d: %s; restarting it", worker.label, app_id,
                      deployed.number, reply["error"])
            worker.proc.kill()

    async def _retry_deploy(self, worker: _Worker, app_id: str) -> None:
        await anyio.sleep(RETRY_DEPLOY)
        if self.live.get(worker.index) is worker and worker.proc.poll() is None:
            await self._deploy_to(worker, app_id)

    async def deploy(self, app_id: str, number: int, plan: GenerationPlan, address: Address,
                     key: int, sock: socket.socket) -> None:
        """Serve this generation in every worker (on listening socket `key`); returns when each
        live worker serves it, or has failed and is being restarted."""
        self.desired[app_id] = _Deployed(next(self._serial), number, plan, address, key, sock)
        await self._each(self._deploy_to, app_id)

    async def close_listener(self, key: int) -> None:
        """Every worker stops accepting on `key` and drains it (before the daemon rebinds the port)."""
        async def close(worker: _Worker, key: int) -> None:
            if key in worker.keys:
                await self._request(worker, {"op": "close", "key": key})
                worker.keys.discard(key)

        await self._each(close, key)

    async def remove(self, app_id: str, key: int | None) -> None:
        """The app file is gone: drain and drop what the workers serve for it on listener `key`."""
        deployed = self.desired.get(app_id)
        if deployed is not None and deployed.key == key:
            del self.desired[app_id]

        async def remove(worker: _Worker, app_id: str) -> None:
            await self._request(worker, {"op": "remove", "app": app_id, "key": key})
            if key is not None:
                worker.keys.discard(key)

        await self._each(remove, app_id)

    async def _each(self, fn: Any, arg: Any) -> None:
        async with anyio.create_task_group() as tg:
            for worker in list(self.live.values()):
                tg.start_soon(fn, worker, arg)

    # -- metrics --------------------------------------------------------------------------------

    def forget(self, app_id: str) -> None:
        self.retired.pop(app_id, None)
        for worker in self.live.values():
            worker.stats.pop(app_id, None)

    def request_stats(self) -> Mapping[str, list[RequestStats]]:
        merged: dict[str, list[RequestStats]] = {}
        for app_id, stats in self.retired.items():
            merged.setdefault(app_id, []).append(stats)
        for worker in self.live.values():
            for app_id, stats in worker.stats.items():
                if app_id in self.desired:
                    merged.setdefault(app_id, []).append(stats)
        return merged

    def capacity(self) -> tuple[int, int, int]:
        totals = [worker.capacity for worker in self.live.values()]
        return (sum(t[0] for t in totals), sum(t[1] for t in totals), sum(t[2] for t in totals))

    def describe(self) -> list[dict[str, Any]]:
        """/status rows: each live worker, its pid, the requests it has served and is serving (as of
        its last report)."""
        return [{"worker": worker.index, "pid": worker.proc.pid,
                 "up_seconds": round(time.monotonic() - worker.started, 1),
                 "requests": sum(sum(stats.requests.values()) for stats in worker.stats.values()),
                 "in_flight": sum(stats.inflight for stats in worker.stats.values())}
                for worker in sorted(self.live.values(), key=lambda w: w.index)]

