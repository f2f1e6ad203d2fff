"""Garbage collection of the compile cache: compiled code and converted wasm.

    <cache>/compiled/modules/<key>.cwasm (+ .sha256)       compiled core modules (wasm/engine.py)
    <cache>/compiled/components/<key>.cwasm (+ .sha256)    compiled components (wasm/component/cache.py)
    <cache>/compiled/converted/<key>.wasm (+ .digest)      converted and composed wasm (wasm/componentize.py)

An entry is an artifact with its sidecar, named as wasm/cacheuse.py names what generations hold. Its
last use is its mtime (written, or released by the last generation holding it). What to remove is
chosen by `select`, which is pure; removing only unlinks (the artifact first, so a reader never finds
a sidecar vouching for a missing file's replacement), which a process that has mapped the file
survives, as Linux keeps a mapped file's pages until it is unmapped.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("tauon.registry")

COMPILED = "compiled"
"""The compile cache's directory in the cache (the engine's cache_dir)."""
PARTS = ("modules", "components", "converted")
SIDECARS = (".sha256", ".digest")


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    """`<part>/<file>` under `compiled/`: what a generation holds (wasm/cacheuse.py)."""
    size: int
    """Bytes of the artifact and its sidecar."""
    used: float
    """Last use (the artifact's mtime)."""
    partial: bool = False
    """A temporary file of a write (`atomic_write`), or an artifact or a sidecar without the other:
    possibly a write in progress, and of no use otherwise."""


@dataclass(frozen=True, slots=True)
class Removed:
    files: int
    bytes: int


def select(entries: Iterable[Entry], keep: Collection[str], *, cutoff: float, over: int) -> list[Entry]:
    """The entries to remove: those not in `keep` last used before `cutoff`, then, while `over` (bytes
    over the cache's bound) is still positive, the least recently used of the other unkept ones. A
    temporary file is only ever removed by age: under pressure it may be a write in progress."""
    unkept = [entry for entry in entries if entry.name not in keep]
    chosen = [entry for entry in unkept if entry.used < cutoff]
    over -= sum(entry.size for entry in chosen)
    for entry in sorted((e for e in unkept if e.used >= cutoff and not e.partial), key=lambda e: e.used):
        if over <= 0:
            break
        chosen.append(entry)
        over -= entry.size
    return chosen


def scan(compiled: Path) -> list[Entry]:
    """Every entry under `compiled` (missing directories are empty)."""
    entries = []
    for part in PARTS:
        try:
            names = os.listdir(compiled / part)
        except OSError:
            continue
        present = set(names)
        for name in names:
            sidecar = _sidecar_of(name)
            if sidecar is not None and sidecar in present:
                continue  # counted with its artifact
            entry = _entry(compiled / part, name, present)
            if entry is not None:
                entries.append(entry)
    return entries


def _sidecar_of(name: str) -> str | None:
    """The artifact a sidecar name belongs to, or None for an artifact or a temporary file."""
    for suffix in SIDECARS:
        if name.endswith(suffix) and not name.endswith(".tmp"):
            return name[:-len(suffix)]
    return None


def _entry(directory: Path, name: str, present: set[str]) -> Entry | None:
    try:
        stat = os.lstat(directory / name)
    except OSError:
        return None
    size = stat.st_size
    paired = False
    for suffix in SIDECARS:
        if name + suffix in present:
            paired = True
            with contextlib.suppress(OSError):
                size += os.lstat(directory / (name + suffix)).st_size
    partial = not paired or name.endswith(".tmp")  # a lone sidecar has no pair either
    return Entry(f"{directory.name}/{name}", size, stat.st_mtime, partial)


def remove(compiled: Path, entries: Iterable[Entry]) -> Removed:
    files = freed = 0
    for entry in entries:
        artifact = compiled / entry.name
        try:
            artifact.unlink()  # unlink only: a mapped file must not be truncated
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cache: cannot remove %s: %s", artifact, exc.strerror)
            continue
        for suffix in SIDECARS:
            with contextlib.suppress(OSError):
                artifact.with_name(artifact.name + suffix).unlink()
        files += 1
        freed += entry.size
    return Removed(files, freed)


def collect_compiled(compiled: Path, keep: Collection[str], *, cutoff: float, over: int) -> Removed:
    """Remove what `select` chooses; log it."""
    entries = scan(compiled)
    chosen = select(entries, keep, cutoff=cutoff, over=over)
    removed = remove(compiled, chosen)
    if removed.files:
        old = sum(1 for entry in chosen if entry.used < cutoff)
        log.info("cache: removed %d compiled entr%s no app uses (%.1f MiB; %d unused for the grace "
                 "period, %d to keep the cache within its bound)", removed.files,
                 "y" if removed.files == 1 else "ies", removed.bytes / 1024**2, old, len(chosen) - old)
    return removed
