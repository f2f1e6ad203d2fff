"""The test publisher lays artifacts out byte for byte like `spin registry push` (spin-spec §1.9, §2.8)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

from support.spinpush import (
    DATA_LAYER,
    OCI_CONFIG,
    SPIN_CONFIG,
    WASM_LAYER,
    SpinAppSpec,
    SpinComponent,
    build_artifact,
    build_lock,
    compact,
    sha256,
)

SPEC_LOCK_DIGEST = "sha256:30d6d0291bfcb8ec15f5c11af887ac11d97dae3070249696a6ba72cbac61c2d1"
SPEC_WASM = {"api": "sha256:0581cc33b8a8a82adbc697892226590f2f91dde8d488e2f53e20d51b050fe9ef",
             "static": "sha256:ef88708817e107bf49985c7cefe4dd1f199bf26f6727819183d5c996baa3d148"}
SPEC_INDEX_DIGEST = "sha256:b3e8896a204b97f5b9e0f1b6e9a3e0854c47cbda197fe95c62afac5a34b579d2"


def spec_app() -> SpinAppSpec:
    return SpinAppSpec(
        name="hello-static", version="0.1.0", description="JSON API plus a static site",
        authors=["Jane Doe <jane@example.com>"],
        variables={"greeting": {"default": "Hello"}, "api_token": {"secret": True}},
        triggers=[{"route": "/api/...", "component": "api"}, {"route": "/...", "component": "static"}],
        components=[
            SpinComponent("api", b"\0asm" + b"a" * 200, env={"LOG_LEVEL": "info"},
                          config={"greeting": "{{ greeting }}", "token": "{{ api_token }}"},
                          metadata={"allowed_outbound_hosts": ["https://api.example.com"],
                                    "build": {"command": "cargo build --target wasm32-wasip2 --release"},
                                    "key_value_stores": ["default"]}),
            SpinComponent("static", b"\0asm" + b"s" * 200, files={
                "index.html": b"i" * 189,
                "css/site.css": b"body { font-family: sans-serif; }\n",
                "robots.txt": b"User-agent: *\nDisallow:\n",
            }),
        ],
    )


def test_lock_matches_spec_example_byte_for_byte() -> None:
    lock = build_lock(spec_app())
    # The spec's wasm and index.html contents are not published; substitute their digests.
    for comp in lock["components"]:
        comp["source"]["digest"] = SPEC_WASM[comp["id"]]
    lock["components"][1]["files"][0]["digest"] = SPEC_INDEX_DIGEST
    body = compact(lock)
    assert (len(body), sha256(body)) == (1483, SPEC_LOCK_DIGEST)


def test_manifest_layout() -> None:
    art = build_artifact(spec_app(), created="2026-08-20T10:15:30+00:00")
    manifest = art.manifest_json
    assert list(manifest) == ["schemaVersion", "config", "layers", "annotations"]
    assert [layer["mediaType"] for layer in manifest["layers"]] == [WASM_LAYER, WASM_LAYER, DATA_LAYER,
                                                                    SPIN_CONFIG]
    assert list(manifest["config"]) == ["mediaType", "digest", "size"]
    assert manifest["config"]["mediaType"] == OCI_CONFIG
    config = json.loads(art.blobs[manifest["config"]["digest"]])
    lock_digest = manifest["layers"][-1]["digest"]
    assert config["config"]["Labels"] == {"com.fermyon.spin.lockedAppDigest": lock_digest}
    assert manifest["annotations"]["org.opencontainers.image.authors"] == "Jane Doe <jane@example.com>"
    assert set(art.blobs) == {d["digest"] for d in [manifest["config"], *manifest["layers"]]}
    assert all(sha256(data) == digest for digest, data in art.blobs.items())


def test_legacy_and_archive_variants() -> None:
    legacy = build_artifact(spec_app(), legacy_v1=True).manifest_json
    assert legacy["config"]["mediaType"] == SPIN_CONFIG
    assert SPIN_CONFIG not in [layer["mediaType"] for layer in legacy["layers"]]
    art = build_artifact(spec_app(), mode="archive")
    archive = next(layer for layer in art.manifest_json["layers"] if layer["mediaType"].endswith("tar+gzip"))
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(art.blobs[archive["digest"]]))) as tar:
        names = sorted(m.name for m in tar if m.isreg())
    assert names == ["./css/site.css", "./index.html", "./robots.txt"]
