"""Pure interpretation of a pulled artifact: manifest shape, which blob is the lock, wasm-package
synthesis, file entries (with path checks) and the rewrite of the lock into a runnable one.

No I/O here: the caller supplies where blobs and materialized trees live.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import oras.schemas

from tauon import boundedjson
from tauon.errors import PullError
from tauon.registry.reference import check_digest

SPIN_CONFIG = "application/vnd.fermyon.spin.application.v1+config"
WASM_LAYER = "application/vnd.wasm.content.layer.v1+wasm"
WASM_PLAIN = "application/wasm"
DATA_LAYER = "application/vnd.wasm.content.layer.v1+data"
ARCHIVE_LAYER = "application/vnd.wasm.content.bundle.v1.tar+gzip"
WASM_TYPES = frozenset({WASM_LAYER, WASM_PLAIN})
INDEX_TYPES = frozenset({"application/vnd.oci.image.index.v1+json",
                         "application/vnd.docker.distribution.manifest.list.v2+json"})
ORIGIN_SCHEME = "vnd.fermyon.origin-oci"


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int


@dataclass(frozen=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def blobs(self) -> list[Descriptor]:
        """Config and layers, each digest once, in manifest order."""
        seen: dict[str, Descriptor] = {}
        for desc in (self.config, *self.layers):
            seen.setdefault(desc.digest, desc)
        return list(seen.values())


@dataclass(frozen=True)
class FileEntry:
    path: PurePosixPath
    digest: str | None
    inline: bytes | None


def parse_json_object(raw: bytes, what: str) -> dict[str, Any]:
    try:
        doc = boundedjson.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PullError(f"{what} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise PullError(f"{what} is not a JSON object")
    return doc


def descriptor(value: object, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise PullError(f"{what} is not a descriptor object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise PullError(f"{what} lacks a valid digest or size")
    return Descriptor(str(media_type or ""), check_digest(digest, what=what), size)


def is_index(doc: dict[str, Any], media_type: str | None) -> bool:
    return doc.get("mediaType") in INDEX_TYPES or media_type in INDEX_TYPES or (
        "manifests" in doc and "layers" not in doc)


def choose_from_index(doc: dict[str, Any], what: str) -> Descriptor:
    """The image to use from an index: the only one, else the one for the wasm architecture."""
    entries = doc.get("manifests")
    if not isinstance(entries, list) or not entries:
        raise PullError(f"{what} is an image index without manifests")
    descs = [(descriptor(e, f"{what} manifests[{i}]"), e) for i, e in enumerate(entries)]
    if len(descs) == 1:
        return descs[0][0]
    for desc, entry in descs:
        platform = entry.get("platform") if isinstance(entry, dict) else None
        if isinstance(platform, dict) and platform.get("architecture") == "wasm":
            return desc
    raise PullError(f"{what} is an index of {len(descs)} images and none is for architecture 'wasm'",
                    hint="reference the wanted image by its digest")


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,), "array": (list,), "string": (str,), "number": (int, float), "null": (type(None),),
}


def schema_problem(value: Any, schema: dict[str, Any], path: str = "") -> str | None:
    """The first violation of a JSON schema's type/required/properties/items rules, or None.

    Covers the subset oras-py's manifest schema uses, without importing jsonschema (60 ms of start-up,
    paid before the first request of a restart).
    """
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        ok = any(isinstance(value, _JSON_TYPES.get(t, ())) and not (t == "number" and isinstance(value, bool))
                 for t in allowed)
        if not ok:
            return f"at {path or '(top level)'}: expected {' or '.join(allowed)}, got {type(value).__name__}"
    if isinstance(value, dict):
        for key in schema.get("required", ()):
            if key not in value:
                return f"at {path or '(top level)'}: '{key}' is missing"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                problem = schema_problem(value[key], sub, f"{path}/{key}" if path else key)
                if problem is not None:
                    return problem
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problem = schema_problem(item, schema["items"], f"{path}/{i}" if path else str(i))
            if problem is not None:
                return problem
    return None


def parse_manifest(doc: dict[str, Any], what: str) -> Manifest:
    # oras-py's OCI manifest schema catches malformed manifests with the exact path of the problem.
    problem = schema_problem(doc, oras.schemas.manifest)
    if problem is not None:
        raise PullError(f"{what} is not a valid OCI image manifest: {problem}",
                        hint="the image is damaged or not an OCI image; push it again")
    if doc.get("schemaVersion") != 2:
        raise PullError(f"{what}: unsupported schemaVersion {doc.get('schemaVersion')!r} (expected 2)")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise PullError(f"{what} has no 'layers' list")
    return Manifest(
        config=descriptor(doc.get("config"), f"{what} config"),
        layers=tuple(descriptor(layer, f"{what} layers[{i}]") for i, layer in enumerate(layers)),
    )


def lock_descriptor(manifest: Manifest) -> Descriptor:
    """Where Spin finds the lock: the last spin-config layer (Spin >= 2), else the config (Spin 1.x)."""
    for layer in reversed(manifest.layers):
        if layer.media_type == SPIN_CONFIG:
            return layer
    return manifest.config


def is_spin_lock(doc: dict[str, Any]) -> bool:
    return "spin_lock_version" in doc


def kebab(name: str) -> str:
    text = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return text or "component"


def synthesize_lock(manifest: Manifest, name: str, what: str) -> dict[str, Any]:
    """A one-component HTTP app for a bare wasm package (Spin's `spin up --from x.wasm`)."""
    if len(manifest.layers) != 1:
        raise PullError(
            f"{what} is neither a Spin app (its config has no spin_lock_version) nor a wasm package "
            f"(which has exactly one layer; this has {len(manifest.layers)})",
            hint="push the app with `spin registry push`",
        )
    layer = manifest.layers[0]
    component = kebab(name)
    return {
        "spin_lock_version": 0,
        "metadata": {"name": name, "trigger": {"type": "http"}, "triggers": {}},
        "triggers": [{"id": f"{component}-http-trigger", "trigger_type": "http",
                      "trigger_config": {"component": component, "route": "/..."}}],
        "components": [{"id": component,
                        "source": {"content_type": "application/wasm", "digest": layer.digest}}],
    }


def decode_inline(text: str, where: str) -> bytes:
    """Spin writes standard base64 without padding; accept padding, whitespace and the URL alphabet."""
    compact = "".join(text.split()).rstrip("=")
    padded = compact + "=" * (-len(compact) % 4)
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(padded)
        return base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise PullError(f"{where}: 'inline' is not valid base64 ({exc})") from exc


def check_file_path(path: object, where: str) -> PurePosixPath:
    """A file path from the lock must stay inside its mount: relative, only normal components."""
    if not isinstance(path, str) or not path:
        raise PullError(f"{where}: file path {path!r} is missing or empty")
    if path.startswith("/") or "\0" in path:
        raise PullError(f"{where}: file path '{path}' must be relative with no NUL bytes",
                        hint="the artifact is malformed or malicious; refusing to write outside the mount")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise PullError(f"{where}: file path '{path}' has an empty, '.' or '..' component",
                        hint="the artifact is malformed or malicious; refusing to write outside the mount")
    return PurePosixPath(path)


def components(lock: dict[str, Any], what: str) -> list[dict[str, Any]]:
    comps = lock.get("components")
    if not isinstance(comps, list) or not all(isinstance(c, dict) for c in comps):
        raise PullError(f"{what}: 'components' is not a list of objects")
    for i, comp in enumerate(comps):
        if not isinstance(comp.get("id"), str) or not comp["id"]:
            raise PullError(f"{what}: components[{i}] has no 'id'")
    return comps


def component_files(component: dict[str, Any]) -> list[FileEntry]:
    files = component.get("files") or []
    where = f"component '{component['id']}'"
    if not isinstance(files, list):
        raise PullError(f"{where}: 'files' is not a list")
    entries: list[FileEntry] = []
    for entry in files:
        if not isinstance(entry, dict):
            raise PullError(f"{where}: a 'files' entry is not an object")
        path = check_file_path(entry.get("path"), where)
        here = f"{where} file '{path}'"
        digest = entry.get("digest")
        if digest is not None:
            digest = check_digest(str(digest), what=here)
        inline = entry.get("inline")
        data = decode_inline(inline, here) if isinstance(inline, str) else None
        if digest is None and data is None:
            raise PullError(f"{here} has neither 'inline' content nor a 'digest'")
        entries.append(FileEntry(path, digest, data))
    return entries


def _sources(comp: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, source object) for the component and every dependency that names a digest."""
    where = f"component '{comp['id']}'"
    found: list[tuple[str, dict[str, Any]]] = []
    source = comp.get("source")
    if not isinstance(source, dict) or not isinstance(source.get("digest"), str):
        raise PullError(f"{where}: 'source' has no digest", hint="the lock was not pushed by spin")
    found.append((f"{where} source", source))
    deps = comp.get("dependencies")
    for name, dep in (deps.items() if isinstance(deps, dict) else []):
        if isinstance(dep, dict) and isinstance(dep.get("source"), dict) and "digest" in dep["source"]:
            found.append((f"{where} dependency '{name}'", dep["source"]))
    trigger_deps = comp.get("trigger_dependencies")
    for role, items in (trigger_deps.items() if isinstance(trigger_deps, dict) else []):
        for i, dep in enumerate(items if isinstance(items, list) else []):
            if isinstance(dep, dict) and isinstance(dep.get("source"), dict) and "digest" in dep["source"]:
                found.append((f"{where} {role}[{i}]", dep["source"]))
    return found


def wasm_refs(lock: dict[str, Any], what: str) -> list[tuple[str, str, bytes | None]]:
    """(where, digest, inline bytes or None) for every wasm source the lock needs."""
    refs = []
    for comp in components(lock, what):
        for where, source in _sources(comp):
            digest = check_digest(str(source["digest"]), what=where)
            inline = source.get("inline")
            refs.append((where, digest, decode_inline(inline, where) if isinstance(inline, str) else None))
    return refs


def rewrite_lock(
    lock: dict[str, Any],
    *,
    origin: str,
    wasm_path: Callable[[str], Path],
    files_dir: Callable[[dict[str, Any]], Path],
    what: str,
) -> dict[str, Any]:
    """Spin's `resolve_component_content_refs`: sources become `file://` URIs of cached blobs (the
    digest is kept), each component's files become one directory mounted at `/`, and
    `metadata.origin` records where the app came from."""
    out = copy.deepcopy(lock)
    metadata = out.get("metadata")
    if not isinstance(metadata, dict):
        metadata = out["metadata"] = {}
    metadata["origin"] = f"{ORIGIN_SCHEME}:{origin}"
    for comp in components(out, what):
        for _where, source in _sources(comp):
            digest = source["digest"]
            content_type = source.get("content_type") or "application/wasm"
            source.clear()
            source.update({"content_type": content_type, "source": wasm_path(digest).as_uri(),
                           "digest": digest})
        if comp.get("files"):
            comp["files"] = [{"source": files_dir(comp).as_uri(), "path": "/"}]
        else:
            comp.pop("files", None)
    return out
