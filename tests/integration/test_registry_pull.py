"""Pull what `spin registry push` would publish from a real docker-registry and an OCI layout dir."""

from __future__ import annotations

import contextlib
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from support.registry import RegistryServer
from support.spinpush import (
    ARCHIVE_LAYER,
    DATA_LAYER,
    SpinAppSpec,
    SpinComponent,
    build_artifact,
    build_wasm_package,
    push,
    tiny_wasm,
    write_oci_layout,
)
from tauon.errors import PullError
from tauon.registry import PulledApp, pull_app

pytestmark = pytest.mark.integration


def sample_app(marker: str) -> SpinAppSpec:
    page = f"<html>{marker}</html>".encode() + b"x" * 300
    return SpinAppSpec(
        name="hello-static",
        version="0.1.0",
        components=[
            SpinComponent("api", tiny_wasm(f"{marker}-api"), env={"LOG_LEVEL": "info"},
                          config={"greeting": "{{ greeting }}"},
                          metadata={"allowed_outbound_hosts": ["https://api.example.com"]}),
            SpinComponent("static", tiny_wasm(f"{marker}-static"), files={
                "index.html": page,
                "css/site.css": b"body { font-family: sans-serif; }\n",
                "robots.txt": b"User-agent: *\nDisallow:\n",
                "empty.txt": b"",
                "deep/a/b/blob.bin": bytes(range(256)) * 40,
                "copy-of-index.html": page,
                "exactly128.txt": b"7" * 128,
                "just-over.txt": b"9" * 129,
            }),
        ],
        triggers=[{"route": "/api/...", "component": "api"}, {"route": "/...", "component": "static"}],
        variables={"greeting": {"default": "Hello"}},
    )


def tree(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def uri_path(uri: str) -> Path:
    assert uri.startswith("file:///")
    return Path(urlparse(uri).path)


def check_pulled(pulled: PulledApp, app: SpinAppSpec, cache_dir: Path) -> None:
    locked = pulled.locked
    assert locked["metadata"]["origin"] == f"vnd.fermyon.origin-oci:{pulled.reference}"
    assert locked["metadata"]["name"] == app.name
    assert [c["id"] for c in locked["components"]] == [c.id for c in app.components]
    for comp, spec in zip(locked["components"], app.components, strict=True):
        wasm = uri_path(comp["source"]["source"])
        assert wasm.read_bytes() == spec.wasm
        assert wasm.is_relative_to(cache_dir)
        assert comp["source"]["digest"].startswith("sha256:")
        if spec.files:
            [mount] = comp["files"]
            assert mount["path"] == "/"
            assert tree(uri_path(mount["source"])) == spec.files
        else:
            assert "files" not in comp
    assert locked["components"][0]["env"] == {"LOG_LEVEL": "info"}
    assert locked["triggers"][1]["trigger_config"] == {"component": "static", "route": "/..."}


@pytest.mark.parametrize(("mode", "legacy"), [("simple", False), ("archive", False), ("simple", True)])
def test_pull_spin_app(registry: RegistryServer, tmp_path: Path, mode: str, legacy: bool) -> None:
    app = sample_app(f"{mode}-{legacy}")
    artifact = build_artifact(app, mode=mode, legacy_v1=legacy)  # type: ignore[arg-type]
    layer_types = [layer["mediaType"] for layer in artifact.manifest_json["layers"]]
    if mode == "simple":
        # Only files > 128 B get data layers, identical content once: page, blob.bin, just-over.txt.
        assert layer_types.count(DATA_LAYER) == 3
    else:
        assert layer_types.count(ARCHIVE_LAYER) == 1
    repo = f"tests/app-{mode}-{'legacy' if legacy else 'current'}"
    digest = push(artifact, registry.host, repo, "v1")
    assert digest == artifact.digest

    seen: list[tuple[int, int, int, int]] = []
    ref = f"{registry.host}/{repo}:v1"
    cache_dir = tmp_path / "cache"
    pulled = pull_app(ref, base_dir=tmp_path, cache_dir=cache_dir, insecure=True,
                      progress=lambda *a: seen.append(a))
    assert (pulled.reference, pulled.digest, pulled.offline) == (ref, digest, False)
    check_pulled(pulled, app, cache_dir)
    assert seen[-1][0] == seen[-1][1] > 0 and seen[-1][2] == seen[-1][3] == len(
        {d["digest"] for d in [artifact.manifest_json["config"], *artifact.manifest_json["layers"]]})

    # A second pull re-resolves the tag but downloads nothing and reuses the materialized tree.
    seen.clear()
    again = pull_app(ref, base_dir=tmp_path, cache_dir=cache_dir, insecure=True,
                     progress=lambda *a: seen.append(a))
    assert again.locked == pulled.locked
    assert seen[0][0] == seen[0][1]


def test_pull_by_digest_and_tag_at_digest(registry: RegistryServer, tmp_path: Path) -> None:
    app = sample_app("digest")
    digest = push(build_artifact(app), registry.host, "tests/by-digest", "v1")
    for ref in (f"{registry.host}/tests/by-digest@{digest}", f"{registry.host}/tests/by-digest:v1@{digest}"):
        pulled = pull_app(ref, base_dir=tmp_path, cache_dir=tmp_path / "cache", insecure=True)
        assert pulled.digest == digest
        check_pulled(pulled, app, tmp_path / "cache")
    other = push(build_artifact(sample_app("other")), registry.host, "tests/by-digest", "v2")
    with pytest.raises(PullError, match="not found"):
        pull_app(f"{registry.host}/tests/by-digest@{'sha256:' + '0' * 64}", base_dir=tmp_path,
                 cache_dir=tmp_path / "c2", insecure=True)
    assert other != digest


def test_pull_wasm_package(registry: RegistryServer, tmp_path: Path) -> None:
    wasm = tiny_wasm("wkg")
    digest = push(build_wasm_package(wasm), registry.host, "tests/hello_world", "1.0")
    pulled = pull_app(f"{registry.host}/tests/hello_world:1.0", base_dir=tmp_path,
                      cache_dir=tmp_path / "cache", insecure=True)
    assert pulled.digest == digest
    [comp] = pulled.locked["components"]
    assert comp["id"] == "hello-world"
    assert uri_path(comp["source"]["source"]).read_bytes() == wasm
    [trigger] = pulled.locked["triggers"]
    assert trigger["trigger_config"] == {"component": "hello-world", "route": "/..."}


def test_pull_oci_layout_directory(tmp_path: Path) -> None:
    app_v1, app_v2 = sample_app("layout-1"), sample_app("layout-2")
    art_v1, art_v2 = build_artifact(app_v1), build_artifact(app_v2, mode="archive")
    layout = tmp_path / "apps" / "shop-layout"
    write_oci_layout(art_v1, layout, tag="v1")
    cache_dir = tmp_path / "cache"
    # Relative to base_dir (the app JSON's directory), single manifest, no tag needed.
    pulled = pull_app("./shop-layout", base_dir=tmp_path / "apps", cache_dir=cache_dir)
    assert pulled.digest == art_v1.digest and not pulled.offline
    check_pulled(pulled, app_v1, cache_dir)

    write_oci_layout(art_v2, layout, tag="v2")
    with pytest.raises(PullError, match="lists 2 manifests"):
        pull_app("./shop-layout", base_dir=tmp_path / "apps", cache_dir=cache_dir)
    pulled = pull_app(f"{layout}:v2", base_dir=tmp_path, cache_dir=cache_dir)
    assert pulled.digest == art_v2.digest
    check_pulled(pulled, app_v2, cache_dir)
    pulled = pull_app(f"{layout}@{art_v1.digest}", base_dir=tmp_path, cache_dir=cache_dir)
    assert pulled.digest == art_v1.digest
    with pytest.raises(PullError, match=r"no manifest tagged 'v3'.*v1, v2"):
        pull_app(f"{layout}:v3", base_dir=tmp_path, cache_dir=cache_dir)


def test_concurrent_pulls_share_the_cache(registry: RegistryServer, tmp_path: Path) -> None:
    app = sample_app("concurrent")
    push(build_artifact(app, mode="archive"), registry.host, "tests/concurrent", "v1")
    results: list[PulledApp | BaseException] = []

    def run() -> None:
        try:
            results.append(pull_app(f"{registry.host}/tests/concurrent:v1", base_dir=tmp_path,
                                    cache_dir=tmp_path / "cache", insecure=True))
        except BaseException as exc:  # reported below
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, PulledApp) for r in results), results
    for result in results:
        assert isinstance(result, PulledApp)
        check_pulled(result, app, tmp_path / "cache")
    assert not [p for p in (tmp_path / "cache").rglob(".tmp-*")]


class CountingForwarder:
    """A TCP forwarder to the registry that counts the connections clients open through it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.target)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.listener.close()


def test_pulls_from_one_registry_reuse_its_connections(registry: RegistryServer, tmp_path: Path) -> None:
    host, port = registry.host.rsplit(":", 1)
    forwarder = CountingForwarder((host, int(port)))
    try:
        refs = []
        for i in range(3):
            app = SpinAppSpec(name=f"reuse{i}", components=[SpinComponent("c", tiny_wasm(f"reuse-{i}"))],
                              triggers=[{"route": "/...", "component": "c"}])
            push(build_artifact(app), registry.host, f"test/reuse{i}", "v1")
            refs.append(f"{forwarder.address}/test/reuse{i}:v1")
        for ref in refs:  # each pull asks for a manifest, a config and a lock file at least
            pulled = pull_app(ref, base_dir=tmp_path, cache_dir=tmp_path / "cache", insecure=True)
            assert pulled.reference == ref
        assert forwarder.connections == 1  # kept alive across pulls, not one (or more) per pull
    finally:
        forwarder.close()
