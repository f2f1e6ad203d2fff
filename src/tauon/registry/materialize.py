"""Turning cached blobs into what a component mounts: archive layers unpacked into the blob store, and
each component's files written into a content-addressed directory, atomically."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from tauon.errors import DigestMismatch, PullError
from tauon.registry.artifact import FileEntry
from tauon.registry.cache import Cache, building_dir, digest_of

CHUNK = 64 * 1024
# Archive members only ever become blobs named by their own hash, never paths, so an archive cannot
# write outside the cache. Only members the locked app lists are kept, and what is unpacked at all is
# bounded relative to the layer: a gzip bomb of a few MB cannot fill the disk.
ARCHIVE_RATIO = 100
"""Unpacked bytes at most this many times the compressed layer (real file trees compress far less)."""
ARCHIVE_FLOOR = 64 * 1024**2
"""...or this much, whichever is larger: a small layer of very compressible files still unpacks."""
MAX_ARCHIVE_BYTES = 4 * 1024**3
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


def unpack_archive(cache: Cache, digest: str, what: str, wanted: set[str] | None = None) -> int:
    """Store the regular files of a cached tar.gz layer as `blobs/sha256/<its hash>` (only those whose
    digest is in `wanted`, when given); returns how many were read.

    Links, devices and directories are ignored: Spin's files come back by digest, not by name.
    """
    layer = cache.blob_path(digest)
    limit = min(MAX_ARCHIVE_BYTES, max(ARCHIVE_FLOOR, ARCHIVE_RATIO * layer.stat().st_size))
    keep = None if wanted is None else wanted.__contains__
    total = 0
    stored = 0
    try:
        with tarfile.open(layer, mode="r:gz") as archive:
            for member in archive:
                if not member.isreg():
                    continue
                total += member.size
                if total > limit:
                    raise PullError(f"{what}: archive layer {digest} unpacks to more than {limit} bytes "
                                    f"({ARCHIVE_RATIO} times its size, at least {ARCHIVE_FLOOR // 1024**2} "
                                    "MiB); refusing it as a decompression bomb")
                handle = archive.extractfile(member)
                if handle is None:
                    continue
                with handle:
                    cache.store_computed(_read_chunks(handle), what=what, keep=keep)
                stored += 1
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise PullError(f"{what}: archive layer {digest} is not a readable tar.gz ({exc})") from exc
    return stored


def _read_chunks(handle: IO[bytes]) -> Iterator[bytes]:
    while chunk := handle.read(CHUNK):
        yield chunk


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link to the verified blob (no second copy in the cache), else a copy (another file
    system). Both are read-only content: the guest sees its files mounted read-only."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def component_dir_name(component_id: str) -> str:
    """The id itself when it is a safe file name (kebab ids always are), else a hash of it."""
    if _SAFE_NAME.match(component_id) and component_id not in (".", ".."):
        return component_id
    return "id-" + hashlib.sha256(component_id.encode()).hexdigest()[:32]


def materialize_files(cache: Cache, final: Path, component_id: str, entries: list[FileEntry]) -> Path:
    """Write `entries` under `final` (built in a temp dir, renamed into place); reuse it if present."""
    if final.is_dir():
        return final
    where = f"component '{component_id}'"
    with building_dir(final) as tmp:
        for entry in entries:
            target = tmp.joinpath(*entry.path.parts)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                if entry.inline is not None:
                    if entry.digest is not None and digest_of(entry.inline, entry.digest.split(":")[0]) \
                            != entry.digest:
                        raise DigestMismatch(f"{where} file '{entry.path}': inline content does not hash "
                                             f"to {entry.digest}")
                    target.write_bytes(entry.inline)
                else:
                    assert entry.digest is not None  # component_files guarantees one of the two
                    source = cache.blob_path(entry.digest)
                    if not source.is_file():
                        raise PullError(f"{where} file '{entry.path}': blob {entry.digest} is in no layer "
                                        "of the image", hint="the artifact is incomplete; re-push it")
                    _link_or_copy(source, target)
                target.chmod(0o644)
            except (NotADirectoryError, IsADirectoryError, FileExistsError) as exc:
                raise PullError(f"{where} file '{entry.path}' collides with another file entry "
                                f"({exc.strerror})") from exc
        for directory in (p for p in tmp.rglob("*") if p.is_dir()):
            directory.chmod(0o755)
    return final
