"""Keeps the cache within its bound: collects what no serving app (nor the generation it replaced)
references, and compiled code no live generation holds, a while after changes and whenever a pull
needs room (see `tauon.registry.gc`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import TaskGroup

from tauon.registry.gc import GRACE, CacheLimits, collect
from tauon.wasm import cacheuse

log = logging.getLogger("tauon.registry")

Refs = tuple[set[str], set[str]]
"""(blob digests, asset directory names) in use."""
SETTLE = 10.0
"""Seconds after the last change before a collection runs (a burst of swaps collects once)."""


class CacheKeeper:
    def __init__(self, cache_dir: Path, limits: CacheLimits, in_use: Callable[[], Refs], tg: TaskGroup, *,
                 grace: float = GRACE, loading: Callable[[], bool] = lambda: False) -> None:
        self.root = cache_dir
        self.limits = limits
        self.in_use = in_use
        """Called on the event loop: what the serving generations reference."""
        self.loading = loading
        """Called on the event loop: whether an app is in its first attempt, whose compiled code
        no generation holds yet (a warm restart's): compiled code is left alone meanwhile."""
        self.tg = tg
        self.grace = grace
        self._pending = False
        self._lock = anyio.Lock()

    def soon(self) -> None:
        """Collect a little after the current burst of changes (call on the event loop)."""
        if not self._pending:
            self._pending = True
            self.tg.start_soon(self._later)

    async def _later(self) -> None:
        await anyio.sleep(SETTLE)
        self._pending = False
        await self.collect_now()

    async def collect_now(self, needed: int = 0) -> None:
        """Collect now; `needed`: bytes a pull is about to add, which compiled code may make room for."""
        async with self._lock:
            blobs, assets = self.in_use()
            # Generations hold their compiled code from the start of their build to their close.
            compiled = None if self.loading() else cacheuse.held()
            try:
                bound = self.limits.max_bytes - needed
                await anyio.to_thread.run_sync(lambda: collect(
                    self.root, blobs, assets, keep_compiled=compiled, max_bytes=bound, grace=self.grace))
            except OSError as exc:
                log.warning("cache: collection failed: %s", exc)

    def make_room(self, needed: int = 0) -> None:
        """From a pull's worker thread: collect now, so the pull's `needed` bytes fit if they can."""
        anyio.from_thread.run(self.collect_now, needed)
