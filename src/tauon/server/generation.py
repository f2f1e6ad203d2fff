"""One immutable, ready-to-serve version of an app: routes, executors, and the count of requests in it.

A generation is built completely (every component compiled, every route resolved) before the listener
points at it, like a Starlette app fully built before first use. Swapping is a pointer change; the old
generation is retired once its in-flight requests finish or the drain timeout passes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from dataclasses import dataclass

import anyio

from tauon.app.plan import GenerationPlan, StaticResponsePlan, TriggerPlan
from tauon.app.routes import Router
from tauon.errors import LoadError
from tauon.executors import BuildContext, build
from tauon.executors.base import Executor
from tauon.server.chaining import ServiceChain
from tauon.server.redis_routes import RedisRoutes, build_redis_routes
from tauon.services import AppServices
from tauon.wasm.cacheuse import Hold, entries_of
from tauon.wasm.engine import WasmEngine
from tauon.wasm.prepare import prepare_component
from tauon.wasm.sandbox import compile_missing, missing

log = logging.getLogger("tauon.app")


@dataclass(frozen=True, slots=True)
class Target:
    trigger: TriggerPlan
    executor: Executor | None
    static: StaticResponsePlan | None


class Generation:
    def __init__(self, plan: GenerationPlan, number: int, router: Router[Target],
                 executors: dict[str, Executor], services: AppServices | None = None,
                 redis: RedisRoutes | None = None, cache_hold: Hold | None = None) -> None:
        self.plan = plan
        self.cache_hold = cache_hold
        """The compile-cache entries it uses, kept from the cache's collector until it is closed."""
        self.redis = redis
        """Its Redis triggers' handlers (built in the daemon only: it alone subscribes)."""
        self.number = number
        self.router = router
        self.executors = executors
        self.services = services
        """Spin state services (variables, key-value, SQLite) shared by the executors."""
        self.inflight = 0
        self._idle: anyio.Event | None = None
        """Set when the last request leaves; made only by `retire` (an event per request that
        finds the generation idle was a measurable share of a small request)."""
        self.retired = False

    @property
    def label(self) -> str:
        return f"{self.plan.app_id} generation {self.number} ({self.plan.digest[:19]})"

    def enter(self) -> None:
        self.inflight += 1

    def leave(self) -> None:
        self.inflight -= 1
        if self.inflight == 0 and self._idle is not None:
            self._idle.set()

    async def retire(self, drain_timeout: float) -> None:
        """Wait (bounded) for in-flight requests, then release the executors."""
        self.retired = True
        if self._idle is None:
            self._idle = anyio.Event()
        if self.inflight == 0:
            self._idle.set()
        with anyio.move_on_after(drain_timeout, shield=True) as scope:
            await self._idle.wait()
        if scope.cancelled_caught:
            log.warning("%s: %d request(s) still running after %.1fs drain; releasing anyway",
                        self.label, self.inflight, drain_timeout)
        self.close()

    def close(self) -> None:
        for executor in self.executors.values():
            try:
                executor.close()
            except Exception:  # a failing close must not stop the others
                log.exception("%s: closing %s failed", self.label, executor.component_id)
        if self.redis is not None:
            self.redis.close()
        if self.services is not None:
            self.services.close()
            self.services = None
        if self.cache_hold is not None:
            self.cache_hold.release()


async def build_generation(plan: GenerationPlan, number: int, engine: WasmEngine,
                           compile_limiter: anyio.CapacityLimiter, *, redis: bool = False,
                           nice: int = 0, tiering: bool = False,
                           build_limiter: anyio.CapacityLimiter | None = None) -> Generation:
    """Prepare every component as Spin's loader does (convert core modules, compose dependencies: a
    bounded encoder subprocess, wasm/prepare.py), compile what the cache lacks (in a bounded child
    process, wasm/sandbox.py, unless the engine compiles in process), then load them and wire the
    router in a worker thread. `redis`: also build the Redis triggers' handlers (the daemon does;
    worker processes serve HTTP only). The plan's `tier` picks the engine; `tiering`: a plan whose
    Cranelift code is not all cached is built with Winch instead (its `tier` says so; the runner
    swaps Cranelift's in later); `nice`: the compile child's niceness (a background compile yields
    the CPU to serving). `compile_limiter` bounds the compile children; `build_limiter` (default: the
    same) the threads that prepare and load: apart, an app whose code a shared child has compiled
    loads while that child compiles the others'."""
    build_limiter = build_limiter or compile_limiter
    prepared = await anyio.to_thread.run_sync(_prepared, plan, engine, limiter=build_limiter)
    if tiering and prepared.tier == "cranelift" and engine.sandbox is not None and missing(engine, prepared):
        prepared = dataclasses.replace(prepared, tier="winch")  # served first; Cranelift's follows
    base, engine = engine, engine.for_tier(prepared.tier)
    hold = Hold(engine.cache_dir, entries_of(engine, plan, prepared))  # from here to its close()
    try:
        try:
            await compile_missing(engine, prepared, compile_limiter, nice=nice)
        except LoadError as exc:
            if prepared.tier != "winch":
                raise
            log.warning("%s: Winch could not compile it (%s); compiling with Cranelift instead",
                        plan.app_id, exc)
            hold.release()
            prepared, engine = dataclasses.replace(prepared, tier="cranelift"), base
            hold = Hold(engine.cache_dir, entries_of(engine, plan, prepared))
            await compile_missing(engine, prepared, compile_limiter, nice=nice)
        limiter = anyio.CapacityLimiter(prepared.limits.max_concurrency)
        chain = ServiceChain(asyncio.get_running_loop())
        router, executors, services, routes = await anyio.to_thread.run_sync(
            _build_parts, prepared, engine, limiter, chain, redis, limiter=build_limiter
        )
    except BaseException:
        hold.release()
        raise
    return Generation(prepared, number, router, executors, services, routes, cache_hold=hold)


def _prepared(plan: GenerationPlan, engine: WasmEngine) -> GenerationPlan:
    """`plan` with each component's wasm replaced by what tauon runs (wasm/prepare.py)."""
    components = {cid: prepare_component(engine.cache_dir, component)
                  for cid, component in plan.components.items()}
    if all(components[cid] is plan.components[cid] for cid in components):
        return plan
    return dataclasses.replace(plan, components=components)


class _LazyServices:
    """Opens the app's AppServices on first use (Spin 1.x modules and components with Spin imports
    use them; an app with only static responses never opens them)."""

    def __init__(self, plan: GenerationPlan) -> None:
        self._plan = plan
        self.opened: AppServices | None = None

    def get(self) -> AppServices:
        if self.opened is None:
            self.opened = AppServices.open(self._plan, os.environ)
        return self.opened


def _build_parts(plan: GenerationPlan, engine: WasmEngine, limiter: anyio.CapacityLimiter,
                 chain: ServiceChain, redis: bool,
                 ) -> tuple[Router[Target], dict[str, Executor], AppServices | None, RedisRoutes | None]:
    executors: dict[str, Executor] = {}
    entries: list[tuple[str, Target]] = []
    services = _LazyServices(plan)
    app_log = logging.getLogger(f"tauon.app.{plan.app_id}")
    context = BuildContext(engine=engine, limiter=limiter, logger=app_log, services=services.get, chain=chain)
    try:
        for trigger in plan.triggers:
            executor: Executor | None = None
            if trigger.component is not None:
                key = f"{trigger.component}#{trigger.executor}#{trigger.wagi_argv}"
                if key not in executors:
                    executors[key] = build(plan, trigger, context)
                executor = executors[key]
                chain.add(trigger.component, executor)
            if trigger.route is None:
                continue  # private routes are reachable only by service chaining
            entries.append((trigger.route, Target(trigger, executor, trigger.static_response)))
        routes = None
        if redis and plan.redis_triggers:
            routes = build_redis_routes(plan, context, services.get())
        return Router.build(entries), executors, services.opened, routes
    except BaseException:
        if services.opened is not None:
            services.opened.close()
        raise
