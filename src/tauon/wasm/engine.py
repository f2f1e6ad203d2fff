"""The one wasmtime Engine tauon shares between apps: epoch ticker, compile, compiled-artifact cache.

Compiling is the slow step (seconds for a 40 MB component), so compiled code is serialized to
`<cache_dir>/modules/<key>.cwasm`. The key covers everything that makes a serialized artifact
unusable elsewhere: the wasm digest, the wasmtime version, the machine and the engine settings.
A sidecar `<key>.cwasm.sha256` lets a truncated or bit-flipped artifact be detected before wasmtime
maps it (wasmtime trusts deserialized code), so such entries are recompiled rather than loaded.

With `sandbox` set (the daemon and its workers) this process never compiles: wasm/sandbox.py has a
child process under those limits fill the cache first, and a miss here is a LoadError.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import platform
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import wasmtime

from tauon.errors import LoadError
from tauon.fsutil import atomic_write
from tauon.wasm.capture import CaptureWatchdog, OutputCapture
from tauon.wasm.compile_limits import CompileLimits
from tauon.wasm.keylocks import KeyedLocks
from tauon.wasm.kind import WasmKind, classify_file
from tauon.wasm.pool import PoolSettings, can_reserve, configure
from tauon.wasm.slots import RunSlots

log = logging.getLogger(__name__)

CACHE_FORMAT = "1"
"""Bumped when tauon changes how it writes cache entries."""


class WasmEngine:
    """Thread-safe: compiles may run concurrently from worker threads of several apps."""

    def __init__(self, cache_dir: Path, *, epoch_interval: float = 0.01,
                 pool: PoolSettings | None = None, run_slots: int | None = None,
                 sandbox: CompileLimits | None = None, key_settings: Mapping[str, str] | None = None,
                 ) -> None:
        if epoch_interval <= 0:
            raise ValueError("epoch_interval must be positive")
        self.cache_dir = Path(cache_dir)
        self.epoch_interval = epoch_interval
        self.sandbox = sandbox
        """Set: compiles run in a child process under these limits; None: here (the child itself,
        tests and benchmarks)."""
        self.settings: dict[str, str] = dict(key_settings) if key_settings else _key_settings()
        """What the cache key covers besides the digest; a compile child is handed its parent's."""
        config = wasmtime.Config()
        config.epoch_interruption = True
        config.wasm_component_model = True
        _enable_stackful(config)
        self.tier = self.settings.get("strategy", "cranelift")
        """'cranelift' (optimizing) or 'winch' (baseline, compiles ~5x faster): code one compiled
        loads only into an engine of the same strategy, so it is part of the cache key."""
        _set_strategy(config, self.tier)
        if "cranelift_opt_level" in self.settings:  # the Winch tier's (for_tier)
            config.cranelift_opt_level = self.settings["cranelift_opt_level"]
        pool = PoolSettings() if pool is None else pool
        if pool.enabled and not can_reserve(pool):
            log.warning("cannot reserve address space for a pool of %d instances; using on-demand "
                        "allocation (slower per request); lower --instance-pool or raise the limit on "
                        "virtual memory (ulimit -v / LimitAS=)", pool.instances)
            pool = PoolSettings(instances=0)
        configure(config, pool)
        self.pool = pool
        # The allocator does not change compiled code, so it is not part of the cache key.
        self.engine = wasmtime.Engine(config)
        self.slots = RunSlots(run_slots)
        """Executors hold one of these while a guest runs (wasm/slots.py)."""
        self.watchdog = CaptureWatchdog()
        self._modules: weakref.WeakValueDictionary[str, wasmtime.Module] = weakref.WeakValueDictionary()
        self._compiling = KeyedLocks()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._tick_hooks: set[Callable[[], None]] = {self.watchdog.check}
        self._winch: WasmEngine | None = None
        self._parent: WasmEngine | None = None

    def for_tier(self, tier: str) -> WasmEngine:
        """The engine whose code is compiled with `tier`'s strategy: this one, or its Winch sibling
        (made on first use). The sibling shares the run slots, the output watchdog and the epoch
        ticker, and allocates instances on demand: its generations serve only until Cranelift's
        replace them, not worth a second pool's address-space reservation. Under Winch, Cranelift
        still compiles the trampolines between host and wasm; unoptimized, they compile 8-12 % faster
        in all (JS, Python) for code that serves only until Cranelift's swap."""
        if tier == self.tier:
            return self
        if tier != "winch" or self.tier != "cranelift":
            raise ValueError(f"unknown compiler tier {tier!r}")
        with self._compiling.hold("tier:winch"):
            if self._winch is None:
                sibling = WasmEngine(self.cache_dir, epoch_interval=self.epoch_interval,
                                     pool=PoolSettings(instances=0), sandbox=self.sandbox,
                                     key_settings={**self.settings, "strategy": "winch",
                                                   "cranelift_opt_level": "none"})
                sibling.slots, sibling.watchdog = self.slots, self.watchdog
                sibling._tick_hooks, sibling._parent = set(), self
                self.on_tick(sibling.engine.increment_epoch)
                self._winch = sibling
            return self._winch

    # -- epoch ticker -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the daemon thread that advances the epoch; idempotent."""
        if self._ticker is not None and self._ticker.is_alive():
            return
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="tauon-epoch", daemon=True)
        self._ticker.start()

    def stop(self) -> None:
        ticker, self._ticker = self._ticker, None
        self._stop.set()
        if ticker is not None:
            ticker.join()

    @property
    def ticking(self) -> bool:
        if self._parent is not None:  # a Winch sibling ticks with the engine that made it
            return self._parent.ticking
        return self._ticker is not None and self._ticker.is_alive()

    def on_tick(self, hook: Callable[[], None]) -> None:
        """Call `hook` (cheap, thread-safe) from the ticker thread every tick, as the output watchdog
        is; idempotent."""
        self._tick_hooks.add(hook)

    def off_tick(self, hook: Callable[[], None]) -> None:
        """Stop calling `hook` (one the ticker may already have picked up runs once more)."""
        self._tick_hooks.discard(hook)

    def _tick(self) -> None:
        while not self._stop.wait(self.epoch_interval):
            self.engine.increment_epoch()
            for hook in tuple(self._tick_hooks):
                try:
                    hook()
                except Exception:  # the ticker must outlive any hook: it is what times guests out
                    log.exception("epoch ticker hook %r failed", hook)

    def deadline_ticks(self, seconds: float) -> int:
        """Epoch ticks for `seconds` of guest time; +1 because the current tick is already partial."""
        return max(1, math.ceil(seconds / self.epoch_interval)) + 1

    def watch_output(self, capture: OutputCapture) -> contextlib.AbstractContextManager[None]:
        """While the context is open, the ticker seals `capture` once it outgrows its limit."""
        return self.watchdog.watching(capture)

    # -- classification and compilation -------------------------------------------------------

    def classify(self, wasm_path: Path) -> WasmKind:
        """'module' or 'component' (binary header layer field, or the first WAT form)."""
        return classify_file(Path(wasm_path))

    def cache_key(self, digest: str) -> str:
        material = "\n".join([digest, *(f"{k}={v}" for k, v in sorted(self.settings.items()))])
        return hashlib.sha256(material.encode()).hexdigest()

    def compile_module(self, wasm_path: Path, digest: str) -> wasmtime.Module:
        """The compiled core module for `wasm_path`, from memory, the disk cache, or a fresh compile."""
        key = self.cache_key(digest)
        with self._compiling.hold(key):
            module = self._modules.get(key)
            if module is None:
                module = self._load_or_compile(Path(wasm_path), key)
                self._modules[key] = module
            return module

    def has_compiled(self, digest: str) -> bool:
        """Whether the module of `digest` is compiled on disk (checked when loaded), where every
        process loads it from: a copy in this process's memory alone may have been collected there."""
        return all(path.is_file() for path in self._paths(self.cache_key(digest)))

    def _paths(self, key: str) -> tuple[Path, Path]:
        artifact = self.cache_dir / "modules" / f"{key}.cwasm"
        return artifact, artifact.with_name(artifact.name + ".sha256")

    def _load_or_compile(self, wasm_path: Path, key: str) -> wasmtime.Module:
        artifact, checksum = self._paths(key)
        cached = self._load_cached(artifact, checksum)
        if cached is not None:
            return cached
        if self.sandbox is not None:
            raise not_cached(wasm_path, artifact)
        try:
            module = wasmtime.Module.from_file(self.engine, str(wasm_path))
        except wasmtime.WasmtimeError as exc:
            raise LoadError(
                f"{wasm_path}: not a valid WebAssembly module: {exc}",
                hint="check that the component source is the wasm the app was built with",
            ) from exc
        except FileNotFoundError as exc:
            raise LoadError(f"{wasm_path}: wasm file is missing") from exc
        self._store(artifact, checksum, module.serialize())
        return module

    def _load_cached(self, artifact: Path, checksum: Path) -> wasmtime.Module | None:
        try:
            expected = checksum.read_text().strip()
            actual = _sha256_file(artifact)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("compiled-module cache %s unreadable (%s); recompiling", artifact, exc)
            return None
        if actual != expected:
            log.warning("compiled-module cache %s is corrupt; recompiling", artifact)
            self._discard(artifact, checksum)
            return None
        try:
            return wasmtime.Module.deserialize_file(self.engine, str(artifact))
        except wasmtime.WasmtimeError as exc:
            # Written by another wasmtime build or engine configuration despite the key.
            log.warning("compiled-module cache %s is incompatible (%s); recompiling", artifact, exc)
            self._discard(artifact, checksum)
            return None

    def _store(self, artifact: Path, checksum: Path, blob: bytes | bytearray) -> None:
        try:
            artifact.parent.mkdir(parents=True, exist_ok=True)
            # Checksum first: a reader that sees the new artifact never pairs it with nothing.
            atomic_write(checksum, hashlib.sha256(blob).hexdigest().encode() + b"\n")
            atomic_write(artifact, blob)
        except OSError as exc:
            # The cache is an optimisation: serving must not depend on a writable cache dir.
            log.warning("cannot write compiled-module cache %s: %s", artifact, exc)

    @staticmethod
    def _discard(*paths: Path) -> None:
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()


def _set_strategy(config: wasmtime.Config, tier: str) -> None:
    """The wasmtime package's `Config.strategy` accepts only "auto" and "cranelift"; its C API
    (`wasmtime_config_strategy_set`: 0 auto, 1 cranelift, 2 winch) takes Winch too."""
    codes = {"cranelift": 1, "winch": 2}
    if tier not in codes:
        raise ValueError(f"unknown compiler tier {tier!r}")
    from wasmtime import _ffi

    _ffi.wasmtime_config_strategy_set(config.ptr(), codes[tier])


def _enable_stackful(config: wasmtime.Config) -> None:
    """Component-model async's stackful form (an async lift without a callback) validates only with
    this feature, which the wasmtime package's `Config` does not expose. Only tauon's own component
    runtime runs such exports (wasm/runtime/tasks.py). A feature is part of what a serialized artifact
    must match, so the cache key names it (`_key_settings`)."""
    from wasmtime import _bindings

    _bindings.wasmtime_config_wasm_component_model_async_stackful_set(config.ptr(), True)


def limited_store(engine: wasmtime.Engine, *, memory_limit: int, deadline_ticks: int,
                  data: Any = None) -> wasmtime.Store:
    """A fresh Store for one guest run (a request, a Redis message, a trial instantiation) with the
    app's memory cap and epoch deadline: every guest Store, component or core module, starts here.
    `data`: the run's state, which host functions of core modules reach through their Caller."""
    store = wasmtime.Store(engine, data=data)
    store.set_limits(memory_size=memory_limit)
    store.set_epoch_deadline(deadline_ticks)
    return store


@contextlib.contextmanager
def watched(engine: WasmEngine, *captures: OutputCapture) -> Iterator[None]:
    """Watch several captures at once (stdout and stderr of one request)."""
    with contextlib.ExitStack() as stack:
        for capture in captures:
            stack.enter_context(engine.watch_output(capture))
        yield


def _key_settings() -> dict[str, str]:
    import importlib.metadata  # here: a compile child, handed these, skips its import time

    return {
        "epoch_interruption": "true",
        "component_model_async_stackful": "true",
        "wasmtime": importlib.metadata.version("wasmtime"),
        "machine": platform.machine(),
        "system": platform.system(),
        "format": CACHE_FORMAT,
    }


def not_cached(wasm_path: Path, artifact: Path) -> LoadError:
    """The error for a sandboxed process that finds no artifact where its compile child wrote one."""
    return LoadError(f"{wasm_path}: its compiled code is missing from the cache ({artifact})",
                     hint="another process may have removed it; the next retry compiles it again")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
