"""Compiled components, cached on disk next to the engine's compiled modules.

The key is the engine's (wasm digest + wasmtime version + machine + engine settings), with a
component-specific prefix so a module and a component of the same bytes never collide. Loading uses
`deserialize_file` (mmap, milliseconds) and a checksum sidecar guards against truncated artifacts.
As for modules, an engine with `sandbox` set only loads: its compile child fills the cache.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import logging
import mmap
import os
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import wasmtime
from wasmtime import _ffi
from wasmtime.component import Component

from tauon.errors import LoadError
from tauon.fsutil import atomic_write
from tauon.wasm.component.rewriting import probe, routing, sockets
from tauon.wasm.component.rewriting import reads as stream_reads
from tauon.wasm.engine import WasmEngine, not_cached
from tauon.wasm.keylocks import KeyedLocks

log = logging.getLogger(__name__)

# Compiled code belongs to one Engine: the in-memory cache is per engine.
_memory: weakref.WeakKeyDictionary[WasmEngine, weakref.WeakValueDictionary[str, Component]] = (
    weakref.WeakKeyDictionary())
_compiling = KeyedLocks()
"""One compile (or cache load) per key at a time; entries go when their last user does."""
_guard = threading.Lock()


def component_key(engine: WasmEngine, digest: str) -> str:
    return (f"component-r{stream_reads.VERSION}w{routing.VERSION}n{sockets.VERSION}-"
            + engine.cache_key(digest))


def compile_component(engine: WasmEngine, wasm_path: Path, digest: str) -> Component:
    """The compiled component for `wasm_path`: from memory, the disk cache or a fresh compile."""
    key = component_key(engine, digest)
    with _guard:
        compiled = _memory.setdefault(engine, weakref.WeakValueDictionary())
    with _compiling.hold(key):
        component = compiled.get(key)
        if component is None:
            component = _load_or_compile(engine, Path(wasm_path), key)
            compiled[key] = component
        return component


def has_compiled(engine: WasmEngine, digest: str) -> bool:
    """Whether the component of `digest` is compiled on disk (checked when loaded), where every
    process loads it from: a copy in this process's memory alone may have been collected there."""
    return all(path.is_file() for path in _paths(engine, component_key(engine, digest)))


def _paths(engine: WasmEngine, key: str) -> tuple[Path, Path]:
    artifact = engine.cache_dir / "components" / f"{key}.cwasm"
    return artifact, artifact.with_name(artifact.name + ".sha256")


def _load_or_compile(engine: WasmEngine, wasm_path: Path, key: str) -> Component:
    artifact, checksum = _paths(engine, key)
    cached = _load_cached(engine, artifact, checksum)
    if cached is not None:
        return cached
    if engine.sandbox is not None:
        raise not_cached(wasm_path, artifact)
    try:
        original = wasm_path.read_bytes()
    except FileNotFoundError as exc:
        raise LoadError(f"{wasm_path}: wasm file is missing") from exc
    shrinks = probe.Probe(original)  # overlaps the rewrites below; the answer is needed after them
    try:
        # Socket imports wasmtime's C API can call (rewriting/sockets.py), then the bulk-body forms
        # of that.
        component = _first_accepted(engine, wasm_path, original, sockets.retype(original), shrinks)
    finally:
        shrinks.close()
    if component is None:
        try:
            component = _compile(engine, original)
        except wasmtime.WasmtimeError as exc:
            raise LoadError(f"{wasm_path}: not a valid WebAssembly component: {exc}",
                            hint="check that the component source is the wasm the app was built "
                            "with") from exc
    with _serialized(component) as blob:
        _store(artifact, checksum, blob)
    return component


def _compile(engine: WasmEngine, wasm: bytes) -> Component:
    """`Component(engine, wasm)` without the package's copy of the bytes into a ctypes array (20 ms
    for the 37.7 MB Python component): wasmtime reads them where they are, during the call."""
    out = ctypes.POINTER(_ffi.wasmtime_component_t)()
    data = ctypes.cast(ctypes.c_char_p(wasm), ctypes.POINTER(ctypes.c_uint8))
    error = _ffi.wasmtime_component_new(engine.engine.ptr(), data, len(wasm), ctypes.byref(out))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return Component._from_ptr(out)


def _first_accepted(engine: WasmEngine, wasm_path: Path, original: bytes, retyped: bytes | None,
                    shrinks: probe.Probe) -> Component | None:
    """The first bulk-body (or socket-retyped) form wasmtime accepts, if any."""
    try:
        for candidate in _candidates(wasm_path, original, retyped, shrinks):
            shrinks.stop()  # answered if this form needed it; otherwise not beside the compile
            try:
                return _compile(engine, candidate)
            except wasmtime.WasmtimeError as exc:  # the original still works, with slower bodies
                log.info("%s: a bulk-body form was refused (%s); trying the next", wasm_path, exc)
    except probe.ProbeTimeout as exc:
        raise LoadError(f"{wasm_path}: {exc}",
                        hint="the component's allocator loops or blocks, so no request could be served "
                             "with it either; rebuild the component") from None
    return None


def _candidates(wasm_path: Path, original: bytes, retyped: bytes | None,
                shrinks: probe.Probe) -> Iterator[bytes]:
    if retyped is not None:
        yield from _bulk_body_forms(wasm_path, retyped, shrinks)
        yield retyped
    yield from _bulk_body_forms(wasm_path, original, shrinks)


def _bulk_body_forms(wasm_path: Path, original: bytes, shrinks: probe.Probe) -> Iterator[bytes]:
    """The component with request-body reads retyped (reads.py) or else routed (routing.py: every
    byte value, or ASCII runs into a caller's buffer), and response-body writes routed (routing.py),
    where each applies, best first; each form keeps the guest's behaviour. Lazy: a later form is only
    built if wasmtime refused the ones before it."""
    reads = stream_reads.rewrite(original)
    if reads is not None and not shrinks.result():
        log.info("%s: its allocator cannot shrink; request bodies go through the appended string "
                 "import instead", wasm_path)
        reads = None
    if reads is not None:
        both = routing.route_streams(reads)
        if both is not None:
            yield both
        yield reads
    routed = routing.route_streams(original)
    if routed is not None:
        yield routed
    writes_only = routing.route_streams(original, reads=False)  # if routed reads were refused
    if writes_only is not None and writes_only != routed:
        yield writes_only


def _load_cached(engine: WasmEngine, artifact: Path, checksum: Path) -> Component | None:
    try:
        expected = checksum.read_text().strip()
        with artifact.open("rb") as handle:
            if os.fstat(handle.fileno()).st_size == 0:
                digest = hashlib.sha256()  # mmap refuses empty files; the checksum then disagrees
            else:
                with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    digest = hashlib.sha256(data)  # in place, GIL released: no copy of tens of MB
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("compiled-component cache %s unreadable (%s); recompiling", artifact, exc)
        return None
    if digest.hexdigest() != expected:
        log.warning("compiled-component cache %s is corrupt; recompiling", artifact)
        _discard(artifact, checksum)
        return None
    try:
        return Component.deserialize_file(engine.engine, str(artifact))
    except wasmtime.WasmtimeError as exc:
        log.warning("compiled-component cache %s is incompatible (%s); recompiling", artifact, exc)
        _discard(artifact, checksum)
        return None


@contextlib.contextmanager
def _serialized(component: Component) -> Iterator[memoryview]:
    """The component's serialized code, in wasmtime's own buffer (freed on exit): the package's
    `serialize` copies it into a new bytearray, 45-54 MB for the JS and Python components."""
    raw = _ffi.wasm_byte_vec_t()
    error = _ffi.wasmtime_component_serialize(component.ptr(), ctypes.byref(raw))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    try:
        if not raw.size:
            yield memoryview(b"")
            return
        code = (ctypes.c_uint8 * raw.size).from_address(ctypes.addressof(raw.data.contents))
        with memoryview(code) as typed, typed.cast("B") as view:
            yield view
    finally:
        _ffi.wasm_byte_vec_delete(ctypes.byref(raw))


def _store(artifact: Path, checksum: Path, blob: memoryview) -> None:
    """Write the artifact, then its checksum (readers take neither without the other). The checksum
    is computed in a second thread meanwhile: hashing and writing both release the GIL (25 ms of
    hashing beside 45-120 ms of writing Python's 45 MB)."""
    digest: list[str] = []
    hashing = threading.Thread(target=lambda: digest.append(hashlib.sha256(blob).hexdigest()),
                               name="artifact-checksum")
    hashing.start()
    try:
        artifact.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(artifact, blob)
        hashing.join()
        atomic_write(checksum, digest[0].encode() + b"\n")
    except OSError as exc:  # the cache is an optimisation; serving must not depend on it
        log.warning("cannot write compiled-component cache %s: %s", artifact, exc)
        _discard(artifact, checksum)
    finally:
        hashing.join()


def _discard(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
