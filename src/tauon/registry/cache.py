"""The content-addressed pull cache.

    <cache>/blobs/<alg>/<hex>                     verified blobs (manifests, configs, layers, archive members)
    <cache>/index/<registry>/<repo>/<tag>.json    last digest a tag resolved to (offline fallback)
    <cache>/assets/<manifest hex>/<component>/    materialized file trees

Everything is written to a temporary name in the same directory and renamed into place only once
complete and verified, so readers (and concurrent pulls) never see partial content.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tauon.errors import DigestMismatch, PullError
from tauon.fsutil import atomic_write
from tauon.registry.reference import check_digest


def hasher_for(digest: str) -> hashlib._Hash:
    return hashlib.new(digest.split(":", 1)[0])


def digest_of(data: bytes, alg: str = "sha256") -> str:
    return f"{alg}:{hashlib.new(alg, data).hexdigest()}"


@dataclass(frozen=True)
class IndexEntry:
    digest: str
    resolved_at: float


class Cache:
    def __init__(self, root: Path) -> None:
        self.root = root

    # -- blobs -----------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        check_digest(digest, what="blob")
        alg, hexpart = digest.split(":", 1)
        return self.root / "blobs" / alg / hexpart

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def store_stream(
        self,
        digest: str,
        chunks: Iterable[bytes],
        *,
        size: int | None,
        what: str,
        on_bytes: Callable[[int], None] | None = None,
    ) -> Path:
        """Write `chunks` to the blob store, verifying size and digest before it becomes visible.

        Raises DigestMismatch (naming `what`) when the content is not what `digest` promises; the
        temporary file is removed, so nothing unverified stays in the cache.
        """
        final = self.blob_path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        hasher = hasher_for(digest)
        received = 0
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=final.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    received += len(chunk)
                    if size is not None and received > size:
                        raise DigestMismatch(
                            f"{what}: blob {digest} is larger than the {size} bytes its descriptor says",
                            hint="the registry content is corrupt or was tampered with; nothing was cached",
                        )
                    hasher.update(chunk)
                    out.write(chunk)
                    if on_bytes is not None:
                        on_bytes(len(chunk))
            actual = f"{digest.split(':', 1)[0]}:{hasher.hexdigest()}"
            if actual != digest:
                raise DigestMismatch(
                    f"{what}: blob {digest} hashed to {actual}",
                    hint="the registry content is corrupt or was tampered with; nothing was cached",
                )
            if size is not None and received != size:
                raise DigestMismatch(f"{what}: blob {digest} is {received} bytes, descriptor says {size}")
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return final

    def store_bytes(self, digest: str, data: bytes, *, what: str) -> Path:
        """Like store_stream; content already stored under `digest` is not written again (a warm
        restart resolves every tag to a manifest it has)."""
        final = self.blob_path(digest)
        alg, _, hexpart = digest.partition(":")
        with contextlib.suppress(OSError, ValueError):
            if final.stat().st_size == len(data) and hashlib.new(alg, data).hexdigest() == hexpart:
                return final  # these bytes are the digest's, and the stored blob was checked going in
        return self.store_stream(digest, [data], size=len(data), what=what)

    def store_computed(self, chunks: Iterable[bytes], *, what: str, alg: str = "sha256",
                       keep: Callable[[str], bool] | None = None) -> str:
        """Store content whose digest is not known beforehand (archive members); returns the digest.
        With `keep`, content whose digest it refuses is hashed and dropped, not stored."""
        tmp_dir = self.root / "blobs" / alg
        tmp_dir.mkdir(parents=True, exist_ok=True)
        hasher = hashlib.new(alg)
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    hasher.update(chunk)
                    out.write(chunk)
            digest = f"{alg}:{hasher.hexdigest()}"
            if keep is not None and not keep(digest):
                os.unlink(tmp_name)
                return digest
            os.chmod(tmp_name, 0o644)
            os.replace(tmp_name, self.blob_path(digest))
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        return digest

    def touch(self, digests: Iterable[str], assets: Path | None = None) -> None:
        """Mark content as just used: the garbage collector spares what is younger than its grace."""
        now = time.time()
        paths = [self.blob_path(d) for d in digests]
        if assets is not None:
            paths.append(assets)
        for path in paths:
            with contextlib.suppress(OSError):
                os.utime(path, (now, now))

    # -- tag index -------------------------------------------------------------------------------

    def _index_path(self, registry: str, repository: str, tag: str) -> Path:
        return self.root / "index" / registry / repository / f"{tag}.json"

    def read_index(self, registry: str, repository: str, tag: str) -> IndexEntry | None:
        path = self._index_path(registry, repository, tag)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return IndexEntry(digest=check_digest(str(data["digest"]), what=str(path)),
                              resolved_at=float(data.get("resolved_at", 0.0)))
        except (OSError, ValueError, KeyError, TypeError, PullError):
            return None

    def write_index(self, registry: str, repository: str, tag: str, digest: str) -> None:
        """Record what `tag` resolved to; unchanged, the entry is left as it is (its `resolved_at`
        says when it first resolved so)."""
        entry = self.read_index(registry, repository, tag)
        if entry is not None and entry.digest == digest:
            return
        path = self._index_path(registry, repository, tag)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({"digest": digest, "resolved_at": time.time()}).encode())

    # -- materialized trees ----------------------------------------------------------------------

    def assets_dir(self, manifest_digest: str) -> Path:
        alg, hexpart = check_digest(manifest_digest, what="manifest").split(":", 1)
        name = hexpart if alg == "sha256" else f"{alg}-{hexpart}"
        return self.root / "assets" / name


@contextlib.contextmanager
def building_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temp dir next to `final`; on success rename it to `final` atomically.

    If another pull finished the same tree first, ours is discarded and theirs kept (same content:
    trees are content-addressed). On error the temp dir is removed.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
