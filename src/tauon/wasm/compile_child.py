"""The compile child: compiles apps' missing wasm into the compile cache, under the limits it is given.

Run as `python -m tauon.wasm.compile_child` by wasm/compile_batch.py, never by hand. It loads its
modules first (it may be started before its request is known, wasm/headstart.py; an empty stdin ends
it), then reads one JSON request on stdin ({"cache_dir", "key_settings", "memory_mib", "timeout",
"nice", "jobs": [{"component", "path", "digest", "request", "runtime"}]}: the jobs of one or more
apps' requests, in order; runtime "tauon" compiles the core modules of tauon's component runtime
too), caps its own data segment before touching any wasm, and reports on stdout, one JSON object a
line (`job`: the index of a job): {"compiling": id, "job": n}, {"done": id, "job": n}, {"log":
[level, logger, message]}, {"error": {...}, "job": n} (a LoadError: the rest of that request's jobs
are skipped, the next request's follow) or {"memory": id} (Python ran out of memory, after which it
exits 3; Rust's allocator aborts the process instead, which the parent recognises by the signal).
"""

from __future__ import annotations

import ctypes
import json
import logging
import math
import os
import resource
import signal
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # a type only: `_preload` loads wasmtime, once the parent-death signal is set
    from tauon.wasm.engine import WasmEngine

_PR_SET_PDEATHSIG = 1


def _limit(memory_mib: int, timeout: float) -> None:
    limit = memory_mib << 20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an aborted compile leaves no core file
    _alarm(timeout)


def _alarm(timeout: float) -> None:
    """The parent kills it past each request's `timeout`; this ends it too should the parent have
    lost track of it."""
    signal.alarm(math.ceil(timeout) + 5)


def _die_with_parent() -> None:
    """SIGKILL this process when the process that started it goes (a daemon killed with -9)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent's timeout still bounds it
        return
    if os.getppid() != parent:  # it went before the call
        os._exit(1)


class _Reporter(logging.Handler):
    """Log records and progress as JSON lines on the parent's pipe."""

    def __init__(self, out: IO[str]) -> None:
        super().__init__(logging.INFO)
        self.out = out

    def send(self, **message: Any) -> None:
        self.out.write(json.dumps(message) + "\n")
        self.out.flush()

    def emit(self, record: logging.LogRecord) -> None:
        self.send(log=[record.levelno, record.name, record.getMessage()])


def _compile(cache_dir: Path, key_settings: dict[str, str], jobs: list[dict[str, Any]], timeout: float,
             reporter: _Reporter) -> int:
    from tauon.errors import LoadError
    from tauon.wasm.engine import WasmEngine
    from tauon.wasm.pool import PoolSettings

    # Compiles only (no pool); the parent's key settings, so the parent finds what this writes.
    engine = WasmEngine(cache_dir, pool=PoolSettings(instances=0), run_slots=1, key_settings=key_settings)
    current, failed = jobs[0]["request"] if jobs else None, None
    for index, job in enumerate(jobs):
        component, path, digest = job["component"], Path(job["path"]), job["digest"]
        if job["request"] == failed:
            continue  # its app has failed already
        if job["request"] != current:
            current = job["request"]
            _alarm(timeout)  # each app's own budget
        reporter.send(compiling=component, job=index)
        try:
            cached = _compile_one(engine, path, digest, job.get("runtime", "wasmtime"))
        except LoadError as exc:
            if _out_of_memory(exc):  # an mmap refused under the limit, reported as an error
                reporter.send(memory=component)
                return 3
            reporter.send(error={"message": exc.message, "field": exc.field, "hint": exc.hint}, job=index)
            failed = current
            continue
        except MemoryError:
            reporter.send(memory=component)
            return 3
        if not cached:  # the engine logged why (a warning); serving needs the cache here
            reporter.send(error={"message": f"{path}: its compiled code could not be written to the "
                                 f"cache under {cache_dir}", "field": None,
                                 "hint": "tauon compiles wasm in a child process and needs --cache-dir "
                                         "writable"}, job=index)
            failed = current
            continue
        reporter.send(done=component, job=index)
    return 0


def _compile_one(engine: WasmEngine, path: Path, digest: str, runtime: str) -> bool:
    """Compile one wasm file into the cache; whether it is there now."""
    if engine.classify(path) == "module":
        engine.compile_module(path, digest)
        return engine.has_compiled(digest)
    from tauon.wasm.component import cache  # the binding and rewriting: imported only when needed

    cache.compile_component(engine, path, digest)
    from tauon.wasm.runtime.selection import compiles_core_modules

    if compiles_core_modules(path, runtime):  # tauon's component runtime: core modules too
        from tauon.wasm.runtime import load as runtime_load  # 80 ms: only for such components

        runtime_load.compile_core_modules(engine, path)
        return cache.has_compiled(engine, digest) and runtime_load.has_compiled(engine, path)
    return cache.has_compiled(engine, digest)


def _out_of_memory(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__ or ''}"
    return "os error 12" in text or "Cannot allocate memory" in text or "out of memory" in text


def _preload() -> None:
    """Load what a compile needs before the request comes: a child started while its app's pull
    downloads (wasm/headstart.py) has them loaded by the time the wasm is there. RLIMIT_DATA still
    bounds the whole data segment, these modules' included, once `_limit` sets it."""
    import tauon.wasm.component.cache  # wasmtime, the engine, the rewriting
    import tauon.wasm.pool  # noqa: F401


def main() -> int:
    _die_with_parent()
    _preload()
    text = sys.stdin.read()
    if not text:
        return 0  # started ahead of need and not needed: stopped by closing its stdin
    request = json.loads(text)
    _limit(int(request["memory_mib"]), float(request["timeout"]))
    os.nice(int(request.get("nice", 0)))  # a background (Cranelift) compile yields to serving
    reporter = _Reporter(sys.stdout)
    logging.basicConfig(level=logging.INFO, handlers=[reporter], force=True)
    try:
        return _compile(Path(request["cache_dir"]), request["key_settings"], request["jobs"],
                        float(request["timeout"]), reporter)
    except MemoryError:
        reporter.send(memory=None)
        return 3


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # At once: the interpreter's and wasmtime's teardown (30 ms after a big compile) would hold back
    # the leader's app, whose task waits for this process to exit.
    os._exit(code)
