from __future__ import annotations

import base64
import json
from pathlib import Path, PurePosixPath
from typing import Any

import pytest

from tauon.errors import PullError
from tauon.registry.artifact import (
    SPIN_CONFIG,
    WASM_LAYER,
    Descriptor,
    Manifest,
    check_file_path,
    choose_from_index,
    component_files,
    decode_inline,
    is_index,
    kebab,
    lock_descriptor,
    parse_manifest,
    rewrite_lock,
    synthesize_lock,
    wasm_refs,
)

D1, D2, D3, D4 = ("sha256:" + c * 64 for c in "1234")


@pytest.mark.parametrize("data", [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256))])
def test_decode_inline_with_and_without_padding(data: bytes) -> None:
    padded = base64.b64encode(data).decode()
    assert decode_inline(padded.rstrip("="), "x") == data
    assert decode_inline(padded, "x") == data
    assert decode_inline(base64.urlsafe_b64encode(data).decode().rstrip("="), "x") == data


def test_decode_inline_spec_example() -> None:
    assert decode_inline("VXNlci1hZ2VudDogKgpEaXNhbGxvdzoK", "x") == b"User-agent: *\nDisallow:\n"


def test_decode_inline_rejects_garbage() -> None:
    with pytest.raises(PullError, match="component 'web' file 'a': 'inline' is not valid base64"):
        decode_inline("ab!cd", "component 'web' file 'a'")


@pytest.mark.parametrize("path", ["index.html", "css/site.css", "a/b/c/d.txt", "..hidden", "a..b/c"])
def test_file_paths_accepted(path: str) -> None:
    assert check_file_path(path, "c") == PurePosixPath(path)


@pytest.mark.parametrize("path", ["/etc/passwd", "../x", "a/../../x", "./a", "a/./b", "a//b", "a/", "",
                                  "a\0b", None])
def test_file_paths_rejected(path: Any) -> None:
    with pytest.raises(PullError, match="component 'web'"):
        check_file_path(path, "component 'web'")


def test_component_files_names_component_and_path() -> None:
    comp = {"id": "web", "files": [{"digest": D1, "path": "../../etc/cron.d/x"}]}
    with pytest.raises(PullError, match=r"component 'web'.*'\.\./\.\./etc/cron\.d/x'"):
        component_files(comp)
    comp = {"id": "web", "files": [{"path": "a"}]}
    with pytest.raises(PullError, match="neither 'inline' content nor a 'digest'"):
        component_files(comp)
    ok = component_files({"id": "web", "files": [{"inline": "aGk", "digest": D1, "path": "x/y"}]})
    assert ok[0].inline == b"hi" and ok[0].path == PurePosixPath("x/y")


def _manifest(config_type: str, layers: list[tuple[str, str]]) -> Manifest:
    return Manifest(Descriptor(config_type, D4, 10), tuple(Descriptor(t, d, 1) for t, d in layers))


def test_lock_descriptor_prefers_last_spin_layer() -> None:
    m = _manifest("application/vnd.oci.image.config.v1+json",
                  [(SPIN_CONFIG, D1), (WASM_LAYER, D2), (SPIN_CONFIG, D3)])
    assert lock_descriptor(m).digest == D3
    legacy = _manifest(SPIN_CONFIG, [(WASM_LAYER, D2)])
    assert lock_descriptor(legacy).digest == D4


def test_manifest_parsing_and_index_selection() -> None:
    doc = {"schemaVersion": 2, "config": {"mediaType": "x", "digest": D1, "size": 3},
           "layers": [{"mediaType": WASM_LAYER, "digest": D2, "size": 4},
                      {"mediaType": WASM_LAYER, "digest": D2, "size": 4}]}
    m = parse_manifest(doc, "m")
    assert [d.digest for d in m.blobs] == [D1, D2]
    with pytest.raises(PullError, match="lacks a valid digest or size"):
        parse_manifest({**doc, "layers": [{"digest": D2}]}, "m")
    index = {"manifests": [{"digest": D1, "size": 1, "platform": {"architecture": "amd64"}},
                           {"digest": D2, "size": 1, "platform": {"architecture": "wasm"}}]}
    assert is_index(index, None)
    assert choose_from_index(index, "i").digest == D2
    with pytest.raises(PullError, match="none is for architecture 'wasm'"):
        choose_from_index({"manifests": index["manifests"][:1] * 2}, "i")


def test_wasm_package_synthesis() -> None:
    m = _manifest("application/vnd.wasm.config.v0+json", [("application/wasm", D1)])
    lock = synthesize_lock(m, "Hello_World.v2", "ref")
    assert kebab("Hello_World.v2") == "hello-world-v2"
    assert lock["components"] == [{"id": "hello-world-v2",
                                   "source": {"content_type": "application/wasm", "digest": D1}}]
    assert lock["triggers"][0]["trigger_config"] == {"component": "hello-world-v2", "route": "/..."}
    assert lock["metadata"]["name"] == "Hello_World.v2"
    with pytest.raises(PullError, match="exactly one layer"):
        synthesize_lock(_manifest("x", [("application/wasm", D1), (WASM_LAYER, D2)]), "n", "ref")


def _lock() -> dict[str, Any]:
    return {
        "spin_lock_version": 0,
        "metadata": {"name": "shop"},
        "triggers": [{"id": "t", "trigger_type": "http",
                      "trigger_config": {"component": "api", "route": "/"}}],
        "components": [
            {"id": "api", "source": {"content_type": "application/wasm", "digest": D1},
             "dependencies": {"my:lib/util@1.0.0": {"source": {"content_type": "application/wasm",
                                                               "digest": D2}, "export": None}},
             "env": {"A": "1"}},
            {"id": "static", "source": {"content_type": "application/wasm", "inline": "AGFzbQ", "digest": D3},
             "files": [{"digest": D4, "path": "index.html"}, {"inline": "aGk", "path": "robots.txt"}]},
        ],
    }


def test_rewrite_lock() -> None:
    lock = _lock()
    before = json.dumps(lock)
    out = rewrite_lock(lock, origin="reg/shop:v1", wasm_path=lambda d: Path("/c/blobs") / d[7:15],
                       files_dir=lambda c: Path("/c/assets") / c["id"], what="x")
    assert json.dumps(lock) == before  # the input is not modified
    api, static = out["components"]
    assert out["metadata"] == {"name": "shop", "origin": "vnd.fermyon.origin-oci:reg/shop:v1"}
    assert api["source"] == {"content_type": "application/wasm", "source": "file:///c/blobs/11111111",
                             "digest": D1}
    assert api["dependencies"]["my:lib/util@1.0.0"] == {
        "source": {"content_type": "application/wasm", "source": "file:///c/blobs/22222222", "digest": D2},
        "export": None}
    assert "files" not in api and api["env"] == {"A": "1"}
    assert static["source"]["source"] == "file:///c/blobs/33333333" and "inline" not in static["source"]
    assert static["files"] == [{"source": "file:///c/assets/static", "path": "/"}]
    assert out["triggers"] == lock["triggers"]
    assert [(w, d) for w, d, _ in wasm_refs(lock, "x")] == [
        ("component 'api' source", D1), ("component 'api' dependency 'my:lib/util@1.0.0'", D2),
        ("component 'static' source", D3)]


def test_rewrite_requires_component_digest() -> None:
    lock = _lock()
    del lock["components"][0]["source"]["digest"]
    with pytest.raises(PullError, match="component 'api': 'source' has no digest"):
        rewrite_lock(lock, origin="o", wasm_path=Path, files_dir=lambda c: Path("/"), what="x")


def test_malformed_manifest_is_refused_with_the_path_of_the_problem() -> None:
    import pytest as _pytest

    from tauon.errors import PullError
    from tauon.registry.artifact import parse_manifest

    doc = {"schemaVersion": 2,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                      "digest": "sha256:" + "0" * 64},
           "layers": [{"mediaType": "application/vnd.wasm.content.layer.v1+wasm", "size": "12"}]}
    with _pytest.raises(PullError) as info:
        parse_manifest(doc, "manifest of r/x:1")
    text = str(info.value)
    assert "not a valid OCI image manifest" in text and "layers/0" in text
