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
from tauon.wasm.runtime.adapters import Adapters
from tauon.wasm.runtime.instance import HostLinks, RuntimeComponent
from tauon.wasm.runtime.model import UnsupportedComponent
from tauon.wasm.runtime.parse import parse_component
from tauon.wasm.runtime.plan import Plan, build_plan

log = logging.getLogger(__name__)

CACHE_VERSION = "1"
_modules: weakref.WeakKeyDictionary[WasmEngine, dict[str, wasmtime.Module]] = weakref.WeakKeyDictionary()
_compiling = KeyedLocks()
_guard = threading.Lock()
_ADAPTERS = Adapters()


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
    modules = [compile_core_module(engine, data) for data in plan.modules]
    return RuntimeComponent(plan, modules, links, _ADAPTERS)


def module_key(engine: WasmEngine, data: bytes) -> str:
    return f"runtime{CACHE_VERSION}-" + engine.cache_key("sha256:" + hashlib.sha256(data).hexdigest())


def _paths(engine: WasmEngine, key: str) -> tuple[Path, Path]:
    artifact = engine.cache_dir / "modules" / f"{key}.cwasm"
    return artifact, artifact.with_name(artifact.name + ".sha256")


def has_compiled(engine: WasmEngine, wasm_path: Path) -> bool:
    """Whether every core module of the component is compiled on disk (False if it cannot be planned:
    then nothing needs compiling for this runtime)."""
    try:
        plan = plan_component(wasm_path)
    except UnsupportedComponent:
        return True
    return all(all(p.is_file() for p in _paths(engine, module_key(engine, data))) for data in plan.modules)


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
