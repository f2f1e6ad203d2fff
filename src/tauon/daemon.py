"""The daemon's main task: watch -> scan -> reconcile -> supervise, plus signals and sd_notify."""

from __future__ import annotations

import logging
import signal

import anyio
from anyio.abc import TaskGroup

from tauon.control.dirscan import scan_directory
from tauon.control.reconcile import reconcile
from tauon.control.supervisor import Supervisor
from tauon.control.watcher import Watcher, run_watcher
from tauon.notify import Notifier
from tauon.settings import Settings
from tauon.wasm.engine import WasmEngine

log = logging.getLogger("tauon")


async def run_daemon(settings: Settings, notifier: Notifier | None = None) -> None:
    notifier = notifier or Notifier()
    settings.watch_dir.mkdir(parents=True, exist_ok=True)
    settings.state_root.mkdir(parents=True, exist_ok=True)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    engine = WasmEngine(settings.cache_dir / "compiled")
    engine.start()
    log.info("tauon watching %s (state %s, cache %s)", settings.watch_dir, settings.state_root,
             settings.cache_dir)
    try:
        async with anyio.create_task_group() as tg:
            supervisor = Supervisor(settings, engine, tg)
            async with run_watcher(settings.watch_dir, resync_interval=settings.resync_interval) as watcher:
                first_scan = anyio.Event()
                tg.start_soon(_announce_ready, supervisor, notifier, first_scan)
                with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
                    async with anyio.create_task_group() as loop_tg:
                        loop_tg.start_soon(_reconcile_loop, settings, watcher, supervisor, loop_tg,
                                           first_scan)
                        async for signum in signals:
                            if signum == signal.SIGHUP:
                                log.info("SIGHUP: rescanning and re-resolving every reference")
                                notifier.reloading()
                                watcher.request("SIGHUP")
                                supervisor.reload_all()
                                tg.start_soon(_announce_ready, supervisor, notifier, first_scan)
                                continue
                            log.info("%s: stopping; draining requests (up to %.0fs)",
                                     signal.Signals(signum).name, settings.drain_timeout)
                            notifier.stopping()
                            loop_tg.cancel_scope.cancel()
                            break
            with anyio.CancelScope(shield=True):
                await supervisor.shutdown()
            tg.cancel_scope.cancel()
    finally:
        engine.stop()
    log.info("tauon stopped")


async def _reconcile_loop(settings: Settings, watcher: Watcher, supervisor: Supervisor,
                          tg: TaskGroup, first_scan: anyio.Event) -> None:
    retry_pending = False

    async def retry() -> None:
        nonlocal retry_pending
        await anyio.sleep(1.0)
        retry_pending = False
        watcher.request("retry unreadable app files")

    async for reason in watcher.ticks():
        log.debug("rescan: %s", reason)
        scan = await anyio.to_thread.run_sync(scan_directory, settings.watch_dir)
        if not scan.directory_present:
            # A vanished directory is more likely a redeploy in progress than "delete every app":
            # keep serving until the directory comes back and says otherwise.
            first_scan.set()
            continue
        plan = reconcile(scan.apps, supervisor.held())
        supervisor.apply(plan)
        first_scan.set()
        if plan.problems and not retry_pending:
            # A half-written file parses on a later look; don't wait for the periodic resync.
            retry_pending = True
            tg.start_soon(retry)


async def _announce_ready(supervisor: Supervisor, notifier: Notifier, first_scan: anyio.Event) -> None:
    await first_scan.wait()
    await supervisor.wait_settled()
    running = sum(1 for s in supervisor.slots.values() if s.state == "running")
    failed = len(supervisor.slots) - running
    status = f"{running} app(s) serving, {failed} failing"
    log.info("ready: %s", status)
    notifier.ready(status)
