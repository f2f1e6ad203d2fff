"""Turn a component source into what tauon runs, as Spin's loader does before it instantiates anything.

A component is used as it is. A core module is classified as Spin classifies it (moduleinfo.py):
wit-bindgen 0.5..<1.0 modules are converted with the upstream preview1 reactor adapter by wasm-tools
(`component new --adapt`); `_start` modules (WAGI) and Spin 1.x modules stay core modules, run by
tauon's own executors for them; other wit-bindgen versions are refused with Spin's error.

A conversion is cached under `<compile cache>/converted/` keyed by the source digest, the adapter's
digest and the encoder's version, with a sidecar holding the result's digest: a warm restart reads the
sidecar and goes straight to the compiled-code cache, without converting or even reading the module.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import tempfile
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from tauon.errors import LoadError
from tauon.fsutil import atomic_write
from tauon.wasm import encoder
from tauon.wasm.keylocks import KeyedLocks
from tauon.wasm.kind import WasmKind, classify_file
from tauon.wasm.moduleinfo import REACTOR, UnsupportedBindgen, classify, read_module_info

log = logging.getLogger(__name__)

FORMAT = "1"
"""Bumped when tauon changes what it asks the encoder for."""

_converting = KeyedLocks()


@dataclass(frozen=True, slots=True)
class Source:
    """The wasm tauon runs for a component (or one of its dependencies)."""

    path: Path
    digest: str
    kind: WasmKind


def cached_artifact(cache_dir: Path, key: str) -> Source | None:
    """A converted or composed component from the cache, if it is there and intact."""
    artifact, sidecar = artifact_paths(cache_dir, key)
    try:
        digest = sidecar.read_text().strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("conversion cache %s unreadable (%s); converting again", sidecar, exc)
        return None
    try:
        with artifact.open("rb") as handle:
            actual = "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None
    if actual != digest:  # truncated or altered: its digest also keys the compiled code
        log.warning("conversion cache %s is corrupt; converting again", artifact)
        return None
    return Source(artifact, digest, "component")


def store_artifact(cache_dir: Path, key: str, data: bytes) -> Source:
    """Write a converted or composed component; it is returned even if the cache cannot be written."""
    artifact, sidecar = artifact_paths(cache_dir, key)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    try:
        artifact.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(artifact, data)
        atomic_write(sidecar, digest.encode() + b"\n")  # last: a sidecar always has its artifact
    except OSError as exc:
        log.warning("cannot write conversion cache %s: %s", artifact, exc)
        if not artifact.is_file():
            raise LoadError(f"cannot keep the converted component: {exc}",
                            hint="check that the cache directory is writable") from None
    return Source(artifact, digest, "component")


def artifact_paths(cache_dir: Path, key: str) -> tuple[Path, Path]:
    artifact = cache_dir / "converted" / f"{key}.wasm"
    return artifact, artifact.with_name(artifact.name + ".digest")


def key_lock(key: str) -> AbstractContextManager[None]:
    """One conversion per key at a time (two apps with the same module convert it once)."""
    return _converting.hold(key)


def conversion_key(digest: str) -> str:
    material = "\n".join(["componentize", FORMAT, digest, encoder.adapter_digest(encoder.REACTOR_ADAPTER),
                          encoder.version()])
    return hashlib.sha256(material.encode()).hexdigest()


def prepare_source(cache_dir: Path, path: Path, digest: str, *, component_id: str,
                   bounds: encoder.Bounds = encoder.DEFAULT_BOUNDS, dependency: str | None = None) -> Source:
    """`path` as tauon runs it: the component, a converted module, or a module tauon runs itself.
    `dependency`: the name when `path` is one of the component's dependencies. Raises LoadError naming
    the component (and dependency) and what went wrong."""
    kind = classify_file(path)
    if kind == "component":
        return Source(path, digest, kind)
    key = conversion_key(digest)
    cached = cached_artifact(cache_dir, key)
    if cached is not None:
        return cached
    what = f"component '{component_id}'" + (f" dependency '{dependency}'" if dependency else "")
    field = f"components.{component_id}." + (f"dependencies.{dependency}" if dependency else "source")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LoadError(f"{what}: cannot read {path}: {exc.strerror}", field=field) from None
    if not data.startswith(b"\0asm"):
        return Source(path, digest, kind)  # WAT text: wasmtime compiles it as a module
    try:
        conversion = classify(read_module_info(data))
    except UnsupportedBindgen as exc:
        raise LoadError(f"{what}: {exc}", field=field,
                        hint="rebuild it with a wit-bindgen between 0.5 and 1.0, or as a component "
                             "(e.g. the wasm32-wasip2 target)") from None
    except ValueError as exc:
        raise LoadError(f"{what}: {exc}", field=field) from None
    if conversion != REACTOR:
        return Source(path, digest, kind)
    with key_lock(key):
        cached = cached_artifact(cache_dir, key)
        if cached is not None:
            return cached
        converted = _convert(path, what, field, bounds)
        log.info("%s: converted a wit-bindgen core module to a component (%d bytes)", what,
                 len(converted))
        return store_artifact(cache_dir, key, converted)


def _convert(path: Path, what: str, field: str, bounds: encoder.Bounds) -> bytes:
    adapter = encoder.adapter_path(encoder.REACTOR_ADAPTER)
    with tempfile.TemporaryDirectory(prefix="tauon-componentize-") as tmp:
        out = Path(tmp) / "component.wasm"
        try:
            encoder.run(["component", "new", path, "--adapt", f"wasi_snapshot_preview1={adapter}",
                         "-o", out], what="wasm-tools component new", bounds=bounds)
            return out.read_bytes()
        except encoder.EncoderError as exc:
            raise LoadError(
                f"{what}: converting its core module to a component with the preview1 reactor "
                f"adapter failed: {exc}", field=field,
                hint="check the module with `wasm-tools component new --adapt`; rebuilding it as a "
                     "component avoids the conversion") from None
        finally:
            with contextlib.suppress(OSError):
                out.unlink()
