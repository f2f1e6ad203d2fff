"""Runs one child per app file, each in its own cancel scope, so one app never disturbs another.

A child prepares a generation completely (pull, verify, load, compile) while the previous generation
keeps serving, then swaps it in; a failure leaves the last good generation serving and retries with
backoff. Listeners and generations are retired with a bounded drain.

Slot states: pending -> pulling -> starting (compiling) -> running, or failed (retrying with backoff).
A running slot may carry an error: its last good generation serves while a newer attempt fails.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import anyio
from anyio.abc import TaskGroup

from tauon.app.loader import load_plan
from tauon.app.plan import GenerationPlan
from tauon.control.appslot import AppSlot, banner, describe_failure, nothing
from tauon.control.cachekeeper import CacheKeeper
from tauon.control.progress import PullProgress
from tauon.control.reconcile import Plan
from tauon.control.spec import Address, AppSpec
from tauon.errors import BindError, SpecError, TauonError
from tauon.metrics import ByteCounter, Metrics
from tauon.registry import pull_app
from tauon.runtimeconfig.memory import has_memory_stores, memory_stores_in, store_dirs
from tauon.server.generation import Generation, build_generation
from tauon.server.listener import Listener
from tauon.server.redis_subscriber import AppRedis
from tauon.server.switchboard import Switchboard
from tauon.server.tls import CertReloader, TlsError, build_context
from tauon.settings import Settings
from tauon.wasm.engine import WasmEngine
from tauon.workers.pool import WorkerPool

log = logging.getLogger("tauon")


class Supervisor:
    def __init__(self, settings: Settings, engine: WasmEngine, tg: TaskGroup, *,
                 metrics: Metrics | None = None, on_change: Callable[[], None] = nothing,
                 workers: WorkerPool | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.tg = tg
        self.workers = workers
        """With --workers N > 1: the other processes serving every generation this one serves."""
        self.metrics = metrics or Metrics()
        self.on_change = on_change
        """Called (on the event loop) whenever a slot's state or the set of apps changes."""
        self.slots: dict[str, AppSlot] = {}
        self.problems: dict[str, str] = {}
        self.problem_since: dict[str, float] = {}
        self.pull_limiter = anyio.CapacityLimiter(4)
        self.compile_limiter = anyio.CapacityLimiter(2)
        self._closing_ports: dict[int, anyio.Event] = {}
        self.cache = CacheKeeper(settings.cache_dir, settings.cache_limits(), self.cache_in_use, tg)

    # -- desired state --------------------------------------------------------------------------

    def cache_in_use(self) -> tuple[set[str], set[str]]:
        """The cached blobs and asset trees of every serving generation and the ones they replaced."""
        plans = [plan for slot in self.slots.values()
                 for plan in (slot.generation.plan if slot.generation else None, slot.replaced) if plan]
        return ({d for plan in plans for d in plan.cache_refs},
                {plan.cache_assets for plan in plans if plan.cache_assets})

    def held(self) -> dict[str, AppSpec]:
        return {app_id: slot.spec for app_id, slot in self.slots.items()}

    def apply(self, plan: Plan) -> None:
        self._report_problems(plan.problems, plan.kept)
        for app_id in plan.stop:
            self._stop(app_id)
        for spec in plan.start:
            self._warn_spec(spec)
            slot = AppSlot(spec, on_change=self.on_change)
            self.slots[spec.id] = slot
            log.info("%s: new app file: %s on %s", spec.id, spec.reference, spec.address or "no address")
            self._spawn_worker(slot, spec, refresh=True)
        for spec in plan.update:
            self._warn_spec(spec)
            slot = self.slots[spec.id]
            log.info("%s: app file changed: %s on %s", spec.id, spec.reference,
                     spec.address or "no address")
            slot.spec = spec
            self._spawn_worker(slot, spec, refresh=True)
        self.on_change()

    def reload_all(self, skip: Iterable[str] = ()) -> None:
        """SIGHUP: re-resolve every tag; unchanged digests are a no-op. `skip`: apps just (re)started."""
        skipped = set(skip)
        for app_id, slot in self.slots.items():
            if app_id not in skipped:
                self._spawn_worker(slot, slot.spec, refresh=True, reload=True)

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

    def _spawn_worker(self, slot: AppSlot, spec: AppSpec, *, refresh: bool, reload: bool = False) -> None:
        if slot.worker is not None:
            slot.worker.cancel()  # a newer version of the file supersedes an unfinished attempt
        scope = anyio.CancelScope()
        slot.worker = scope
        slot.attempt_done = anyio.Event()
        self.tg.start_soon(self._worker, slot, spec, scope, reload)

    async def _worker(self, slot: AppSlot, spec: AppSpec, scope: anyio.CancelScope, reload: bool) -> None:
        done = slot.attempt_done
        try:
            with scope:
                await self._attempts(slot, spec, reload, done)
        finally:
            done.set()  # superseded or stopped: whoever waits looks at the slot's newer attempt

    async def _attempts(self, slot: AppSlot, spec: AppSpec, reload: bool, done: anyio.Event) -> None:
        attempt = 0
        while True:
            try:
                await self._deploy(slot, spec, reload=reload)
                slot.settled.set()
                return
            except TauonError as exc:
                error = str(exc.with_file(spec.id))
            except Exception as exc:  # a bug in one app's path must not take down the others
                error = describe_failure(spec.id, exc)
            self.metrics.app_failures.labels(spec.id).inc()
            delay = min(self.settings.max_backoff, 2.0**attempt)
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

    def _ca_bundle(self, spec: AppSpec) -> Path | None:
        if spec.ca_bundle is not None:
            return self.settings.reference_base / spec.ca_bundle  # an absolute path stays as it is
        return self.settings.ca_bundle

    def _tls_paths(self, spec: AppSpec) -> tuple[str, str] | None:
        if spec.tls is None:
            return None
        base = self.settings.reference_base  # an absolute path stays as it is
        return str(base / spec.tls.cert), str(base / spec.tls.key)

    async def _deploy(self, slot: AppSlot, spec: AppSpec, *, reload: bool) -> None:
        if slot.state == "pending":  # a failed app retrying stays "failed" until it serves
            slot.set_state("pulling")
        progress = PullProgress(spec.id, spec.reference, mode=self.settings.progress)
        counter = ByteCounter(progress)
        metrics = self.metrics
        started = time.monotonic()
        metrics.pulls.labels(spec.id).inc()
        try:
            pulled = await anyio.to_thread.run_sync(
                functools.partial(
                    pull_app, spec.reference, base_dir=self.settings.reference_base,
                    cache_dir=self.settings.cache_dir, insecure=spec.insecure, progress=counter,
                    timeout=self.settings.pull_timeout, deadline=self.settings.pull_deadline,
                    ca_bundle=self._ca_bundle(spec), limits=self.cache.limits,
                    make_room=self.cache.make_room,
                ),
                limiter=self.pull_limiter,
                abandon_on_cancel=True,
            )
        except TauonError:
            metrics.pull_failures.labels(spec.id).inc()
            raise
        finally:
            progress.close()
            metrics.pull_bytes.labels(spec.id).inc(counter.downloaded)
        metrics.pull_duration.labels(spec.id).observe(time.monotonic() - started)
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
        plan = load_plan(spec, pulled, state_root=self.settings.state_root)
        plan = dataclasses.replace(plan, tls=self._tls_paths(spec))
        if plan.tls is not None:  # a bad pair fails the attempt before compiling
            try:
                build_context(Path(plan.tls[0]), Path(plan.tls[1]))
            except TlsError as exc:
                raise exc.with_file(spec.id) from None
        slot.generations += 1
        if self.workers is not None and (plan.state_dir is None or has_memory_stores(plan.runtime_config)):
            plan = self._shared_memory_state(plan, slot.generations)
        if slot.state == "pulling":
            slot.set_state("starting")
        started = time.monotonic()
        gen = await build_generation(plan, slot.generations, self.engine, self.compile_limiter, redis=True)
        metrics.compile_duration.labels(spec.id).observe(time.monotonic() - started)
        with anyio.CancelScope(shield=True):
            async with slot.lock:
                await self._activate(slot, spec, gen)

    async def _activate(self, slot: AppSlot, spec: AppSpec, gen: Generation) -> None:
        if slot.removed:  # the file went away while this generation was being prepared
            gen.close()
            return
        old_gen = slot.generation
        if gen.plan.listens:
            await self._activate_http(slot, spec, gen)
        elif slot.listener is not None:  # the app no longer has HTTP triggers
            self.tg.start_soon(self._drop_listener, slot.spec.id, slot.listener)
            slot.listener = slot.switchboard = None
        if gen.redis is not None or slot.redis is not None:
            if slot.redis is None:
                slot.redis = AppRedis(spec.id, self.tg, self.metrics)
            await slot.redis.activate(gen)  # subscribes first, then points at gen
        slot.generation = gen
        slot.serving_hash = spec.content_hash
        slot.set_state("running")
        self.metrics.swaps.labels(spec.id).inc()
        if self.workers is not None and slot.listener is not None and slot.listener.sock is not None:
            assert spec.address is not None
            await self.workers.deploy(spec.id, gen.number, gen.plan, spec.address, slot.listener.key,
                                      slot.listener.sock)
        if old_gen is not None:
            slot.replaced = old_gen.plan
            self.tg.start_soon(self._retire, old_gen, self.settings.drain_timeout)
        self.cache.soon()
        log.info("%s", banner(spec, gen, replaced=old_gen))

    async def _activate_http(self, slot: AppSlot, spec: AppSpec, gen: Generation) -> None:
        address = spec.address
        assert address is not None  # load_plan refuses an app with HTTP triggers and no address
        listener = slot.listener
        if listener is not None and slot.switchboard is not None and listener.address == address \
                and (listener.tls is None) == (gen.plan.tls is None):
            if listener.tls is not None and gen.plan.tls is not None:
                try:
                    listener.tls.set_paths(gen.plan.tls)  # other files: the next handshake uses them
                except TlsError:
                    gen.close()
                    raise
            slot.switchboard.swap(gen)
            return
        await self._replace_listener(slot, spec, gen, address)

    async def _replace_listener(self, slot: AppSlot, spec: AppSpec, gen: Generation,
                                address: Address) -> None:
        """A new address, or HTTPS switched on or off: a new listener, then the old one drains."""
        old_listener = slot.listener
        try:
            tls = None if gen.plan.tls is None else CertReloader(
                gen.plan.tls, owner=spec.id, on_problem=slot.set_tls_problem)
        except TlsError:
            gen.close()
            raise
        slot.set_tls_problem(None)
        switchboard = Switchboard(spec.id, gen, stats=self.metrics.requests_for(spec.id),
                                  access_log=self.settings.access_log)
        listener = Listener(address, switchboard, owner=spec.id,
                            drain_timeout=self.settings.drain_timeout, tls=tls,
                            edge=self.settings.edge_limits())
        try:
            await self._start_listener(listener, old_listener)
        except BindError:
            gen.close()
            raise
        slot.listener, slot.switchboard = listener, switchboard
        if old_listener is not None and not old_listener.closed.is_set():
            self.tg.start_soon(self._close_listener, old_listener)

    async def _drop_listener(self, app_id: str, listener: Listener) -> None:
        async with anyio.create_task_group() as tg:  # every process closes it at the same time
            if self.workers is not None:
                tg.start_soon(self.workers.remove, app_id, listener.key)
            tg.start_soon(self._close_listener, listener)

    def _shared_memory_state(self, plan: GenerationPlan, number: int) -> GenerationPlan:
        """Without a state_dir, Spin keeps key-value and SQLite data in memory, per generation. With
        worker processes that memory must be shared: it becomes SQLite files in a private directory
        (under $RUNTIME_DIRECTORY or the temp dir), deleted when the generation retires. So do the
        runtime config's stores and databases without a path."""
        assert self.workers is not None
        # Unique per generation: an app file removed and re-added starts again at generation 1
        # while the old one's directory may still be draining.
        path = tempfile.mkdtemp(prefix=f"{plan.app_id}.{number}.", dir=self.workers.runtime_dir)
        return dataclasses.replace(plan, state_dir=plan.state_dir or path,
                                   runtime_config=memory_stores_in(plan.runtime_config, path))

    async def _retire(self, gen: Generation, drain_timeout: float) -> None:
        await gen.retire(drain_timeout)
        if self.workers is not None:
            dirs = store_dirs(gen.plan.runtime_config) | {gen.plan.state_dir or ""}
            for path in map(Path, dirs - {""}):
                if path.parent == self.workers.runtime_dir:  # only a private in-memory substitute
                    shutil.rmtree(path, ignore_errors=True)

    async def _start_listener(self, listener: Listener, previous: Listener | None) -> None:
        port = listener.address.port
        closing = self._closing_ports.get(port)
        if closing is not None:  # a removed or renamed app still drains this port: let it finish
            with anyio.move_on_after(self.settings.drain_timeout + 1):
                await closing.wait()
        try:
            await self.tg.start(listener.run)
        except BindError as exc:
            # Moving to another host on the same port: the old socket must go first (a short gap).
            if previous is None or previous.address.port != port or not exc.in_use:
                raise
            await self._close_listener(previous)
            await self.tg.start(listener.run)

    async def _close_listener(self, listener: Listener) -> None:
        port = listener.address.port
        event = self._closing_ports.setdefault(port, anyio.Event())
        try:
            with anyio.CancelScope(shield=True):
                async with anyio.create_task_group() as tg:
                    if self.workers is not None:  # their copies of the socket must go too
                        tg.start_soon(self.workers.close_listener, listener.key)
                    await listener.stop()
        finally:
            if self._closing_ports.get(port) is event:
                del self._closing_ports[port]
            event.set()

    def _stop(self, app_id: str) -> None:
        slot = self.slots.pop(app_id)
        slot.removed = True
        slot.settled.set()  # nobody waits for an app that is gone
        if slot.worker is not None:
            slot.worker.cancel()
        self.metrics.forget(app_id)
        if self.workers is not None:
            self.workers.forget(app_id)
        log.info("%s: app file removed; stopping (draining up to %.0fs)", app_id,
                 self.settings.drain_timeout)
        self.tg.start_soon(self._teardown, slot)
        self.cache.soon()

    async def _teardown(self, slot: AppSlot) -> None:
        async with slot.lock:
            if slot.redis is not None:
                slot.redis.close()
            async with anyio.create_task_group() as tg:  # every process drains at the same time
                if self.workers is not None and slot.listener is not None:
                    tg.start_soon(self.workers.remove, slot.spec.id, slot.listener.key)
                if slot.listener is not None:
                    tg.start_soon(self._close_listener, slot.listener)
            if slot.generation is not None:
                await self._retire(slot.generation, 1.0)
        log.info("%s: stopped", slot.spec.id)

    async def shutdown(self) -> None:
        """Stop every app concurrently, each draining within the drain timeout."""
        async with anyio.create_task_group() as tg:
            for app_id in list(self.slots):
                slot = self.slots.pop(app_id)
                slot.removed = True
                slot.settled.set()
                if slot.worker is not None:
                    slot.worker.cancel()
                tg.start_soon(self._teardown, slot)

    # -- output --------------------------------------------------------------------------------

    def state_dir_of(self, spec: AppSpec) -> Path | None:
        if spec.state_dir is None:
            return None
        return self.settings.state_root / spec.state_dir

