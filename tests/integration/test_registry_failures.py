"""Corrupt content, a registry that goes away, and other ways a pull must fail (or not) quickly."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from support.registry import RegistryServer, free_port
from support.spinpush import SpinAppSpec, SpinComponent, build_artifact, push, sha256, tiny_wasm
from tauon.errors import DigestMismatch, PullError
from tauon.registry import pull_app

pytestmark = pytest.mark.integration


def one_component_app(marker: str) -> SpinAppSpec:
    return SpinAppSpec(
        name=marker,
        components=[SpinComponent("web", tiny_wasm(marker), files={"page.html": marker.encode() * 50})],
        triggers=[{"route": "/...", "component": "web"}],
    )


def flip_first_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


def cached_blobs(cache_dir: Path) -> set[str]:
    return {p.name for p in (cache_dir / "blobs").rglob("*") if p.is_file()}


@pytest.mark.parametrize("target", ["wasm", "file", "lock"])
def test_corrupt_blob_is_rejected_and_not_cached(registry: RegistryServer, tmp_path: Path,
                                                 target: str) -> None:
    app = one_component_app(f"corrupt-{target}")
    artifact = build_artifact(app)
    push(artifact, registry.host, f"tests/corrupt-{target}", "v1")
    layers = artifact.manifest_json["layers"]
    bad = {"wasm": layers[0], "file": layers[1], "lock": layers[-1]}[target]["digest"]
    flip_first_byte(registry.blob_file(bad))
    cache_dir = tmp_path / "cache"
    with pytest.raises(DigestMismatch) as info:
        pull_app(f"{registry.host}/tests/corrupt-{target}:v1", base_dir=tmp_path, cache_dir=cache_dir,
                 insecure=True)
    assert bad in str(info.value) and f"tests/corrupt-{target}:v1" in str(info.value)
    assert bad.split(":")[1] not in cached_blobs(cache_dir)
    assert not (cache_dir / "assets").exists() or not any((cache_dir / "assets").rglob("page.html"))
    assert not (cache_dir / "index").exists()


def test_pinned_digest_mismatch(registry: RegistryServer, tmp_path: Path) -> None:
    push(build_artifact(one_component_app("pinned")), registry.host, "tests/pinned", "v1")
    wrong = sha256(b"something else")
    with pytest.raises(PullError, match="not found"):
        pull_app(f"{registry.host}/tests/pinned:v1@{wrong}", base_dir=tmp_path, cache_dir=tmp_path / "c",
                 insecure=True)


def test_registry_down_serves_cached_tag_offline(registry: RegistryServer, tmp_path: Path) -> None:
    app = one_component_app("offline")
    digest = push(build_artifact(app), registry.host, "tests/offline", "v1")
    push(build_artifact(one_component_app("never-pulled")), registry.host, "tests/offline", "v2")
    cache_dir = tmp_path / "cache"
    ref = f"{registry.host}/tests/offline:v1"
    online = pull_app(ref, base_dir=tmp_path, cache_dir=cache_dir, insecure=True)
    assert not online.offline

    with registry.stopped():
        started = time.monotonic()
        offline = pull_app(ref, base_dir=tmp_path, cache_dir=cache_dir, insecure=True)
        assert time.monotonic() - started < 3
        assert offline.offline and offline.digest == digest
        assert offline.locked == online.locked

        by_digest = pull_app(f"{registry.host}/tests/offline@{digest}", base_dir=tmp_path,
                             cache_dir=cache_dir, insecure=True)
        assert by_digest.digest == digest and not by_digest.offline

        started = time.monotonic()
        with pytest.raises(PullError) as info:
            pull_app(f"{registry.host}/tests/offline:v2", base_dir=tmp_path, cache_dir=cache_dir,
                     insecure=True)
        assert time.monotonic() - started < 5
        message = str(info.value)
        assert registry.host in message and "unreachable" in message and "not in the local cache" in message

    # Back up: the tag is resolved against the registry again.
    assert not pull_app(ref, base_dir=tmp_path, cache_dir=cache_dir, insecure=True).offline


def test_refresh_false_uses_cached_tag(registry: RegistryServer, tmp_path: Path) -> None:
    first = one_component_app("refresh-1")
    push(build_artifact(first), registry.host, "tests/refresh", "v1")
    cache_dir = tmp_path / "cache"
    old = pull_app(f"{registry.host}/tests/refresh:v1", base_dir=tmp_path, cache_dir=cache_dir, insecure=True)
    new_digest = push(build_artifact(one_component_app("refresh-2")), registry.host, "tests/refresh", "v1")
    kept = pull_app(f"{registry.host}/tests/refresh:v1", base_dir=tmp_path, cache_dir=cache_dir,
                    insecure=True, refresh=False)
    assert kept.digest == old.digest and not kept.offline
    fresh = pull_app(f"{registry.host}/tests/refresh:v1", base_dir=tmp_path, cache_dir=cache_dir,
                     insecure=True)
    assert fresh.digest == new_digest != old.digest


def test_dead_registry_fails_fast(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(PullError) as info:
        pull_app(f"{host}/tests/app:v1", base_dir=tmp_path, cache_dir=tmp_path / "c", insecure=True)
    assert time.monotonic() - started < 3
    assert f"registry {host} unreachable" in str(info.value)
    assert "connection refused" in str(info.value)


def test_not_found(registry: RegistryServer, tmp_path: Path) -> None:
    push(build_artifact(one_component_app("exists")), registry.host, "tests/exists", "v1")
    for ref in (f"{registry.host}/tests/exists:nope", f"{registry.host}/tests/no-such-repo:v1"):
        with pytest.raises(PullError, match=r"not found in registry .*check the repository name"):
            pull_app(ref, base_dir=tmp_path, cache_dir=tmp_path / "c", insecure=True)


def test_tls_against_plain_http_registry(registry: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(PullError, match=r"did not answer with TLS .*serve plain HTTP: set insecure"):
        pull_app(f"{registry.host}/tests/exists:v1", base_dir=tmp_path, cache_dir=tmp_path / "c")


def test_path_escape_in_pushed_lock(registry: RegistryServer, tmp_path: Path) -> None:
    app = one_component_app("escape")
    app.components[0].files = {"../../outside.txt": b"pwned"}
    push(build_artifact(app), registry.host, "tests/escape", "v1")
    with pytest.raises(PullError, match=r"component 'web'.*'\.\./\.\./outside\.txt'"):
        pull_app(f"{registry.host}/tests/escape:v1", base_dir=tmp_path, cache_dir=tmp_path / "c",
                 insecure=True)
    assert not list(tmp_path.rglob("outside.txt"))


def test_hung_registry_fails_within_the_timeout(tmp_path: Path) -> None:
    # A listening socket nobody accepts from: TCP connects, no HTTP answer ever comes.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        host = f"127.0.0.1:{hung.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(PullError, match=f"registry {host} unreachable .*timed out"):
            pull_app(f"{host}/tests/app:v1", base_dir=tmp_path, cache_dir=tmp_path / "c", insecure=True,
                     timeout=1.0)
        assert time.monotonic() - started < 2.5
