"""Compiling untrusted wasm where it cannot hurt the daemon: a short-lived child process, capped.

A small valid module can make wasmtime's compiler allocate without bound (tests/support/hostile.py:
16 KB reach 4 GiB in 3 s), and a Rust allocation failure aborts the whole process; the bulk-body
allocator probe (component/rewriting/probe.py) runs guest code. So the daemon and its worker processes never
compile: before a generation is built, the artifacts it lacks are compiled by `python -m
tauon.wasm.compile_child` (only when something is missing; apps waiting for a child at the same time
share one, wasm/compile_batch.py) with its data segment capped (RLIMIT_DATA, `--compile-memory-mib`)
and a wall-clock budget per app (`--compile-timeout`), killed on overrun or when the attempt is
cancelled (SIGTERM, a newer app file). The child writes the compile cache; every process then maps
the artifacts from it as before.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import anyio

from tauon.app.plan import ComponentPlan, GenerationPlan
from tauon.errors import LoadError
from tauon.wasm.compile_batch import compile_batched
from tauon.wasm.component import cache
from tauon.wasm.engine import WasmEngine
from tauon.wasm.kind import classify_file
from tauon.wasm.runtime import load as runtime_load
from tauon.wasm.runtime.selection import compiles_core_modules


def missing(engine: WasmEngine, plan: GenerationPlan) -> list[ComponentPlan]:
    """The components the plan's HTTP routes and Redis triggers need whose compiled code is not cached
    (one per digest)."""
    needed: dict[str, ComponentPlan] = {}
    used = [t.component for t in plan.triggers if t.component is not None]
    used += [t.component for t in plan.redis_triggers]
    for component_id in used:
        component = plan.components[component_id]
        needed.setdefault(component.wasm_digest, component)
    return [c for c in needed.values() if not _has_compiled(engine, c, plan.component_runtime)]


def _has_compiled(engine: WasmEngine, component: ComponentPlan, runtime: str) -> bool:
    try:
        kind = classify_file(Path(component.wasm_path))
    except LoadError:
        return False  # the child reports it, naming the component
    if kind == "module":
        return engine.has_compiled(component.wasm_digest)
    path = Path(component.wasm_path)
    if compiles_core_modules(path, runtime) and not runtime_load.has_compiled(engine, path):
        return False  # tauon's component runtime compiles the component's core modules itself
    return cache.has_compiled(engine, component.wasm_digest)


_compiling: dict[str, anyio.Lock] = {}
"""tier:wasm digest -> held while a child compiles it: apps sharing a component compile it once (a
background Cranelift compile does not hold up another app's Winch compile of the same wasm)."""


async def compile_missing(engine: WasmEngine, plan: GenerationPlan, limiter: anyio.CapacityLimiter,
                          *, nice: int = 0) -> None:
    """Compile what `plan` needs and the cache lacks in a child under `engine.sandbox`'s limits.
    No-op for an engine without a sandbox (it compiles in process) and when everything is cached.
    Raises LoadError naming the component and the limit it overran. `nice`: the child's niceness."""
    limits = engine.sandbox
    if limits is None:
        return
    components = missing(engine, plan)
    if not components:
        return
    digests = sorted(f"{engine.tier}:{c.wasm_digest}" for c in components)  # one order: no deadlock
    locks = [_compiling.setdefault(digest, anyio.Lock()) for digest in digests]
    try:
        async with contextlib.AsyncExitStack() as held:
            for lock in locks:
                await held.enter_async_context(lock)
            components = missing(engine, plan)  # another app's child may have compiled some
            if components:
                await compile_batched(engine, limits, components, plan.app_id, limiter, nice,
                                      runtime=plan.component_runtime)
    finally:
        for digest, lock in zip(digests, locks, strict=True):
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                _compiling.pop(digest, None)
