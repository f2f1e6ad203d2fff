"""`pull_app`: reference -> verified, cached, materialized Spin locked app (what the supervisor runs)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tauon.errors import DigestMismatch, PullError
from tauon.registry.artifact import (
    ARCHIVE_LAYER,
    Descriptor,
    Manifest,
    choose_from_index,
    component_files,
    components,
    is_index,
    is_spin_lock,
    lock_descriptor,
    parse_json_object,
    parse_manifest,
    rewrite_lock,
    synthesize_lock,
    wasm_refs,
)
from tauon.registry.auth import find_credentials
from tauon.registry.budget import PullBudget
from tauon.registry.cache import Cache, digest_of
from tauon.registry.client import RegistryClient, RegistryUnreachable
from tauon.registry.gc import CacheLimits, usage
from tauon.registry.layout import LayoutSource
from tauon.registry.materialize import component_dir_name, materialize_files, unpack_archive
from tauon.registry.progress import ProgressSink, ProgressTracker
from tauon.registry.reference import DIGEST_HEX_LENGTHS, Reference, find_layout, parse_reference
from tauon.registry.tls import resolve_trust

log = logging.getLogger("tauon.registry")


@dataclass(frozen=True)
class PulledApp:
    reference: str
    """The reference as the operator wrote it."""
    digest: str
    """The manifest digest the reference resolved to (`sha256:...`)."""
    locked: dict[str, Any]
    """The Spin locked app, rewritten to point at cached wasm and materialized file trees."""
    offline: bool
    """True when the registry was unreachable and the cached tag index and blobs were used."""
    refs: frozenset[str] = frozenset()
    """Every cached blob this app uses (manifests, config, layers, wasm, files): kept by the GC."""
    assets: str | None = None
    """The name of its materialized files directory under the cache's assets/."""


class _Source(Protocol):
    def open_blob(self, digest: str) -> contextlib.AbstractContextManager[Iterator[bytes]]: ...

    def fetch_manifest(self, digest: str, cache: Cache, what: str) -> None: ...


class _Registry:
    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    def open_blob(self, digest: str) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        return self.client.open_blob(digest)

    def fetch_manifest(self, digest: str, cache: Cache, what: str) -> None:
        fetched = self.client.get_manifest(digest)
        cache.store_bytes(digest, fetched.raw, what=what)


class _Layout:
    def __init__(self, layout: LayoutSource) -> None:
        self.layout = layout

    def open_blob(self, digest: str) -> contextlib.AbstractContextManager[Iterator[bytes]]:
        return self.layout.open_blob(digest)

    def fetch_manifest(self, digest: str, cache: Cache, what: str) -> None:
        with self.layout.open_blob(digest) as chunks:
            cache.store_stream(digest, chunks, size=None, what=what)


def pull_app(
    reference: str,
    *,
    base_dir: Path,
    cache_dir: Path,
    insecure: bool = False,
    progress: ProgressSink | None = None,
    timeout: float = 10.0,
    deadline: float = 600.0,
    limits: CacheLimits | None = None,
    make_room: Callable[[int], None] | None = None,
    refresh: bool = True,
    env: Mapping[str, str] | None = None,
    home: Path | None = None,
    ca_bundle: Path | None = None,
) -> PulledApp:
    """Pull a Spin app from a registry or an OCI layout directory into `cache_dir`. Blocking.

    `env`/`home` (default: the process environment and home directory) locate credential files and
    helpers (see `tauon.registry.auth`) and CA bundle variables. `ca_bundle` is a PEM file (or
    directory) of CAs trusted for this registry instead of the default roots; without it,
    REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE / SSL_CERT_FILE / SSL_CERT_DIR from `env` are honoured.
    `insecure` means plain HTTP. Credentials are looked up on the registry's first challenge and kept
    for this pull only. Raises PullError (DigestMismatch for content that does not match its digest).
    """
    cache = Cache(cache_dir)
    tracker = ProgressTracker(progress)
    layout = find_layout(reference, base_dir)
    if layout is not None:
        source = LayoutSource(layout)
        desc = source.select()
        assembled = _assemble(cache, _Layout(source), desc.digest, what=f"'{reference}'",
                              name=source.name, origin=reference, tracker=tracker,
                              room=_Room(cache, limits, make_room))
        return PulledApp(reference, desc.digest, assembled.locked, offline=False, refs=assembled.refs,
                         assets=assembled.assets)
    ref = parse_reference(reference)
    environ = os.environ if env is None else env
    home_dir = Path.home() if home is None else home
    trust = resolve_trust(ca_bundle, environ)
    client = RegistryClient(ref, insecure=insecure, timeout=timeout, trust=trust,
                            credentials=lambda: find_credentials(ref.auth_key, environ, home_dir),
                            budget=PullBudget(deadline, error=RegistryUnreachable))
    try:
        return _pull_registry(reference, ref, cache, client, tracker, refresh=refresh,
                          room=_Room(cache, limits, make_room))
    finally:
        client.close()


def _pull_registry(reference: str, ref: Reference, cache: Cache, client: RegistryClient,
                   tracker: ProgressTracker, *, refresh: bool, room: _Room) -> PulledApp:
    what = f"'{reference}'"
    source: _Source | None = _Registry(client)
    digest: str | None = None
    offline = False
    # A digest names immutable content; a tag is re-resolved unless refresh is off.
    if ref.digest is not None and cache.has_blob(ref.digest):
        digest = ref.digest
    elif ref.digest is None and not refresh:
        entry = cache.read_index(ref.registry, ref.repository, ref.tag_or_latest)
        if entry is not None and cache.has_blob(entry.digest):
            digest = entry.digest
    if digest is None:
        try:
            digest = _resolve(client, cache, ref, what)
        except RegistryUnreachable as exc:
            entry = None if ref.digest else cache.read_index(ref.registry, ref.repository, ref.tag_or_latest)
            if entry is None or not cache.has_blob(entry.digest):
                raise PullError(f"{exc.message}; {reference} is not in the local cache either",
                                hint=exc.hint) from exc
            log.warning("%s; using cached %s for %s", exc.message, entry.digest, reference)
            digest, offline, source = entry.digest, True, None
    started = time.monotonic()
    assembled = _assemble(cache, source, digest, what=what, name=ref.repository.rsplit("/", 1)[-1],
                          origin=reference, tracker=tracker, room=room)
    if ref.digest is None and not offline:
        cache.write_index(ref.registry, ref.repository, ref.tag_or_latest, digest)
    log.info("pulled %s (%s): %d bytes downloaded in %.2fs", reference, digest, assembled.fetched,
             time.monotonic() - started)
    return PulledApp(reference, digest, assembled.locked, offline=offline, refs=assembled.refs,
                     assets=assembled.assets)


def _resolve(client: RegistryClient, cache: Cache, ref: Reference, what: str) -> str:
    """GET the manifest by tag (or digest), verify it, store it as a blob, return its digest."""
    fetched = client.get_manifest(ref.digest or ref.tag_or_latest)
    header = fetched.header_digest
    if header is not None and header.split(":", 1)[0] in DIGEST_HEX_LENGTHS:
        actual = digest_of(fetched.raw, header.split(":", 1)[0])
        if actual != header:
            raise DigestMismatch(f"{what}: manifest hashed to {actual} but the registry says {header}",
                                 hint="the registry content is corrupt or was tampered with")
    if ref.digest is not None:
        actual = digest_of(fetched.raw, ref.digest.split(":", 1)[0])
        if actual != ref.digest:
            raise DigestMismatch(f"{what}: manifest hashed to {actual}, not the pinned {ref.digest}",
                                 hint="the registry served other content than the reference pins")
        digest = ref.digest
    else:
        digest = header if header is not None and header.split(":", 1)[0] in DIGEST_HEX_LENGTHS \
            else digest_of(fetched.raw)
    cache.store_bytes(digest, fetched.raw, what=what)
    return digest


def _load_manifest(cache: Cache, source: _Source | None, digest: str, what: str) -> tuple[Manifest, str]:
    """The image manifest `digest` names, following one image-index level."""
    for _ in range(2):
        if not cache.has_blob(digest):
            if source is None:
                raise PullError(f"{what}: manifest {digest} is not cached and the registry is unreachable")
            source.fetch_manifest(digest, cache, what)
        doc = parse_json_object(cache.read_blob(digest), f"{what} manifest {digest}")
        if not is_index(doc, None):
            return parse_manifest(doc, f"{what} manifest"), digest
        digest = choose_from_index(doc, f"{what} index").digest
    raise PullError(f"{what}: image index nested more than one level")


def _download(cache: Cache, source: _Source, desc: Descriptor, what: str, tracker: ProgressTracker) -> int:
    for attempt in range(1, 4):
        received = 0

        def count(n: int) -> None:
            nonlocal received
            received += n
            tracker.add_bytes(n)

        try:
            with source.open_blob(desc.digest) as chunks:
                cache.store_stream(desc.digest, chunks, size=desc.size, what=what, on_bytes=count)
            return received
        except RegistryUnreachable:
            tracker.add_bytes(-received)
            # Connect failures were already retried by the client; retry only a stream cut short.
            if received == 0 or attempt == 3:
                raise
            time.sleep(0.25 * attempt)
    raise AssertionError("unreachable")


class _Room:
    """The cache's bounds for one pull: no blob over max_blob, the cache not over max_bytes (garbage is
    collected first, through `make_room`)."""

    def __init__(self, cache: Cache, limits: CacheLimits | None, make_room: Callable[[int], None] | None):
        self.cache = cache
        self.limits = limits
        self.make_room = make_room

    def check(self, missing: list[Descriptor], what: str) -> None:
        limits = self.limits
        if limits is None or not missing:
            return
        for desc in missing:
            if desc.size > limits.max_blob:
                raise PullError(f"{what}: blob {desc.digest} declares {desc.size} bytes, more than the "
                                f"largest blob tauon accepts ({limits.max_blob // 1024**2} MiB)",
                                hint="raise --max-blob-mib if the image really holds such a file")
        needed = sum(d.size for d in missing)
        if usage(self.cache.root) + needed <= limits.max_bytes:
            return
        if self.make_room is not None:
            self.make_room(needed)
        used = usage(self.cache.root)
        if used + needed > limits.max_bytes:
            raise PullError(f"{what}: the cache would grow to {(used + needed) / 1024**3:.2f} GiB, over its "
                            f"bound of {limits.max_bytes / 1024**3:.2f} GiB, even after removing what no "
                            "app uses", hint="free space by removing apps, or raise --cache-max-gib")


@dataclass(frozen=True)
class _Assembled:
    locked: dict[str, Any]
    fetched: int
    refs: frozenset[str]
    assets: str | None


def _assemble(cache: Cache, source: _Source | None, digest: str, *, what: str, name: str, origin: str,
              tracker: ProgressTracker, room: _Room) -> _Assembled:
    """Fetch every blob of the image, find or synthesize the lock, materialize files, rewrite."""
    manifest, image_digest = _load_manifest(cache, source, digest, what)
    blobs = manifest.blobs
    cached = [cache.has_blob(d.digest) for d in blobs]
    missing = [d.digest for d, have in zip(blobs, cached, strict=True) if not have]
    if source is None and missing:
        raise PullError(f"{what}: the registry is unreachable and {len(missing)} blob(s) are not cached "
                        f"(first: {missing[0]})", hint="start the registry or check the network")
    room.check([d for d, have in zip(blobs, cached, strict=True) if not have], what)
    tracker.plan([d.size for d in blobs], cached)
    fetched = 0
    for desc, have in zip(blobs, cached, strict=True):
        if not have:
            assert source is not None
            fetched += _download(cache, source, desc, what, tracker)
            tracker.blob_done()

    lock_desc = lock_descriptor(manifest)
    lock = parse_json_object(cache.read_blob(lock_desc.digest), f"{what} locked app {lock_desc.digest}")
    if not is_spin_lock(lock):
        lock = synthesize_lock(manifest, name, what)
    comps = components(lock, what)
    entries = {comp["id"]: component_files(comp) for comp in comps}
    needed = {e.digest for files in entries.values() for e in files if e.inline is None and e.digest}
    if any(not cache.has_blob(d) for d in needed):
        for layer in manifest.layers:
            if layer.media_type == ARCHIVE_LAYER:
                unpack_archive(cache, layer.digest, what, wanted=needed)
    for where, wasm_digest, inline in wasm_refs(lock, what):
        if not cache.has_blob(wasm_digest):
            if inline is None:
                raise PullError(f"{what}: {where} wasm {wasm_digest} is in no layer of the image",
                                hint="the artifact is incomplete; re-push it")
            cache.store_bytes(wasm_digest, inline, what=f"{what} {where}")

    assets = cache.assets_dir(image_digest)
    for comp in comps:
        if entries[comp["id"]]:
            materialize_files(cache, assets / component_dir_name(comp["id"]), comp["id"], entries[comp["id"]])
    locked = rewrite_lock(lock, origin=origin, wasm_path=cache.blob_path,
                          files_dir=lambda c: assets / component_dir_name(c["id"]), what=what)
    refs = frozenset({digest, image_digest, *(d.digest for d in blobs), *needed,
                      *(wasm for _, wasm, _ in wasm_refs(lock, what))})
    cache.touch(refs, assets)  # fresh: the GC's grace keeps them until this generation is serving
    return _Assembled(locked, fetched, refs, assets.name if any(entries.values()) else None)
