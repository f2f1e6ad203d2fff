"""Which compile-cache entries this process's generations use, for the cache's garbage collector.

A generation uses, under the compile cache (`<cache>/compiled`): the compiled code of each of its
components (`modules/` or `components/`, by the digest it runs) and the converted or composed wasm
it was prepared from (`converted/`, the core modules of it and its dependencies converted, and the
composition). While it is being built and until it is closed it holds those names here, and the
collector (registry/gc.py, driven by control/cachekeeper.py) never removes a held entry: the daemon
holds every generation it serves, so worker processes, which load what the daemon serves from the same
files, always find them. Releasing marks the entries used (their mtime), so an entry's age is the time
since a generation last used it, which the collector's grace period and its least-recently-used order
go by.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from tauon.app.plan import GenerationPlan
from tauon.wasm.component.cache import component_key
from tauon.wasm.componentize import conversion_key
from tauon.wasm.engine import WasmEngine
from tauon.wasm.runtime import load as runtime_load
from tauon.wasm.runtime.selection import compiles_core_modules

_lock = threading.Lock()
_held: Counter[str] = Counter()


def entries_of(engine: WasmEngine, original: GenerationPlan, prepared: GenerationPlan) -> frozenset[str]:
    """The compile-cache names (relative to `engine.cache_dir`, as the collector lists them) that a
    generation of `original`, prepared as `prepared` (wasm/prepare.py), may use. Names of entries that
    do not exist (a module's component name, a component's conversion) are harmless."""
    names: set[str] = set()
    for component in original.components.values():
        digests = [component.wasm_digest, *(dep.wasm_digest for dep in component.dependencies)]
        names.update(f"converted/{conversion_key(digest)}.wasm" for digest in digests)
    converted = engine.cache_dir / "converted"
    for component in prepared.components.values():
        digest = component.wasm_digest
        names.add(f"modules/{engine.cache_key(digest)}.cwasm")
        names.add(f"components/{component_key(engine, digest)}.cwasm")
        path = Path(component.wasm_path)
        if compiles_core_modules(path, prepared.component_runtime):
            names.update(runtime_load.cache_names(engine, path))
        if path.parent == converted:  # composed (or converted) at load: its source is cached too
            names.add(f"converted/{path.name}")
    return frozenset(names)


class Hold:
    """Names held while a generation may still load them; `release` is idempotent."""

    def __init__(self, root: Path, names: Iterable[str]) -> None:
        self.root = root
        self.names = frozenset(names)
        self._released = False
        with _lock:
            _held.update(self.names)

    def release(self) -> None:
        with _lock:
            if self._released:
                return
            self._released = True
            _held.subtract(self.names)
            for name in self.names:
                if _held[name] <= 0:
                    del _held[name]
        now = time.time()
        for name in self.names:  # used until now: the grace period runs from here
            with contextlib.suppress(OSError):
                os.utime(self.root / name, (now, now))


def held() -> frozenset[str]:
    """Every name a live generation of this process holds."""
    with _lock:
        return frozenset(_held)
