"""Applies the desired state: one runner per app file (control/runner.py), each in its own cancel
scope, so one app never disturbs another; reports the apps' states and the files that cannot be served.

A runner prepares a generation completely (pull, verify, load, compile) while the previous generation
keeps serving, then swaps it in on the app's site (server/site.py); a failure leaves the last good
generation serving and retries with backoff. Listeners and generations are retired with a bounded drain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from tauon.control.appslot import AppSlot, nothing
from tauon.control.cachekeeper import CacheKeeper
from tauon.control.reconcile import Plan
from tauon.control.runner import AppRunner, RunnerShared
from tauon.control.sitehost import DaemonSiteHost
from tauon.control.spec import AppSpec
from tauon.errors import SpecError
from tauon.metrics import Metrics
from tauon.settings import Settings
from tauon.wasm.engine import WasmEngine
from tauon.workers.pool import ProcessPool

log = logging.getLogger("tauon")


class Supervisor:
    def __init__(self, settings: Settings, engine: WasmEngine, tg: TaskGroup, *,
                 metrics: Metrics | None = None, on_change: Callable[[], None] = nothing,
                 workers: ProcessPool | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.tg = tg
        self.workers = workers
        """With --workers N > 1: the other processes serving every generation this one serves."""
        self.metrics = metrics or Metrics()
        self.on_change = on_change
        """Called (on the event loop) whenever a slot's state or the set of apps changes."""
        self.runners: dict[str, AppRunner] = {}
        self.problems: dict[str, str] = {}
        self.problem_since: dict[str, float] = {}
        self.cache = CacheKeeper(settings.cache_dir, settings.cache_limits(), self.cache_in_use, tg,
                                 loading=self.first_loads_pending)
        self.shared = RunnerShared(settings, engine, self.metrics, tg, self.cache,
                                   DaemonSiteHost(tg, settings.drain_timeout, workers),
                                   pull_limiter=anyio.CapacityLimiter(4),
                                   compile_limiter=anyio.CapacityLimiter(2))

    @property
    def slots(self) -> dict[str, AppSlot]:
        """Each app file's state and site, by app id."""
        return {app_id: runner.slot for app_id, runner in self.runners.items()}

    # -- desired state --------------------------------------------------------------------------

    def cache_in_use(self) -> tuple[set[str], set[str]]:
        """The cached blobs and asset trees of every serving generation and the ones they replaced."""
        plans = [plan for slot in self.slots.values()
                 for plan in (slot.generation.plan if slot.generation else None, slot.replaced) if plan]
        return ({d for plan in plans for d in plan.cache_refs},
                {plan.cache_assets for plan in plans if plan.cache_assets})

    def first_loads_pending(self) -> bool:
        """Whether an app has yet to serve or fail for the first time (its compiled code, from an
        earlier run, is held by no generation yet)."""
        return any(not slot.settled.is_set() for slot in self.slots.values())

    def held(self) -> dict[str, AppSpec]:
        return {app_id: slot.spec for app_id, slot in self.slots.items()}

    def apply(self, plan: Plan) -> None:
        self._report_problems(plan.problems, plan.kept)
        for app_id in plan.stop:
            self._stop(app_id)
        for spec in plan.start:
            self._warn_spec(spec)
            runner = AppRunner(spec, self.shared, self.on_change)
            self.runners[spec.id] = runner
            log.info("%s: new app file: %s on %s", spec.id, spec.reference, spec.address or "no address")
            runner.run(spec)
        for spec in plan.update:
            self._warn_spec(spec)
            runner = self.runners[spec.id]
            log.info("%s: app file changed: %s on %s", spec.id, spec.reference,
                     spec.address or "no address")
            runner.slot.spec = spec
            runner.run(spec)
        self.on_change()

    def reload_all(self, skip: Iterable[str] = ()) -> None:
        """SIGHUP: re-resolve every tag; unchanged digests are a no-op. `skip`: apps just (re)started."""
        skipped = set(skip)
        for app_id, runner in self.runners.items():
            if app_id not in skipped:
                runner.run(runner.slot.spec, reload=True)

    async def wait_settled(self) -> None:
        """Until every app's first attempt has served or failed (readiness)."""
        for slot in list(self.slots.values()):
            await slot.settled.wait()

    async def wait_attempts(self) -> None:
        """Until every app's current attempt has served or failed (a reload has settled)."""
        while True:
            pending = [s for s in self.slots.values() if not s.attempt_done.is_set() and not s.removed]
            if not pending:
                return
            # A newer attempt may replace the event meanwhile; the loop looks again.
            await pending[0].attempt_done.wait()

    def counts(self) -> dict[str, int]:
        """Apps by state, bad files not held by any slot counted as 'invalid'."""
        counts: dict[str, int] = {}
        for slot in self.slots.values():
            counts[slot.state] = counts.get(slot.state, 0) + 1
        invalid = sum(1 for app_id in self.problems if app_id not in self.slots)
        if invalid:
            counts["invalid"] = invalid
        return counts

    def _warn_spec(self, spec: AppSpec) -> None:
        for warning in spec.warnings:
            log.warning("%s", warning)

    def _report_problems(self, problems: dict[str, SpecError], kept: tuple[str, ...]) -> None:
        now = time.time()
        for app_id, error in problems.items():
            text = str(error)
            if self.problems.get(app_id) == text:
                continue  # already said; periodic resyncs must not repeat it
            self.problem_since[app_id] = now
            if app_id in kept:
                log.error("%s; the last good version keeps serving", text)
            else:
                log.error("%s", text)
        changed = set(self.problems) != set(problems)
        self.problems = {app_id: str(error) for app_id, error in problems.items()}
        self.problem_since = {k: v for k, v in self.problem_since.items() if k in self.problems}
        if changed:
            self.on_change()

    # -- one app's life ------------------------------------------------------------------------

    def _stop(self, app_id: str) -> None:
        runner = self.runners.pop(app_id)
        runner.cancel()
        self.metrics.forget(app_id)
        if self.workers is not None:
            self.workers.forget(app_id)
        log.info("%s: app file removed; stopping (draining up to %.0fs)", app_id,
                 self.settings.drain_timeout)
        self.tg.start_soon(runner.teardown)
        self.cache.soon()

    async def shutdown(self) -> None:
        """Stop every app concurrently, each draining within the drain timeout."""
        async with anyio.create_task_group() as tg:
            for app_id in list(self.runners):
                runner = self.runners.pop(app_id)
                runner.cancel()
                tg.start_soon(runner.teardown)

    # -- output --------------------------------------------------------------------------------

    def state_dir_of(self, spec: AppSpec) -> Path | None:
        if spec.state_dir is None:
            return None
        return self.settings.state_root / spec.state_dir

