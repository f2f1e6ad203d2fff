"""Compiling untrusted wasm where it cannot hurt the daemon: a short-lived child process, capped.

A small valid module can make wasmtime's compiler allocate without bound (tests/support/hostile.py:
16 KB reach 4 GiB in 3 s), and a Rust allocation failure aborts the whole process; the bulk-body
allocator probe (component/rewriting/probe.py) runs guest code. So the daemon and its worker processes never
compile: before a generation is built, the artifacts it lacks are compiled by `python -m
tauon.wasm.compile_child` (one child per app, only when something is missing) with its data segment
capped (RLIMIT_DATA, `--compile-memory-mib`) and a wall-clock budget (`--compile-timeout`), killed on
overrun or when the attempt is cancelled (SIGTERM, a newer app file). The child writes the compile
cache; every process then maps the artifacts from it as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tauon.app.plan import ComponentPlan, GenerationPlan
from tauon.errors import LoadError
from tauon.wasm.compile_limits import CompileLimits
from tauon.wasm.component import cache
from tauon.wasm.engine import WasmEngine
from tauon.wasm.kind import classify_file
from tauon.wasm.runtime import load as runtime_load

log = logging.getLogger(__name__)

MAX_REPORT = 1 << 20
"""Longest line the child may report (a log line naming a long path, an error message)."""
STDERR_TAIL = 4096
"""Bytes of the child's stderr kept for an error message (Rust's abort message, a traceback)."""


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
    if runtime == "tauon" and not runtime_load.has_compiled(engine, Path(component.wasm_path)):
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
                async with limiter:
                    await _run_child(engine, limits, components, plan.app_id, nice,
                                     runtime=plan.component_runtime)
    finally:
        for digest, lock in zip(digests, locks, strict=True):
            if not lock.locked() and lock.statistics().tasks_waiting == 0:
                _compiling.pop(digest, None)


@dataclass
class _Progress:
    current: str | None = None
    error: LoadError | None = None
    out_of_memory: bool = False
    stderr: deque[bytes] = field(default_factory=lambda: deque(maxlen=64))


async def _run_child(engine: WasmEngine, limits: CompileLimits, components: list[ComponentPlan],
                     app_id: str, nice: int = 0, *, runtime: str = "wasmtime") -> None:
    request = {"cache_dir": str(engine.cache_dir), "key_settings": engine.settings, "nice": nice,
               "memory_mib": limits.memory_mib, "timeout": limits.timeout,
               "jobs": [{"component": c.id, "path": c.wasm_path, "digest": c.wasm_digest,
                         "runtime": runtime} for c in components]}
    progress = _Progress(current=components[0].id)
    log.debug("%s: compiling %s in a child process (%s)", app_id,
              ", ".join(c.id for c in components), engine.tier)
    process = await anyio.open_process([sys.executable, "-m", "tauon.wasm.compile_child"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE)
    try:
        with anyio.move_on_after(limits.timeout) as budget:
            assert process.stdin is not None
            try:
                await process.stdin.send(json.dumps(request).encode())
                await process.stdin.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # it died at once: its exit status and stderr tell why
            async with anyio.create_task_group() as tg:
                tg.start_soon(_keep_stderr, process, progress)
                await _read_reports(process, progress, app_id)
                await process.wait()
    finally:
        if process.returncode is None:
            process.kill()  # overrun, or the attempt was cancelled: nothing waits on a compile
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()
    if budget.cancelled_caught:
        raise _overrun(progress.current, f"took longer than {limits.timeout:g} s (--compile-timeout)",
                       "raise --compile-timeout if the app is this big")
    _check_exit(process, progress, limits)


def _check_exit(process: Process, progress: _Progress, limits: CompileLimits) -> None:
    if progress.error is not None:
        raise progress.error
    stderr = b"".join(progress.stderr).decode(errors="replace")
    # Rust's allocator aborts (SIGABRT) with "memory allocation of N bytes failed".
    if progress.out_of_memory or (process.returncode == -signal.SIGABRT and "memory allocation" in stderr):
        raise _overrun(progress.current, f"needed more than {limits.memory_mib} MiB of memory "
                       "(--compile-memory-mib)", "raise --compile-memory-mib if the app is this big")
    if process.returncode != 0:
        tail = " ".join(stderr.split())[-400:] or "no output"
        raise LoadError(f"the compile child process failed (exit status {process.returncode}): {tail}",
                        field=_field(progress.current))


def _overrun(component: str | None, what: str, hint: str) -> LoadError:
    return LoadError(f"component '{component}': compiling its wasm {what}; the compile was stopped",
                     field=_field(component),
                     hint=f"wasm that makes the compiler run without bound is refused this way; {hint}")


def _field(component: str | None) -> str | None:
    return f"components.{component}.source" if component is not None else None


async def _read_reports(process: Process, progress: _Progress, app_id: str) -> None:
    assert process.stdout is not None
    reports = BufferedByteReceiveStream(process.stdout)
    while True:
        try:
            line = await reports.receive_until(b"\n", MAX_REPORT)
        except (anyio.EndOfStream, anyio.IncompleteRead):
            return
        except anyio.DelimiterNotFound:
            process.kill()  # not the child's protocol: stop it; the exit status says it failed
            return
        try:
            report = json.loads(line)
        except ValueError:
            continue
        _apply(report, progress, app_id)


def _apply(report: dict[str, Any], progress: _Progress, app_id: str) -> None:
    if "compiling" in report:
        progress.current = report["compiling"]
    elif "log" in report:
        level, name, message = report["log"]
        logging.getLogger(name).log(level, "%s: %s", app_id, message)
    elif "error" in report:
        error = report["error"]
        component = progress.current
        progress.error = LoadError(f"component '{component}': {error['message']}",
                                   field=error["field"] or _field(component), hint=error["hint"])
    elif "memory" in report:
        progress.out_of_memory = True


async def _keep_stderr(process: Process, progress: _Progress) -> None:
    stream: ByteReceiveStream | None = process.stderr
    assert stream is not None
    kept = 0
    async for chunk in stream:
        progress.stderr.append(chunk)
        kept += len(chunk)
        while kept > STDERR_TAIL and len(progress.stderr) > 1:
            kept -= len(progress.stderr.popleft())
