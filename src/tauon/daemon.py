"""The daemon's main task: (watch ->) read desired state -> reconcile -> supervise; signals, sd_notify,
the admin endpoints.

Desired state comes from a watched directory (one file per app) or, in lepton mode, from one apps file
read at start and on SIGHUP. Everything after that is the same code.
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
from anyio.abc import TaskGroup

from tauon.control.dirscan import ScanMemo, scan_directory
from tauon.control.lepton import read_apps_file
from tauon.control.reconcile import reconcile
from tauon.control.runtimeconfig import attach_runtime_configs
from tauon.control.spec import AppSpec
from tauon.control.supervisor import Supervisor
from tauon.control.watcher import run_watcher
from tauon.errors import BindError, SpecError, TauonError
from tauon.metrics import Metrics
from tauon.notify import Notifier, StatusReporter, run_watchdog, watchdog_interval
from tauon.server.listener import Listener
from tauon.settings import Settings
from tauon.status import pending_apps, summary
from tauon.view import DaemonView
from tauon.wasm.engine import WasmEngine
from tauon.workers.pool import ProcessPool

log = logging.getLogger("tauon")

Desired = dict[str, AppSpec | SpecError]


class Ticks(Protocol):
    def request(self, reason: str) -> None: ...

    def ticks(self) -> AsyncIterator[str]: ...


class _ManualTicks:
    """Lepton mode watches nothing: rescans happen at start and on SIGHUP only."""

    def __init__(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[str](math.inf)

    def request(self, reason: str) -> None:
        self._send.send_nowait(reason)

    async def ticks(self) -> AsyncIterator[str]:
        async for reason in self._receive:
            yield reason


class _Reload:
    """SIGHUP bookkeeping: the next rescan also re-resolves tags; READY=1 once that has settled."""

    def __init__(self) -> None:
        self.pending = False
        self.sequence = 0


async def run_daemon(settings: Settings, notifier: Notifier | None = None) -> None:
    """Run until SIGTERM/SIGINT. Raises TauonError when start-up is impossible (bad --apps file,
    --admin address unusable)."""
    notifier = notifier or Notifier()
    if settings.apps_file is not None:
        read_apps_file(settings.apps_file)  # fail at start on an unusable file, before anything else
        mode, source = "apps-file", str(settings.apps_file)
    else:
        settings.watch_dir.mkdir(parents=True, exist_ok=True)
        mode, source = "directory", str(settings.watch_dir)
    settings.state_root.mkdir(parents=True, exist_ok=True)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    engine = WasmEngine(settings.cache_dir / "compiled", pool=settings.pool,
                        run_slots=settings.running_guests, sandbox=settings.compile)
    engine.start()
    log.info("tauon %s %s (state %s, cache %s)", "serving the apps in" if settings.apps_file else "watching",
             source, settings.state_root, settings.cache_dir)
    fatal: TauonError | None = None
    try:
        async with anyio.create_task_group() as tg:
            metrics = Metrics()
            reporter: StatusReporter | None = None
            workers = await _start_workers(settings, metrics, tg)
            supervisor = Supervisor(settings, engine, tg, metrics=metrics, workers=workers)
            if notifier.enabled:
                reporter = StatusReporter(notifier, lambda: summary(supervisor.counts()))
                supervisor.on_change = reporter.poke
                tg.start_soon(reporter.run)
            metrics.app_states = supervisor.counts
            metrics.app_tiers = lambda: {app_id: slot.generation.plan.tier
                                         for app_id, slot in supervisor.slots.items()
                                         if slot.generation is not None}
            metrics.guest_capacity = lambda: _capacity(engine, workers)
            view = DaemonView(supervisor, metrics, mode, source, start_grace=settings.start_grace)
            try:
                admin = await _start_admin(settings, view, tg)
            except TauonError as exc:
                fatal = exc
                tg.cancel_scope.cancel()
                return
            interval = watchdog_interval(os.environ, os.getpid())
            if interval is not None and notifier.enabled:
                tg.start_soon(run_watchdog, notifier, interval)
            await _serve(settings, supervisor, view, notifier, reporter, tg)
            view.stopping = True
            with anyio.CancelScope(shield=True):
                await supervisor.shutdown()
                if workers is not None:
                    await workers.stop()
                if admin is not None:
                    await admin.stop()
            tg.cancel_scope.cancel()
    finally:
        engine.stop()
        if fatal is not None:
            raise fatal
    log.info("tauon stopped")


async def _start_workers(settings: Settings, metrics: Metrics, tg: TaskGroup) -> ProcessPool | None:
    if settings.workers <= 1:
        return None
    workers = ProcessPool(settings, settings.workers, metrics)
    metrics.remote_requests = workers.request_stats
    await tg.start(workers.run)
    log.info("%d processes serve requests: this one and %d workers (started once the initial apps "
             "are up)", settings.workers, settings.workers - 1)
    return workers


def _capacity(engine: WasmEngine, workers: ProcessPool | None) -> tuple[int, int, int]:
    ours = (engine.slots.busy, engine.slots.size, engine.pool.instances)
    if workers is None:
        return ours
    theirs = workers.capacity()
    return (ours[0] + theirs[0], ours[1] + theirs[1], ours[2] + theirs[2])


async def _start_admin(settings: Settings, view: DaemonView, tg: TaskGroup) -> Listener | None:
    if settings.admin is None:
        return None
    from tauon.admin import build_admin_app  # Starlette is only needed when --admin is on

    admin = Listener(settings.admin, build_admin_app(view), owner="--admin", drain_timeout=1.0)
    try:
        await tg.start(admin.run)
    except BindError as exc:
        exc.field = None  # "--admin: cannot listen on ...": the option is the field
        raise
    log.info("admin endpoints on %s (/healthz /readyz /status /metrics)", settings.admin.url())
    return admin


@asynccontextmanager
async def _open_ticks(settings: Settings) -> AsyncIterator[Ticks]:
    if settings.apps_file is not None:
        ticks = _ManualTicks()
        ticks.request("startup")
        yield ticks
        return
    async with run_watcher(settings.watch_dir, resync_interval=settings.resync_interval) as watcher:
        yield watcher


async def _serve(settings: Settings, supervisor: Supervisor, view: DaemonView, notifier: Notifier,
                 reporter: StatusReporter | None, tg: TaskGroup) -> None:
    """Reconcile on every tick until SIGTERM/SIGINT; SIGHUP rescans and re-resolves every tag."""
    reload = _Reload()
    async with _open_ticks(settings) as ticks:
        tg.start_soon(_announce_ready, supervisor, view, notifier, reporter, settings.start_grace)
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with anyio.create_task_group() as loop_tg:
                loop_tg.start_soon(_reconcile_loop, settings, ticks, supervisor, view, notifier, reporter,
                                   reload, loop_tg)
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        log.info("SIGHUP: %s and re-resolving every reference",
                                 "re-reading the apps file" if settings.apps_file else "rescanning")
                        notifier.reloading()
                        view.metrics.reloads.inc()
                        view.reloading = True
                        reload.pending = True
                        reload.sequence += 1
                        ticks.request("SIGHUP")
                        continue
                    log.info("%s: stopping; draining requests (up to %.0fs)",
                             signal.Signals(signum).name, settings.drain_timeout)
                    notifier.stopping()
                    view.stopping = True
                    loop_tg.cancel_scope.cancel()
                    break


def _read_desired(settings: Settings, last_error: list[str], memo: ScanMemo) -> Desired | None:
    """Desired state, or None to keep everything as it is (directory gone, apps file unusable)."""
    if settings.apps_file is None:
        scan = scan_directory(settings.watch_dir, memo)
        if scan.error is not None:
            if last_error != [scan.error]:
                log.error("%s; the apps keep serving as they are, and tauon keeps trying", scan.error)
            last_error[:] = [scan.error]
        else:
            last_error.clear()
        # A vanished directory is more likely a redeploy in progress than "delete every app".
        if not scan.directory_present:
            return None
        return attach_runtime_configs(scan.apps, settings.watch_dir, settings.runtime_config)
    try:
        parsed = read_apps_file(settings.apps_file)
    except SpecError as exc:
        if last_error != [str(exc)]:
            log.error("%s; the apps keep serving as they are", exc)
        last_error[:] = [str(exc)]
        return None
    last_error.clear()
    for warning in parsed.warnings:
        log.warning("%s", warning)
    return attach_runtime_configs(parsed.apps, settings.apps_file.parent, settings.runtime_config)


async def _reconcile_loop(settings: Settings, ticks: Ticks, supervisor: Supervisor, view: DaemonView,
                          notifier: Notifier, reporter: StatusReporter | None, reload: _Reload,
                          tg: TaskGroup) -> None:
    retry_pending = False
    last_error: list[str] = []
    memo = ScanMemo()

    async def retry() -> None:
        nonlocal retry_pending
        await anyio.sleep(1.0)
        retry_pending = False
        ticks.request("retry unreadable app files")

    async for reason in ticks.ticks():
        log.debug("rescan: %s", reason)
        reloading, reload.pending = reload.pending, False
        desired = await anyio.to_thread.run_sync(_read_desired, settings, last_error, memo)
        fresh: set[str] = set()
        if desired is not None:
            plan = reconcile(desired, supervisor.held())
            supervisor.apply(plan)
            fresh = {spec.id for spec in (*plan.start, *plan.update)}
            if plan.problems and not retry_pending and settings.apps_file is None:
                # A half-written file parses on a later look; don't wait for the periodic resync.
                retry_pending = True
                tg.start_soon(retry)
        view.scanned.set()
        if reloading:
            if desired is not None:  # an unusable source changes nothing, tags included
                supervisor.reload_all(skip=fresh)  # new and changed apps are being pulled already
            tg.start_soon(_announce_reloaded, supervisor, view, notifier, reporter, reload,
                          reload.sequence)


async def _announce_ready(supervisor: Supervisor, view: DaemonView, notifier: Notifier,
                          reporter: StatusReporter | None, grace: float) -> None:
    await view.scanned.wait()
    with anyio.move_on_after(grace):
        await supervisor.wait_settled()
    if supervisor.workers is not None:
        supervisor.workers.launch()
    status = summary(supervisor.counts())
    pending = pending_apps(supervisor)
    if pending:
        log.warning("ready after %.0fs without %s, still starting: %s", grace, len(pending),
                    ", ".join(f"{p['app']} ({p['state']})" for p in pending))
    log.info("ready: %s", status)
    notifier.ready(status)
    if reporter is not None:
        reporter.sent(status)


async def _announce_reloaded(supervisor: Supervisor, view: DaemonView, notifier: Notifier,
                             reporter: StatusReporter | None, reload: _Reload, sequence: int) -> None:
    await view.scanned.wait()
    await supervisor.wait_attempts()
    if sequence != reload.sequence:
        return  # another SIGHUP came meanwhile; its own announcement follows
    view.reloading = False
    status = summary(supervisor.counts())
    log.info("reload done: %s", status)
    notifier.ready(status)
    if reporter is not None:
        reporter.sent(status)
