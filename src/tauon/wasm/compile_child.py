"""The compile child: compiles an app's missing wasm into the compile cache, under the limits it is given.

Run as `python -m tauon.wasm.compile_child` by wasm/sandbox.py, never by hand. It reads one JSON
request on stdin ({"cache_dir", "key_settings", "memory_mib", "timeout", "nice", "jobs": [{"component",
"path", "digest", "runtime"}]}; runtime "tauon" compiles the core modules of tauon's component runtime
too), caps its own data segment before touching any wasm, and reports on stdout, one
JSON object a line:
{"compiling": id}, {"done": id}, {"log": [level, logger, message]}, {"error": {...}} (a LoadError,
after which it exits 1) or {"memory": id} (Python ran out of memory; Rust's allocator aborts the
process instead, which the parent recognises by the signal).
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
from typing import IO, Any

_PR_SET_PDEATHSIG = 1


def _limit(memory_mib: int, timeout: float) -> None:
    limit = memory_mib << 20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an aborted compile leaves no core file
    # The parent kills it at `timeout`; this ends it too should the parent have lost track of it.
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


def _compile(cache_dir: Path, key_settings: dict[str, str], jobs: list[dict[str, str]],
             reporter: _Reporter) -> int:
    # Imported only now, under the limit: these load wasmtime.
    from tauon.errors import LoadError
    from tauon.wasm.engine import WasmEngine
    from tauon.wasm.pool import PoolSettings

    # Compiles only (no pool); the parent's key settings, so the parent finds what this writes.
    engine = WasmEngine(cache_dir, pool=PoolSettings(instances=0), run_slots=1, key_settings=key_settings)
    for job in jobs:
        component, path, digest = job["component"], Path(job["path"]), job["digest"]
        reporter.send(compiling=component)
        try:
            if engine.classify(path) == "module":
                engine.compile_module(path, digest)
                cached = engine.has_compiled(digest)
            else:  # the component binding and bulk-body rewriting: imported only when needed
                from tauon.wasm.component import cache

                cache.compile_component(engine, path, digest)
                cached = cache.has_compiled(engine, digest)
                if job.get("runtime") == "tauon":  # tauon's component runtime: the core modules too
                    from tauon.wasm.runtime import load as runtime_load

                    runtime_load.compile_core_modules(engine, path)
                    cached = cached and runtime_load.has_compiled(engine, path)
        except LoadError as exc:
            if _out_of_memory(exc):  # an mmap refused under the limit, reported as an error
                reporter.send(memory=component)
                return 3
            reporter.send(error={"message": exc.message, "field": exc.field, "hint": exc.hint})
            return 1
        except MemoryError:
            reporter.send(memory=component)
            return 3
        if not cached:  # the engine logged why (a warning); serving needs the cache here
            reporter.send(error={"message": f"{path}: its compiled code could not be written to the "
                                 f"cache under {cache_dir}", "field": None,
                                 "hint": "tauon compiles wasm in a child process and needs --cache-dir "
                                         "writable"})
            return 1
        reporter.send(done=component)
    return 0


def _out_of_memory(exc: BaseException) -> bool:
    text = f"{exc} {exc.__cause__ or ''}"
    return "os error 12" in text or "Cannot allocate memory" in text or "out of memory" in text


def main() -> int:
    request = json.loads(sys.stdin.read())
    _limit(int(request["memory_mib"]), float(request["timeout"]))
    os.nice(int(request.get("nice", 0)))  # a background (Cranelift) compile yields to serving
    _die_with_parent()
    reporter = _Reporter(sys.stdout)
    logging.basicConfig(level=logging.INFO, handlers=[reporter], force=True)
    try:
        return _compile(Path(request["cache_dir"]), request["key_settings"], request["jobs"], reporter)
    except MemoryError:
        reporter.send(memory=None)
        return 3


if __name__ == "__main__":
    sys.exit(main())
