"""The pull cache's garbage collector: what is unreferenced and old goes, everything else stays."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tauon.registry.gc import GRACE, collect, usage

OLD = time.time() - 2 * GRACE


def blob(root: Path, hexpart: str, size: int, *, old: bool) -> Path:
    path = root / "blobs" / "sha256" / hexpart
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if old:
        os.utime(path, (OLD, OLD))
    return path


def tree(root: Path, name: str, *, old: bool) -> Path:
    path = root / "assets" / name
    (path / "web").mkdir(parents=True)
    (path / "web" / "index.html").write_bytes(b"<html>" * 10)
    if old:
        os.utime(path, (OLD, OLD))
    return path


def test_unreferenced_old_content_is_removed_and_the_rest_kept(tmp_path: Path) -> None:
    kept_old = blob(tmp_path, "a" * 64, 100, old=True)
    gone = blob(tmp_path, "b" * 64, 1000, old=True)
    fresh = blob(tmp_path, "c" * 64, 10, old=False)  # a pull in progress wrote it just now
    leftover = blob(tmp_path, ".tmp-abc", 500, old=True)  # a failed pull's temp file
    kept_tree = tree(tmp_path, "d" * 64, old=True)
    gone_tree = tree(tmp_path, "e" * 64, old=True)
    before = usage(tmp_path)
    result = collect(tmp_path, {"sha256:" + "a" * 64}, {"d" * 64})
    assert kept_old.exists() and fresh.exists() and kept_tree.exists()
    assert not gone.exists() and not leftover.exists() and not gone_tree.exists()
    assert result.files == 3
    assert result.bytes == 1000 + 500 + 60  # the tree counts its file
    assert usage(tmp_path) == before - result.bytes


def test_nothing_to_collect_in_an_empty_or_missing_cache(tmp_path: Path) -> None:
    assert collect(tmp_path / "missing", set(), set()).files == 0
    assert usage(tmp_path / "missing") == 0
