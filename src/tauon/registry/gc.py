"""The pull cache's size bound and its garbage collection.

The cache only grows as apps are pulled and compiled: every image version an app ever ran, and every
app ever removed, stays, with its compiled code. Here content that no serving app's generation (nor
the one it replaced) references is removed, once it is older than a grace period, which protects what
a pull or a build in progress has just written or touched. A pull that would take the cache over its
bound first collects garbage, and fails with an error naming the bound if that does not make room.

Compiled code and converted wasm (`<cache>/compiled/`, see wasm/cacheuse.py) go by what the live
generations hold: an entry none holds is removed once unused for the grace period, and, while the
cache is over its bound, least recently used first until it is not. Entries are only ever unlinked,
never truncated: a process that has mapped one keeps its pages.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tauon.registry.gccompiled import COMPILED, collect_compiled

log = logging.getLogger("tauon.registry")

GRACE = 3600.0
"""Content younger than this is never collected (pulls touch what they use)."""


@dataclass(frozen=True, slots=True)
class CacheLimits:
    max_bytes: int
    """The cache's size bound (blobs, materialized files, compiled code and converted wasm)."""
    max_blob: int
    """The largest blob a descriptor may declare."""


def default_max_bytes(cache_dir: Path) -> int:
    """A quarter of the file system the cache lives on, at least 1 GiB."""
    probe = cache_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        stat = os.statvfs(probe)
    except OSError:
        return 16 * 1024**3
    return max(1024**3, stat.f_blocks * stat.f_frsize // 4)


@dataclass(frozen=True, slots=True)
class Collected:
    files: int
    bytes: int


def usage(root: Path) -> int:
    """Bytes held in the cache's blobs, materialized trees and compiled code (a file hard-linked from
    a tree to its blob counts once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for part in ("blobs", "assets", COMPILED):
        for dirpath, _, files in os.walk(root / part):
            for name in files:
                try:
                    stat = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                if (stat.st_dev, stat.st_ino) not in seen:
                    seen.add((stat.st_dev, stat.st_ino))
                    total += stat.st_size
    return total


def blob_name(digest: str) -> tuple[str, str]:
    alg, _, hexpart = digest.partition(":")
    return alg, hexpart


def collect(root: Path, keep_blobs: Iterable[str], keep_assets: Iterable[str], *,
            keep_compiled: Iterable[str] | None = None, max_bytes: int | None = None,
            grace: float = GRACE, now: float | None = None) -> Collected:
    """Remove blobs and asset trees not in the keep sets and older than `grace` seconds (and leftover
    temp files of failed pulls). `keep_blobs` are digests; `keep_assets` are asset directory names.
    With `keep_compiled` (names under `compiled/`, wasm/cacheuse.py), compiled entries not in it go
    too: those unused for `grace` seconds, then, while the cache is over `max_bytes`, the least
    recently used. None leaves compiled code alone."""
    cutoff = (time.time() if now is None else now) - grace
    blobs_and_trees = _collect_pulled(root, keep_blobs, keep_assets, cutoff)
    if keep_compiled is None:
        return blobs_and_trees
    over = usage(root) - max_bytes if max_bytes is not None else 0
    compiled = collect_compiled(root / COMPILED, set(keep_compiled), cutoff=cutoff, over=over)
    return Collected(blobs_and_trees.files + compiled.files, blobs_and_trees.bytes + compiled.bytes)


def _collect_pulled(root: Path, keep_blobs: Iterable[str], keep_assets: Iterable[str],
                    cutoff: float) -> Collected:
    kept_blobs = {blob_name(d) for d in keep_blobs}
    kept_assets = set(keep_assets)
    files = freed = 0
    blobs = root / "blobs"
    for alg_dir in _children(blobs):
        for entry in _children(alg_dir):
            if (alg_dir.name, entry.name) in kept_blobs or not _older(entry, cutoff):
                continue
            size = _size(entry)
            if _remove(entry):
                files += 1
                freed += size
    for entry in _children(root / "assets"):
        if entry.name in kept_assets or not _older(entry, cutoff):
            continue
        size = sum(_size(p) for p in entry.rglob("*") if p.is_file())
        if _remove(entry):
            files += 1
            freed += size
    if files:
        log.info("cache: removed %d unused entr%s (%.1f MiB)", files, "y" if files == 1 else "ies",
                 freed / 1024**2)
    return Collected(files, freed)


def _children(directory: Path) -> list[Path]:
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def _older(path: Path, cutoff: float) -> bool:
    try:
        return os.lstat(path).st_mtime < cutoff
    except OSError:
        return False


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0


def _remove(path: Path) -> bool:
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        return True
    except OSError as exc:
        log.warning("cache: cannot remove %s: %s", path, exc.strerror)
        return False
