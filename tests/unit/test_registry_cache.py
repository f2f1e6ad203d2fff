from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest

from tauon.errors import DigestMismatch, PullError
from tauon.registry.artifact import FileEntry
from tauon.registry.cache import Cache, building_dir, digest_of
from tauon.registry.materialize import component_dir_name, materialize_files, unpack_archive


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".tmp-")]


def test_store_verifies_before_publishing(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    data = b"hello world"
    digest = digest_of(data)
    path = cache.store_stream(digest, [data[:5], data[5:]], size=len(data), what="t")
    assert path.read_bytes() == data and cache.has_blob(digest)

    wrong = digest_of(b"other")
    with pytest.raises(DigestMismatch, match=f"blob {wrong} hashed to {digest}"):
        cache.store_bytes(wrong, data, what="t")
    assert not cache.has_blob(wrong)
    with pytest.raises(DigestMismatch, match="larger than the 3 bytes"):
        cache.store_stream(digest_of(b"abcd"), [b"ab", b"cd"], size=3, what="t")
    assert _leftovers(tmp_path) == []


def test_interrupted_stream_leaves_nothing(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    data = b"x" * 1000
    digest = digest_of(data)

    def chunks() -> Iterator[bytes]:
        yield data[:500]
        raise ConnectionError("cut")

    with pytest.raises(ConnectionError):
        cache.store_stream(digest, chunks(), size=len(data), what="t")
    assert not cache.has_blob(digest)
    assert _leftovers(tmp_path) == []


def test_sha512_and_bad_digest(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    digest = digest_of(b"abc", "sha512")
    assert cache.store_bytes(digest, b"abc", what="t") == tmp_path / "blobs" / "sha512" / digest[7:]
    with pytest.raises(PullError, match="not a valid digest"):
        cache.blob_path("sha256:../../etc")


def test_tag_index_roundtrip(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    assert cache.read_index("r:5000", "a/b", "v1") is None
    digest = digest_of(b"m")
    cache.write_index("r:5000", "a/b", "v1", digest)
    entry = cache.read_index("r:5000", "a/b", "v1")
    assert entry is not None and entry.digest == digest
    (tmp_path / "index/r:5000/a/b/v1.json").write_text("{broken")
    assert cache.read_index("r:5000", "a/b", "v1") is None


def test_building_dir_is_atomic(tmp_path: Path) -> None:
    final = tmp_path / "assets" / "x"
    with pytest.raises(RuntimeError), building_dir(final) as tmp:
        (tmp / "half").write_text("written")
        raise RuntimeError("crash mid-build")
    assert not final.exists() and _leftovers(tmp_path) == []
    with building_dir(final) as tmp:
        (tmp / "a").write_text("1")
    # A concurrent builder finishing second keeps the first tree.
    with building_dir(final) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in final.iterdir()) == ["a"]
    assert _leftovers(tmp_path) == []


def test_materialize_files(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    big = b"<html>" + b"x" * 200
    cache.store_bytes(digest_of(big), big, what="t")
    entries = [FileEntry(PurePosixPath("index.html"), digest_of(big), None),
               FileEntry(PurePosixPath("css/site.css"), digest_of(b"body{}"), b"body{}")]
    out = materialize_files(cache, tmp_path / "c/assets/m/web", "web", entries)
    assert (out / "index.html").read_bytes() == big
    assert (out / "css/site.css").read_bytes() == b"body{}"


def test_materialize_errors_leave_no_tree(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    final = tmp_path / "assets/m/web"
    bad_inline = [FileEntry(PurePosixPath("a"), digest_of(b"other"), b"content")]
    with pytest.raises(DigestMismatch, match="component 'web' file 'a': inline content"):
        materialize_files(cache, final, "web", bad_inline)
    missing = [FileEntry(PurePosixPath("a"), digest_of(b"nowhere"), None)]
    with pytest.raises(PullError, match="is in no layer"):
        materialize_files(cache, final, "web", missing)
    clash = [FileEntry(PurePosixPath("a"), None, b"1"), FileEntry(PurePosixPath("a/b"), None, b"2")]
    with pytest.raises(PullError, match="'a/b' collides"):
        materialize_files(cache, final, "web", clash)
    assert not final.exists() and _leftovers(tmp_path) == []


def test_component_dir_name() -> None:
    assert component_dir_name("static-files") == "static-files"
    assert component_dir_name("..").startswith("id-")
    assert component_dir_name("a/../../b").startswith("id-")


def test_unpack_archive_ignores_names_and_links(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        for name, data in [("./a.txt", b"A" * 300), ("../../escape.txt", b"evil")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    layer = raw.getvalue()
    cache.store_bytes(digest_of(layer), layer, what="t")
    assert unpack_archive(cache, digest_of(layer), "t") == 2
    assert cache.has_blob(digest_of(b"A" * 300)) and cache.has_blob(digest_of(b"evil"))
    assert not (tmp_path.parent / "escape.txt").exists()
    assert not list(tmp_path.rglob("link"))
    junk = b"not a tarball"
    cache.store_bytes("sha256:" + hashlib.sha256(junk).hexdigest(), junk, what="t")
    with pytest.raises(PullError, match=r"not a readable tar\.gz"):
        unpack_archive(cache, digest_of(junk), "layer x")


def test_progress_tracker_throttles_and_survives_a_broken_sink() -> None:
    from tauon.registry.progress import ProgressTracker

    calls: list[tuple[int, int, int, int]] = []
    tracker = ProgressTracker(lambda *a: calls.append(a), interval=60)
    tracker.plan([100, 50, 10], [False, True, False])
    assert calls == [(50, 160, 1, 3)]
    for _ in range(10):
        tracker.add_bytes(10)
    assert len(calls) == 1  # throttled
    tracker.blob_done()
    assert calls[-1] == (150, 160, 2, 3)

    def broken(*_: int) -> None:
        raise RuntimeError("display gone")

    failing = ProgressTracker(broken)
    failing.plan([1], [False])  # logged, not raised
    failing.blob_done()


def test_a_warm_resolve_rewrites_neither_the_manifest_nor_the_tag_index(tmp_path: Path) -> None:
    """A restart resolves every tag to a manifest the cache has: storing it again, or the same index
    entry, would be a temp file, a write and a rename per app for nothing."""
    cache = Cache(tmp_path)
    data = b'{"schemaVersion": 2}'
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = cache.store_bytes(digest, data, what="m")
    os.utime(path, (1000, 1000))
    assert cache.store_bytes(digest, data, what="m") == path
    assert path.stat().st_mtime == 1000
    cache.write_index("r.example", "acme/shop", "v1", digest)
    first = cache.read_index("r.example", "acme/shop", "v1")
    cache.write_index("r.example", "acme/shop", "v1", digest)
    assert cache.read_index("r.example", "acme/shop", "v1") == first
    other = "sha256:" + "0" * 64
    cache.write_index("r.example", "acme/shop", "v1", other)
    entry = cache.read_index("r.example", "acme/shop", "v1")
    assert entry is not None and entry.digest == other
    with pytest.raises(DigestMismatch):  # a stored blob never vouches for other bytes
        cache.store_bytes(digest, b"something else", what="m")
