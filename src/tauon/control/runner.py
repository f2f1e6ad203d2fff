"""Runs one app file: each version of the file gets a run (in its own cancel scope, superseding an
unfinished one) that prepares a generation completely (pull, verify, load, compile) while the previous
one keeps serving, then puts it into service on the app's site. A failure leaves the last good
generation serving and tries again with exponential backoff.

Slot states: pending -> pulling -> starting (compiling) -> running, or failed (retrying with backoff).
A running slot may carry an error: its last good generation serves while a newer attempt fails.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from tauon.app.plan import GenerationPlan
from tauon.control.appslot import AppSlot, banner, describe_failure
from tauon.control.cachekeeper import CacheKeeper
from tauon.control.loader import load_plan
from tauon.control.progress import PullProgress
from tauon.control.sitehost import DaemonSiteHost
from tauon.control.spec import AppSpec
from tauon.errors import TauonError
from tauon.metrics import ByteCounter, Metrics
from tauon.registry import PulledApp, pull_app
from tauon.runtimeconfig.memory import has_memory_stores, memory_stores_in
from tauon.server.generation import Generation, build_generation
from tauon.server.site import Site
from tauon.server.tls import TlsError, build_context
from tauon.settings import Settings
from tauon.wasm.engine import WasmEngine
from tauon.wasm.headstart import head_start

log = logging.getLogger("tauon")


@dataclass
class RunnerShared:
    """What every app's runner shares: the daemon's engine, limits, cache and listening sockets."""

    settings: Settings
    engine: WasmEngine
    metrics: Metrics
    tg: TaskGroup
    cache: CacheKeeper
    host: DaemonSiteHost
    pull_limiter: anyio.CapacityLimiter
    compile_limiter: anyio.CapacityLimiter
    """Compile children at once (each may compile several apps: wasm/compile_batch.py)."""
    build_limiter: anyio.CapacityLimiter = dataclasses.field(
        default_factory=lambda: anyio.CapacityLimiter(2))
    """Threads preparing a plan or loading its compiled code at once, foreground and background."""
    background_limiter: anyio.CapacityLimiter = dataclasses.field(
        default_factory=lambda: anyio.CapacityLimiter(1))
    """Cranelift compiles behind a Winch generation: one at a time, so serving keeps the CPU."""


class AppRunner:
    def __init__(self, spec: AppSpec, shared: RunnerShared, on_change: Callable[[], None]) -> None:
        self.shared = shared
        site = Site(spec.id, shared.host, shared.tg, shared.metrics, shared.settings)
        self.slot = AppSlot(spec, site, on_change=on_change)
        site.on_tls_problem = self.slot.set_tls_problem
        self._run_scope: anyio.CancelScope | None = None
        """The current run's: a newer version of the file, or its removal, cancels it."""
        self._upgrade: GenerationPlan | None = None
        """The plan of the Winch generation serving, to build again with Cranelift (a run superseded
        before that finished, by a SIGHUP say, picks it up again)."""

    def run(self, spec: AppSpec, *, reload: bool = False) -> None:
        """Start a run for this version of the app file, superseding an unfinished one. `reload`:
        SIGHUP, which says so when the tag still resolves to the serving digest."""
        if self._run_scope is not None:
            self._run_scope.cancel()
        scope = anyio.CancelScope()
        self._run_scope = scope
        self.slot.attempt_done = anyio.Event()
        self.shared.tg.start_soon(self._run, spec, scope, reload)

    def cancel(self) -> None:
        """The app file is gone: stop any attempt; `teardown` stops serving."""
        slot = self.slot
        slot.removed = True
        slot.settled.set()  # nobody waits for an app that is gone
        if self._run_scope is not None:
            self._run_scope.cancel()

    async def teardown(self) -> None:
        async with self.slot.lock:
            await self.slot.site.close()
        log.info("%s: stopped", self.slot.spec.id)

    async def _run(self, spec: AppSpec, scope: anyio.CancelScope, reload: bool) -> None:
        done = self.slot.attempt_done
        try:
            with scope:
                await self._attempts(spec, reload, done)
        finally:
            done.set()  # superseded or stopped: whoever waits looks at the slot's newer attempt

    async def _attempts(self, spec: AppSpec, reload: bool, done: anyio.Event) -> None:
        slot = self.slot
        attempt = 0
        while True:
            try:
                await self._deploy(spec, reload=reload)
                slot.settled.set()
                if self._upgrade is not None and slot.generation is not None \
                        and slot.generation.plan.tier == "winch":
                    done.set()  # serving: the optimized generation follows in the same cancel scope
                    await self._optimize(spec, self._upgrade)
                return
            except TauonError as exc:
                error = str(exc.with_file(spec.id))
            except Exception as exc:  # a bug in one app's path must not take down the others
                error = describe_failure(spec.id, exc)
            self.shared.metrics.app_failures.labels(spec.id).inc()
            delay = min(self.shared.settings.max_backoff, 2.0**attempt)
            attempt += 1
            if slot.generation is not None:
                slot.set_state("running", error)
                log.error("%s; generation %d keeps serving; retrying in %.0fs",
                          error, slot.generation.number, delay)
            else:
                slot.set_state("failed", error)
                log.error("%s; retrying in %.0fs", error, delay)
            slot.settled.set()
            done.set()
            await anyio.sleep(delay)

    async def _deploy(self, spec: AppSpec, *, reload: bool) -> None:
        slot = self.slot
        if slot.state == "pending":  # a failed app retrying stays "failed" until it serves
            slot.set_state("pulling")
        async with self._head_start(spec) as on_download:  # a compile child starts during a download
            pulled = await self._pull(spec, on_download)
            current = slot.generation
            if (current is not None and current.plan.digest == pulled.digest
                    and slot.serving_hash == spec.content_hash):
                if reload:
                    log.info("%s: %s still resolves to %s; nothing to do", spec.id, spec.reference,
                             pulled.digest[:19])
                slot.set_state("running")
                return
            if pulled.offline:
                log.warning("%s: registry unreachable; using cached %s for %s", spec.id,
                            pulled.digest[:19], spec.reference)
            plan = self._plan(spec, pulled)
            if slot.state == "pulling":
                slot.set_state("starting")
            started = time.monotonic()
            gen = await build_generation(plan, slot.generations, self.shared.engine,
                                         self.shared.compile_limiter, redis=True,
                                         tiering=self.shared.settings.tiering,
                                         build_limiter=self.shared.build_limiter)
        self.shared.metrics.compile_duration.labels(spec.id).observe(time.monotonic() - started)
        with anyio.CancelScope(shield=True):
            async with slot.lock:
                await self._activate(spec, gen)
        if slot.generation is gen:
            self._upgrade = plan if gen.plan.tier == "winch" else None

    def _head_start(self, spec: AppSpec) -> AbstractAsyncContextManager[Callable[[], None] | None]:
        if self.shared.engine.sandbox is None:
            return contextlib.nullcontext(None)  # it compiles in this process: no child to start
        return head_start(spec.id)

    async def _optimize(self, spec: AppSpec, plan: GenerationPlan) -> None:
        """Compile the serving Winch generation's plan with Cranelift, niced, in one compile child at
        a time (shared by the apps waiting for it), and swap it in. A failure leaves Winch's code
        serving (logged; the next change of the file, SIGHUP or restart tries again)."""
        slot, shared = self.slot, self.shared
        started = time.monotonic()
        try:
            slot.generations += 1
            # Its limiter (one token) runs one background compile child at a time across apps.
            gen = await build_generation(plan, slot.generations, shared.engine,
                                         shared.background_limiter, redis=True, nice=10,
                                         build_limiter=shared.build_limiter)
        except TauonError as exc:
            log.error("%s; Winch's code keeps serving", exc.with_file(spec.id))
            return
        log.info("%s: compiled with Cranelift in %.1fs; swapping it in", spec.id,
                 time.monotonic() - started)
        with anyio.CancelScope(shield=True):
            async with slot.lock:
                await self._activate(spec, gen)
        if slot.generation is gen:
            self._upgrade = None

    async def _pull(self, spec: AppSpec, on_download: Callable[[], None] | None = None) -> PulledApp:
        settings, metrics, cache = self.shared.settings, self.shared.metrics, self.shared.cache
        progress = PullProgress(spec.id, spec.reference, mode=settings.progress)
        counter = ByteCounter(progress, on_download=on_download)
        started = time.monotonic()
        metrics.pulls.labels(spec.id).inc()
        try:
            pulled = await anyio.to_thread.run_sync(
                functools.partial(
                    pull_app, spec.reference, base_dir=settings.reference_base,
                    cache_dir=settings.cache_dir, insecure=spec.insecure, progress=counter,
                    timeout=settings.pull_timeout, deadline=settings.pull_deadline,
                    ca_bundle=self._ca_bundle(spec), limits=cache.limits, make_room=cache.make_room,
                ),
                limiter=self.shared.pull_limiter,
                abandon_on_cancel=True,
            )
        except TauonError:
            metrics.pull_failures.labels(spec.id).inc()
            raise
        finally:
            progress.close()
            metrics.pull_bytes.labels(spec.id).inc(counter.downloaded)
        metrics.pull_duration.labels(spec.id).observe(time.monotonic() - started)
        return pulled

    def _plan(self, spec: AppSpec, pulled: PulledApp) -> GenerationPlan:
        plan = load_plan(spec, pulled, state_root=self.shared.settings.state_root)
        plan = dataclasses.replace(plan, tls=self._tls_paths(spec),
                                   component_runtime=self.shared.settings.component_runtime,
                                   instance_reuse=self.shared.settings.instance_reuse)
        if plan.tls is not None:  # a bad pair fails the attempt before compiling
            try:
                build_context(Path(plan.tls[0]), Path(plan.tls[1]))
            except TlsError as exc:
                raise exc.with_file(spec.id) from None
        self.slot.generations += 1
        if self.shared.host.pool is not None and (plan.state_dir is None
                                                   or has_memory_stores(plan.runtime_config)):
            plan = self._shared_memory_state(plan, self.slot.generations)
        return plan

    def _ca_bundle(self, spec: AppSpec) -> Path | None:
        if spec.ca_bundle is not None:
            return self.shared.settings.reference_base / spec.ca_bundle  # an absolute path stays as it is
        return self.shared.settings.ca_bundle

    def _tls_paths(self, spec: AppSpec) -> tuple[str, str] | None:
        if spec.tls is None:
            return None
        base = self.shared.settings.reference_base  # an absolute path stays as it is
        return str(base / spec.tls.cert), str(base / spec.tls.key)

    def _shared_memory_state(self, plan: GenerationPlan, number: int) -> GenerationPlan:
        """Without a state_dir, Spin keeps key-value and SQLite data in memory, per generation. With
        worker processes that memory must be shared: it becomes SQLite files in a private directory
        (under $RUNTIME_DIRECTORY or the temp dir), deleted when the generation retires. So do the
        runtime config's stores and databases without a path."""
        pool = self.shared.host.pool
        assert pool is not None
        # Unique per generation: an app file removed and re-added starts again at generation 1
        # while the old one's directory may still be draining.
        path = tempfile.mkdtemp(prefix=f"{plan.app_id}.{number}.", dir=pool.runtime_dir)
        return dataclasses.replace(plan, state_dir=plan.state_dir or path,
                                   runtime_config=memory_stores_in(plan.runtime_config, path))

    async def _activate(self, spec: AppSpec, gen: Generation) -> None:
        slot, site, shared = self.slot, self.slot.site, self.shared
        if slot.removed:  # the file went away while this generation was being prepared
            gen.close()
            return
        old = await site.swap(gen, spec.address)
        slot.serving_hash = spec.content_hash
        slot.set_state("running")
        shared.metrics.swaps.labels(spec.id).inc()
        pool, listener = shared.host.pool, site.listener
        if pool is not None and listener is not None and listener.sock is not None:
            assert spec.address is not None
            await pool.deploy(spec.id, gen.number, gen.plan, spec.address, listener.key, listener.sock)
        if old is not None:
            slot.replaced = old.plan
            site.retire(old)  # after the workers serve gen: they may share its private state dir
        shared.cache.soon()
        log.info("%s", banner(spec, gen, replaced=old))
