"""What the async-ABI test hosts share (tests/unit/test_runtime_async.py, test_runtime_stackful.py):
host functions of `test:host/api` that finish on other threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import wasmtime
import wasmtime.component

from tauon.wasm.engine import WasmEngine
from tauon.wasm.runtime.async_host import Deferred, StreamReader, stream
from tauon.wasm.runtime.instance import RuntimeComponent
from tauon.wasm.runtime.load import load_component


class ThreadedHost:
    """`quick` answers at once; `slow` completes on another thread after 50 ms; `source` writes n bytes
    from a thread through a small pipe. Subclasses add their own functions in `impl`."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []

    def _spawn(self, target: Callable[[], None]) -> None:
        t = threading.Thread(target=target, daemon=True)
        self.threads.append(t)
        t.start()

    def _quick(self, state: Any, n: int) -> int:
        return n * 2

    def _slow(self, state: Any, n: int) -> Deferred:
        d = Deferred()

        def later() -> None:
            time.sleep(0.05)
            d.resolve(n + 1000)
        self._spawn(later)
        return d

    def _source(self, state: Any, n: int) -> StreamReader:
        reader, writer = stream(capacity=4096)

        def produce() -> None:
            writer.write(bytes(i % 251 for i in range(n)), timeout=30)
            writer.close()
        self._spawn(produce)
        return reader

    def drop(self, state: Any, rep: int) -> None:
        pass


def load_wat(engine: WasmEngine, path: Path, wat: str, links: Any) -> RuntimeComponent:
    """A hand-written component (WAT text) written to `path`, validated by wasmtime first (as tauon
    validates before it interprets), then loaded by tauon's runtime with `links` as its host."""
    path.write_bytes(wasmtime.wat2wasm(wat))
    wasmtime.component.Component(engine.engine, path.read_bytes())
    return load_component(engine, path, links)
