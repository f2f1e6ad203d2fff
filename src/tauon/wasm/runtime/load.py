"""Loading a component for tauon's own runtime: parse, plan, compile its core modules (cached on disk next
to the engine's compiled modules, keyed by each module's digest and the engine's settings), resolve its
imports against the host.

Only components wasmtime has already compiled (so validated) get here: the executor builder compiles
every component with `wasmtime.component.Component` first.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import weakref
from pathlib import Path

import wasmtime

from tauon.errors import LoadError
from tauon.fsutil import atomic_write
from tauon.wasm.engine import WasmEngine, not_cached
from tauon.wasm.keylocks import KeyedLocks
from tauon.wasm.runtime.instance import HostLinks, RuntimeComponent
from tauon.wasm.runtime.model import UnsupportedComponent
from tauon.wasm.runtime.parse import parse_component
from tauon.wasm.runtime.plan import Plan, build_plan
from tauon.wasm.runtime.wiring import Wiring

log = logging.getLogger(__name__)

CACHE_VERSION = "2"  # 2: modules with their imports renamed (wiring.py)
_modules: weakref.WeakKeyDictionary[WasmEngine, dict[str, wasmtime.Module]] = weakref.WeakKeyDictionary()
_compiling = KeyedLocks()
_guard = threading.Lock()


def plan_component(wasm_path: Path) -> Plan:
    """The instantiation plan of a component file. Raises UnsupportedComponent."""
    try:
        data = Path(wasm_path).read_bytes()
    except OSError as exc:
        raise UnsupportedComponent(f"cannot read {wasm_path}: {exc}") from exc
    if not data.startswith(b"\0asm"):  # the text format (Spin accepts WAT sources)
        try:
            data = bytes(wasmtime.wat2wasm(data.decode("utf-8")))
        except (UnicodeDecodeError, wasmtime.WasmtimeError) as exc:
            raise UnsupportedComponent(f"not a component binary, nor text that compiles: {exc}") from None
    return build_plan(parse_component(data))


def load_component(engine: WasmEngine, wasm_path: Path, links: HostLinks) -> RuntimeComponent:
    """A component ready to instantiate. Raises UnsupportedComponent (the caller falls back to the
    wasmtime path) or LoadError (a core module that cannot be compiled or loaded)."""
    plan = plan_component(wasm_path)
    wiring = Wiring(plan)
    modules = [compile_core_module(engine, data) for data in wiring.modules]
    plan.modules = wiring.modules = []  # compiled: the bytes (tens of MB for an interpreter) are not kept
    return RuntimeComponent(plan, wiring, modules, links, engine.engine)


def compile_core_modules(engine: WasmEngine, wasm_path: Path) -> None:
    """Compile (into the cache) the core modules of a component this runtime can run; nothing for one
    it cannot (it runs on the wasmtime path). For the compile child (wasm/compile_child.py)."""
    try:
        modules = linked_modules(wasm_path)
    except UnsupportedComponent:
        return
    for data in modules:
        compile_core_module(engine, data)


def linked_modules(wasm_path: Path) -> list[bytes]:
    """The core modules of a component as this runtime compiles them (imports renamed by the wiring)."""
    return Wiring(plan_component(wasm_path)).modules


def module_key(engine: WasmEngine, data: bytes) -> str:
    return _key(engine, hashlib.sha256(data).hexdigest())


def _key(engine: WasmEngine, sha256: str) -> str:
    return f"runtime{CACHE_VERSION}-" + engine.cache_key("sha256:" + sha256)


_digests: dict[tuple[str, int, int], list[str]] = {}
"""(path, size, mtime) -> the sha256 of each core module of the component, or [] if it cannot be
planned: asked on every generation build (the cache's collector must keep these files)."""


def _paths(engine: WasmEngine, key: str) -> tuple[Path, Path]:
    artifact = engine.cache_dir / "modules" / f"{key}.cwasm"
    return artifact, artifact.with_name(artifact.name + ".sha256")


def cache_names(engine: WasmEngine, wasm_path: Path) -> list[str]:
    """The compile-cache names (relative to `engine.cache_dir`) of the component's core modules as this
    runtime caches them; none for a component it cannot plan."""
    try:
        stat = Path(wasm_path).stat()
    except OSError:
        return []
    key = (str(wasm_path), stat.st_size, stat.st_mtime_ns)
    with _guard:
        digests = _digests.get(key)
    if digests is None:
        try:
            digests = [hashlib.sha256(data).hexdigest() for data in linked_modules(wasm_path)]
        except UnsupportedComponent:
            digests = []
        with _guard:
            if len(_digests) > 256:
                _digests.clear()
            _digests[key] = digests
    return [f"modules/{_key(engine, sha)}.cwasm" for sha in digests]


def has_compiled(engine: WasmEngine, wasm_path: Path) -> bool:
    """Whether every core module of the component is compiled on disk (True for a component this
    runtime cannot plan: nothing needs compiling for it)."""
    return all((engine.cache_dir / name).is_file() for name in cache_names(engine, wasm_path))


def compile_core_module(engine: WasmEngine, data: bytes) -> wasmtime.Module:
    """The compiled core module: from memory, the disk cache, or a fresh compile (not in a sandboxed
    engine, which only loads what its compile child wrote)."""
    key = module_key(engine, data)
    with _guard:
        compiled = _modules.setdefault(engine, {})
    with _compiling.hold(key):
        module = compiled.get(key)
        if module is None:
            module = _load_or_compile(engine, data, key)
            compiled[key] = module
        return module


def _load_or_compile(engine: WasmEngine, data: bytes, key: str) -> wasmtime.Module:
    artifact, checksum = _paths(engine, key)
    try:
        expected = checksum.read_text().strip()
        if hashlib.sha256(artifact.read_bytes()).hexdigest() == expected:
            return wasmtime.Module.deserialize_file(engine.engine, str(artifact))
        log.warning("compiled-module cache %s is corrupt; recompiling", artifact)
    except FileNotFoundError:
        pass
    except (OSError, wasmtime.WasmtimeError) as exc:
        log.warning("compiled-module cache %s unusable (%s); recompiling", artifact, exc)
    if engine.sandbox is not None:
        raise not_cached(Path(f"core module {key}"), artifact)
    try:
        module = wasmtime.Module(engine.engine, data)
    except wasmtime.WasmtimeError as exc:
        raise LoadError(f"a core module of the component does not compile: {exc}") from exc
    blob = bytes(module.serialize())
    try:
        artifact.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(checksum, hashlib.sha256(blob).hexdigest().encode() + b"\n")
        atomic_write(artifact, blob)
    except OSError as exc:  # the cache is an optimisation
        log.warning("cannot write compiled-module cache %s: %s", artifact, exc)
    return module
