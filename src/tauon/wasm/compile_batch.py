"""Compile children shared by apps: the apps waiting for one are compiled by one child, each on its own terms.

A compile child's start-up (Python, tauon's modules, wasmtime) costs a cold start far more than a tiny
component's compile, so with hundreds of apps starting it was most of the work. Apps that need
compiling queue here; whoever gets a compile slot (the limiter) takes every request queued with the
same engine settings, limits and niceness (up to MAX_REQUESTS and MAX_BYTES of wasm) into one child.
The sandbox stays per child (wasm/compile_child.py: its data segment capped, killed when done or
overrun), and every request keeps its own outcome:

- its own budget: `--compile-timeout` runs from the moment the child starts on it (the first request's
  includes the child's start-up);
- a component that fails to compile fails its own app only (the child goes on with the next app);
- a child that overruns a budget, aborts (memory) or crashes fails the app it was compiling then;
  the apps it had finished are done, and the ones it had not started go back to the queue;
- an app goes on building as soon as its own components are cached, not when the child exits (except
  the leader's, whose task runs the child).

A leader whose own attempt is cancelled (a newer app file, shutdown) kills the child; the other apps of
its batch go back to the queue.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream

from tauon.app.plan import ComponentPlan
from tauon.errors import LoadError
from tauon.wasm import headstart
from tauon.wasm.compile_limits import CompileLimits
from tauon.wasm.engine import WasmEngine

log = logging.getLogger("tauon.wasm.sandbox")

MAX_REQUESTS = 32
"""Apps one child compiles at most: later ones wait for the next child rather than for a long batch."""
MAX_BYTES = 48 << 20
"""Wasm bytes one child takes at most (an app bigger than this gets a child of its own): its memory
cap is per child, and a batch of big components would hold the last of them back."""
MAX_REPORT = 1 << 20
"""Longest line the child may report (a log line naming a long path, an error message)."""
STDERR_TAIL = 4096
"""Bytes of the child's stderr kept for an error message (Rust's abort message, a traceback)."""


@dataclass(eq=False)
class Request:
    """One app's missing components, waiting for (or in) a compile child."""

    app_id: str
    components: list[ComponentPlan]
    size: int
    done: anyio.Event = field(default_factory=anyio.Event)
    taken: bool = False
    finished: int = 0
    """Its components the child has reported cached."""
    runtime: str = "wasmtime"
    """The component runtime its app runs on ("tauon": the runtime's core modules are compiled too)."""
    error: LoadError | None = None
    requeue: bool = False
    """Its child went away before starting on it: it waits for another."""


_Key = tuple[str, str, CompileLimits, int]
_queues: dict[_Key, list[Request]] = {}
"""Requests waiting for a child, by what a child is started with (a handful of keys: tier x nice)."""


async def compile_batched(engine: WasmEngine, limits: CompileLimits, components: list[ComponentPlan],
                          app_id: str, limiter: anyio.CapacityLimiter, nice: int, *,
                          runtime: str = "wasmtime") -> None:
    """Compile `components` in a compile child, with whatever other apps wait for one. Raises LoadError
    naming the component and the limit it overran."""
    key = (str(engine.cache_dir), json.dumps(engine.settings, sort_keys=True), limits, nice)
    queue = _queues.setdefault(key, [])
    size = sum(_size(c) for c in components)
    while True:
        request = Request(app_id, components, size, runtime=runtime)
        queue.append(request)
        try:
            async with limiter:
                if not request.taken:  # nobody took it into their child: lead one
                    await _run_batch(engine, limits, _take(queue, request), nice)
            await request.done.wait()
        finally:
            if request in queue:  # cancelled while waiting
                queue.remove(request)
        if request.error is not None:
            raise request.error
        if not request.requeue:
            return


def _size(component: ComponentPlan) -> int:
    try:
        return os.path.getsize(component.wasm_path)
    except OSError:
        return 0  # the child reports it, naming the component


def _take(queue: list[Request], own: Request) -> list[Request]:
    """`own` and the requests queued before or after it that fit one child's bounds, in queue order."""
    queue.remove(own)
    batch, total = [own], own.size
    for other in list(queue):
        if len(batch) >= MAX_REQUESTS:
            break
        if total + other.size <= MAX_BYTES:
            queue.remove(other)
            batch.append(other)
            total += other.size
    for request in batch:
        request.taken = True
    return batch


@dataclass
class _Progress:
    batch: list[Request]
    jobs: list[dict[str, Any]]
    timeout: float
    budget: anyio.CancelScope
    current: int = 0
    """The request the child works on (its first until it says otherwise)."""
    component: str | None = None
    out_of_memory: bool = False
    stderr: deque[bytes] = field(default_factory=lambda: deque(maxlen=64))


async def _run_batch(engine: WasmEngine, limits: CompileLimits, batch: list[Request], nice: int) -> None:
    jobs = [{"component": c.id, "path": c.wasm_path, "digest": c.wasm_digest, "request": index,
             "runtime": request.runtime} for index, request in enumerate(batch) for c in request.components]
    budget = anyio.CancelScope(deadline=anyio.current_time() + limits.timeout)
    progress = _Progress(batch, jobs, limits.timeout, budget, component=batch[0].components[0].id)
    failure: LoadError | None = None
    try:
        failure = await _run_child(engine, limits, progress, nice)
    finally:  # settled even when the leader is cancelled: the others go back to the queue then
        for index, request in enumerate(batch):
            if request.done.is_set():
                continue
            if failure is not None and index == progress.current:
                request.error = failure
            else:
                request.requeue = True
            request.done.set()


async def _run_child(engine: WasmEngine, limits: CompileLimits, progress: _Progress,
                     nice: int) -> LoadError | None:
    """Run one child over the batch; the error of the request it was on when it failed, if it did."""
    request = {"cache_dir": str(engine.cache_dir), "key_settings": engine.settings, "nice": nice,
               "memory_mib": limits.memory_mib, "timeout": limits.timeout, "jobs": progress.jobs}
    others = len(progress.batch) - 1
    shared = f" with {others} other app{'s' if others > 1 else ''}" if others else ""
    for r in progress.batch:
        log.debug("%s: compiling %s in a child process (%s)%s", r.app_id,
                  ", ".join(c.id for c in r.components), engine.tier, shared)
    process = headstart.take() or await headstart.open_child()  # one started during a pull, if any
    try:
        with progress.budget:
            assert process.stdin is not None
            try:
                await process.stdin.send(json.dumps(request).encode())
                await process.stdin.aclose()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # it died at once: its exit status and stderr tell why
            async with anyio.create_task_group() as tg:
                tg.start_soon(_keep_stderr, process, progress)
                await _read_reports(process, progress)
                await process.wait()
    finally:
        if process.returncode is None:
            process.kill()  # overrun, or the attempt was cancelled: nothing waits on a compile
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()
    if progress.budget.cancelled_caught:
        return _overrun(progress.component, f"took longer than {limits.timeout:g} s (--compile-timeout)",
                        "raise --compile-timeout if the app is this big")
    return _exit_failure(process, progress, limits)


def _exit_failure(process: Process, progress: _Progress, limits: CompileLimits) -> LoadError | None:
    stderr = b"".join(progress.stderr).decode(errors="replace")
    # Rust's allocator aborts (SIGABRT) with "memory allocation of N bytes failed".
    if progress.out_of_memory or (process.returncode == -signal.SIGABRT and "memory allocation" in stderr):
        return _overrun(progress.component, f"needed more than {limits.memory_mib} MiB of memory "
                        "(--compile-memory-mib)", "raise --compile-memory-mib if the app is this big")
    if process.returncode != 0:
        tail = " ".join(stderr.split())[-400:] or "no output"
        return LoadError(f"the compile child process failed (exit status {process.returncode}): {tail}",
                         field=_field(progress.component))
    if not all(r.done.is_set() for r in progress.batch):  # not the child's protocol
        return LoadError("the compile child process exited without compiling it",
                         field=_field(progress.component))
    return None


def _overrun(component: str | None, what: str, hint: str) -> LoadError:
    return LoadError(f"component '{component}': compiling its wasm {what}; the compile was stopped",
                     field=_field(component),
                     hint=f"wasm that makes the compiler run without bound is refused this way; {hint}")


def _field(component: str | None) -> str | None:
    return f"components.{component}.source" if component is not None else None


async def _read_reports(process: Process, progress: _Progress) -> None:
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
            _apply(report, progress)
        except (ValueError, TypeError, KeyError, IndexError):
            continue


def _apply(report: dict[str, Any], progress: _Progress) -> None:
    if "compiling" in report:
        index = progress.jobs[int(report["job"])]["request"]
        if index != progress.current:  # a new app's budget starts now
            progress.current = index
            progress.budget.deadline = anyio.current_time() + progress.timeout
        progress.component = report["compiling"]
    elif "done" in report:
        request = progress.batch[progress.jobs[int(report["job"])]["request"]]
        request.finished += 1
        if request.finished == len(request.components):
            request.done.set()
    elif "log" in report:
        level, name, message = report["log"]
        logging.getLogger(name).log(level, "%s: %s", progress.batch[progress.current].app_id, message)
    elif "error" in report:
        error = report["error"]
        request = progress.batch[progress.jobs[int(report["job"])]["request"]]
        component = progress.component
        request.error = LoadError(f"component '{component}': {error['message']}",
                                  field=error["field"] or _field(component), hint=error["hint"])
        request.done.set()
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
