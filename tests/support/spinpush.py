"""Lay out and publish Spin apps exactly as `spin registry push` does (spin-spec §1.2, §1.9).

Simple mode: one wasm layer per component, one `+data` layer per file larger than 128 bytes (smaller
files are inline-only), deduplicated, then the compact locked app as the last layer, and an OCI image
config carrying the `lockedAppDigest` label. Archive mode: one tar.gz layer per component's files.
`legacy_v1=True`: Spin 1.x, the lock is the config blob. `build_wasm_package`: a wkg-style component.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import oras.provider

SPIN_CONFIG = "application/vnd.fermyon.spin.application.v1+config"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
WASM_LAYER = "application/vnd.wasm.content.layer.v1+wasm"
DATA_LAYER = "application/vnd.wasm.content.layer.v1+data"
ARCHIVE_LAYER = "application/vnd.wasm.content.bundle.v1.tar+gzip"
WKG_CONFIG = "application/vnd.wasm.config.v0+json"
INLINE_MAX = 128


@dataclass
class SpinDependency:
    """A component dependency as `spin registry push --compose=false` keeps it (§1.2 step 3, §1.3)."""

    wasm: bytes
    export: str | None = None
    inherit: str | dict[str, list[str]] | None = None  # "All", {"Some": [...]}, None = nothing


@dataclass
class SpinComponent:
    id: str
    wasm: bytes
    files: dict[str, bytes] = field(default_factory=dict)  # relative path -> content, walk order kept
    env: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    config: dict[str, str] = field(default_factory=dict)
    dependencies: dict[str, SpinDependency] = field(default_factory=dict)


@dataclass
class SpinAppSpec:
    name: str
    components: list[SpinComponent]
    triggers: list[dict[str, Any]]  # HTTP trigger_config contents: {"route": ..., "component": ...}
    # (other trigger types: their config plus "_type", e.g. {"_type": "redis", "channel": "x", ...})
    version: str | None = None
    variables: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    authors: list[str] = field(default_factory=list)
    trigger_metadata: dict[str, dict[str, Any]] = field(default_factory=dict)
    """[application.trigger.<type>] tables, e.g. {"redis": {"address": "redis://..."}}."""


@dataclass
class Artifact:
    manifest: bytes
    blobs: dict[str, bytes]  # digest -> content (config and layers)
    lock: dict[str, Any] | None = None  # the lock as pushed (None for wasm packages)

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def manifest_json(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.manifest)
        return result


def tiny_wasm(marker: str) -> bytes:
    """A small valid wasm module, distinct per marker (the name of an exported global)."""
    import wasmtime  # only here: the rest of this module needs no wasm engine

    return bytes(wasmtime.wat2wasm(f'(module (global (export "{marker}") i32 (i32.const 1)))'))


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compact(value: Any) -> bytes:
    """serde_json::to_vec: no whitespace, UTF-8 unescaped."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def b64_nopad(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _content_ref(data: bytes) -> dict[str, Any]:
    """ContentRef field order: source, inline, digest."""
    ref: dict[str, Any] = {}
    if len(data) <= INLINE_MAX:
        ref["inline"] = b64_nopad(data)
    ref["digest"] = sha256(data)
    return ref


def _tar_gz(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        dirs = sorted({str(Path(p).parent) for p in files} - {"."})
        for d in ["."] + [f"./{d}" for d in dirs]:
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for path, data in files.items():
            info = tarfile.TarInfo(f"./{path}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def build_lock(app: SpinAppSpec) -> dict[str, Any]:
    """The locked app as it sits in the registry (§1.3): sources are digests, no origin."""
    types = list(dict.fromkeys(t.get("_type", "http") for t in app.triggers)) or ["http"]
    metadata: dict[str, Any] = {"name": app.name, "triggers": dict(app.trigger_metadata)}
    if len(types) == 1:  # Spin's loader adds the legacy single-type form
        metadata["trigger"] = {"type": types[0], **app.trigger_metadata.get(types[0], {})}
    if app.version:
        metadata["version"] = app.version
    if app.description:
        metadata["description"] = app.description
    if app.authors:
        metadata["authors"] = app.authors
    lock: dict[str, Any] = {"spin_lock_version": 0, "metadata": dict(sorted(metadata.items()))}
    if app.variables:
        lock["variables"] = dict(sorted(app.variables.items()))
    triggers, used = [], set()
    for i, trig in enumerate(app.triggers):
        kind = trig.get("_type", "http")
        config = {k: v for k, v in trig.items() if k != "_type"}
        # §2.7.1: "<component>-<type>-trigger", or "<type>-trigger<N>" when taken or there is no component.
        trigger_id = f"{config['component']}-{kind}-trigger" if "component" in config else ""
        if not trigger_id or trigger_id in used:
            trigger_id = f"{kind}-trigger{i + 1}"
        used.add(trigger_id)
        triggers.append({"id": trigger_id, "trigger_type": kind,
                         "trigger_config": dict(sorted(config.items()))})
    lock["triggers"] = triggers
    comps = []
    for comp in app.components:
        entry: dict[str, Any] = {"id": comp.id}
        if comp.metadata:
            entry["metadata"] = dict(sorted(comp.metadata.items()))
        entry["source"] = {"content_type": "application/wasm", **_content_ref(comp.wasm)}
        if comp.env:
            entry["env"] = dict(sorted(comp.env.items()))
        if comp.files:
            entry["files"] = [{**_content_ref(data), "path": path} for path, data in comp.files.items()]
        if comp.config:
            entry["config"] = dict(sorted(comp.config.items()))
        if comp.dependencies:
            entry["dependencies"] = {name: _dependency(dep) for name, dep in comp.dependencies.items()}
        comps.append(entry)
    lock["components"] = comps
    return lock


def _dependency(dep: SpinDependency) -> dict[str, Any]:
    """LockedComponentDependency: source, export (always, null if unset), inherit (omitted = none)."""
    entry: dict[str, Any] = {"source": {"content_type": "application/wasm", **_content_ref(dep.wasm)},
                             "export": dep.export}
    if dep.inherit is not None:
        entry["inherit"] = dep.inherit
    return entry


def _descriptor(media_type: str, data: bytes) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}


def _manifest(config: dict[str, Any], layers: list[dict[str, Any]], annotations: dict[str, str]) -> bytes:
    return compact({"schemaVersion": 2, "config": config, "layers": layers,
                    "annotations": dict(sorted(annotations.items()))})


def build_artifact(app: SpinAppSpec, *, mode: Literal["simple", "archive"] = "simple",
                   legacy_v1: bool = False, created: str | None = None) -> Artifact:
    lock = build_lock(app)
    layers: list[tuple[str, bytes]] = []
    for comp in app.components:
        layers.append((WASM_LAYER, comp.wasm))
        layers += [(WASM_LAYER, dep.wasm) for dep in comp.dependencies.values()]
        if mode == "archive" and comp.files:
            layers.append((ARCHIVE_LAYER, _tar_gz(comp.files)))
        elif mode == "simple":
            layers += [(DATA_LAYER, data) for data in comp.files.values() if len(data) > INLINE_MAX]
    unique: dict[str, tuple[str, bytes]] = {}
    for media_type, data in layers:
        unique.setdefault(sha256(data), (media_type, data))
    blobs = {digest: data for digest, (_, data) in unique.items()}
    descs = [_descriptor(media_type, data) for media_type, data in unique.values()]
    lock_bytes = compact(lock)
    annotations = {"org.opencontainers.image.title": app.name,
                   "org.opencontainers.image.created": created or datetime.now(UTC).isoformat()}
    if app.version:
        annotations["org.opencontainers.image.version"] = app.version
    if app.description:
        annotations["org.opencontainers.image.description"] = app.description
    if app.authors:
        annotations["org.opencontainers.image.authors"] = ", ".join(app.authors)
    if legacy_v1:
        blobs[sha256(lock_bytes)] = lock_bytes
        return Artifact(_manifest(_descriptor(SPIN_CONFIG, lock_bytes), descs, annotations), blobs, lock)
    config = compact({"architecture": "wasm", "os": "Wasip1",
                      "config": {"Labels": {"com.fermyon.spin.lockedAppDigest": sha256(lock_bytes)}},
                      "rootfs": {"type": "layers", "diff_ids": []}})
    blobs[sha256(lock_bytes)] = lock_bytes
    blobs[sha256(config)] = config
    descs.append(_descriptor(SPIN_CONFIG, lock_bytes))
    return Artifact(_manifest(_descriptor(OCI_CONFIG, config), descs, annotations), blobs, lock)


def build_wasm_package(wasm: bytes, *, layer_type: str = "application/wasm") -> Artifact:
    """A component published by `wkg`: a wasm config and a single wasm layer."""
    config = compact({"architecture": "wasm", "os": "wasip2", "layerDigests": [sha256(wasm)]})
    manifest = compact({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                        "config": _descriptor(WKG_CONFIG, config),
                        "layers": [_descriptor(layer_type, wasm)]})
    return Artifact(manifest, {sha256(config): config, sha256(wasm): wasm})


def push(artifact: Artifact, registry: str, repo: str, tag: str, *, insecure: bool = True,
         auth: tuple[str, str] | None = None, verify: str | bool = True) -> str:
    """Publish with oras-py, as an OCI client would: blobs (skipped when present), then the manifest's
    exact bytes (so its digest is the artifact's). `verify` may name a CA bundle. Returns the digest."""
    client = oras.provider.Registry(hostname=registry, insecure=insecure, tls_verify=verify,
                                    auth_backend="basic" if auth else "token")
    if auth is not None:
        client.auth.set_basic_auth(*auth)
    container = client.get_container(f"{registry}/{repo}:{tag}")
    media_types = {d["digest"]: d["mediaType"] for d in [artifact.manifest_json["config"],
                                                          *artifact.manifest_json["layers"]]}
    with tempfile.TemporaryDirectory(prefix="spinpush-") as tmp:
        for digest, data in artifact.blobs.items():
            blob = Path(tmp) / digest.replace(":", "-")
            blob.write_bytes(data)
            layer = {"digest": digest, "size": len(data), "mediaType": media_types.get(digest, "")}
            response = client.upload_blob(str(blob), container, layer)
            if response.status_code not in (200, 201, 202):
                raise RuntimeError(f"pushing blob {digest} to {registry}/{repo} failed: "
                                   f"{response.status_code} {response.text[:200]}")
    # oras-py's upload_manifest re-serializes the JSON; PUT the exact bytes through its client instead.
    response = client.do_request(f"{client.prefix}://{container.manifest_url()}", "PUT",
                                 headers={"Content-Type": OCI_MANIFEST}, data=artifact.manifest)
    if response.status_code not in (200, 201):
        raise RuntimeError(f"pushing the manifest of {registry}/{repo}:{tag} failed: "
                           f"{response.status_code} {response.text[:200]}")
    return response.headers.get("Docker-Content-Digest") or artifact.digest


def write_oci_layout(artifact: Artifact, directory: Path, tag: str | None = None) -> None:
    """Write (or add to) an OCI image-layout directory; `tag` becomes the ref.name annotation."""
    blob_dir = directory / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    for digest, data in {**artifact.blobs, artifact.digest: artifact.manifest}.items():
        (blob_dir / digest.split(":", 1)[1]).write_bytes(data)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index_path = directory / "index.json"
    index: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
    if index_path.exists():
        index = json.loads(index_path.read_text())
    entry: dict[str, Any] = {"mediaType": OCI_MANIFEST, "digest": artifact.digest,
                             "size": len(artifact.manifest)}
    if tag is not None:
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
    index["manifests"] = [m for m in index["manifests"]
                          if tag is None or m.get("annotations", {}).get(
                              "org.opencontainers.image.ref.name") != tag] + [entry]
    index_path.write_text(json.dumps(index, indent=2))
