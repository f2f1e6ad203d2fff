"""The pull cache is bounded: oversized blobs and decompression bombs are refused and leave nothing
behind, unused content is collected, and a pull that cannot fit fails with an error naming the bound."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from support.apps import push_sleep_app
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent, build_artifact, push, sha256, tiny_wasm
from tauon.errors import PullError
from tauon.registry import pull_app
from tauon.registry.gc import GRACE, CacheLimits, collect, usage

pytestmark = pytest.mark.integration
MiB = 1024**2


def app_with_file(marker: str, data: bytes) -> SpinAppSpec:
    component = SpinComponent("web", tiny_wasm(marker), files={"f.bin": data})
    return SpinAppSpec(name=marker, components=[component], triggers=[{"route": "/...", "component": "web"}])


def backdate(root: Path) -> None:
    old = time.time() - 2 * GRACE
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            os.utime(os.path.join(dirpath, name), (old, old), follow_symlinks=False)


def test_a_blob_declared_over_the_limit_is_refused_before_download(registry: RegistryServer,
                                                                   tmp_path: Path) -> None:
    big = os.urandom(2 * MiB)
    push(build_artifact(app_with_file("big-blob", big)), registry.host, "tests/big-blob", "v1")
    with pytest.raises(PullError, match=r"declares 2097152 bytes, more than the largest blob tauon "
                                        r"accepts \(1 MiB\).*--max-blob-mib"):
        pull_app(f"{registry.host}/tests/big-blob:v1", base_dir=tmp_path, cache_dir=tmp_path / "c",
                 insecure=True, limits=CacheLimits(max_bytes=1024 * MiB, max_blob=MiB))
    assert not (tmp_path / "c" / "blobs" / "sha256" / sha256(big).split(":")[1]).exists()


def test_a_gzip_bomb_archive_is_refused_and_leaves_nothing(registry: RegistryServer, tmp_path: Path) -> None:
    bomb = bytes(100 * MiB)  # zeros: the archive layer is ~100 KiB
    push(build_artifact(app_with_file("bomb", bomb), mode="archive"), registry.host, "tests/bomb", "v1")
    cache = tmp_path / "c"
    with pytest.raises(PullError, match="refusing it as a decompression bomb"):
        pull_app(f"{registry.host}/tests/bomb:v1", base_dir=tmp_path, cache_dir=cache, insecure=True)
    assert usage(cache) < 2 * MiB  # the layer itself and the small blobs, not the 100 MiB


def test_a_full_cache_collects_unused_content_then_refuses_what_cannot_fit(registry: RegistryServer,
                                                                          tmp_path: Path) -> None:
    cache = tmp_path / "c"
    limits = CacheLimits(max_bytes=5 * MiB, max_blob=1024 * MiB)
    first, second, huge = os.urandom(3 * MiB), os.urandom(3 * MiB), os.urandom(6 * MiB)
    for name, data in (("first", first), ("second", second), ("huge", huge)):
        push(build_artifact(app_with_file(f"full-{name}", data)), registry.host, f"tests/full-{name}", "v1")
    collected: list[int] = []

    def make_room(needed: int) -> None:  # what the daemon does: keep what serving apps use (none)
        collected.append(collect(cache, set(), set()).files)

    pull_app(f"{registry.host}/tests/full-first:v1", base_dir=tmp_path, cache_dir=cache, insecure=True,
             limits=limits, make_room=make_room)
    backdate(cache)  # the first app is gone, and long enough ago
    pull_app(f"{registry.host}/tests/full-second:v1", base_dir=tmp_path, cache_dir=cache, insecure=True,
             limits=limits, make_room=make_room)
    assert collected and collected[0] > 0
    blobs = cache / "blobs" / "sha256"
    assert not (blobs / sha256(first).split(":")[1]).exists()
    assert (blobs / sha256(second).split(":")[1]).exists()
    with pytest.raises(PullError, match=r"over its bound of 0\.00 GiB.*--cache-max-gib"):
        pull_app(f"{registry.host}/tests/full-huge:v1", base_dir=tmp_path, cache_dir=cache, insecure=True,
                 limits=limits, make_room=make_room)
    assert usage(cache) <= limits.max_bytes


def test_the_daemon_collects_a_removed_apps_content(registry: RegistryServer, tmp_path: Path) -> None:
    data = os.urandom(MiB)
    reference = push_sleep_app(registry, "tests/collected", "v1", version="1", files={"f.bin": data})
    watch = tmp_path / "apps"
    watch.mkdir()
    port = free_port()
    (watch / "a.json").write_text(json.dumps({"reference": reference, "address": f"127.0.0.1:{port}",
                                              "insecure": True}))
    with run_tauon(tmp_path, "--workers", "1", watch_dir=watch) as tauon:
        tauon.wait_log(r"a\.json: serving")
        wait_http(f"http://127.0.0.1:{port}/.well-known/spin/health")
        blob = tauon.cache_dir / "blobs" / "sha256" / sha256(data).split(":")[1]
        assert blob.exists()
        (watch / "a.json").unlink()
        tauon.wait_log(r"a\.json: stopped")
        backdate(tauon.cache_dir)
        tauon.wait_log(r"cache: removed \d+ unused entr", timeout=30)
        assert not blob.exists()
