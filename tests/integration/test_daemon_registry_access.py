"""Private registries through the real tauon process: TLS with the app's own CA bundle, basic auth
from Docker's config, wrong credentials on an update (the running version keeps serving, no secret in
the log)."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.daemon import free_port, run_tauon, wait_http
from support.registry import (
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    RegistryServer,
    make_htpasswd,
    make_tls,
    run_registry,
)


@pytest.fixture(scope="module")
def tls_auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RegistryServer, Path]]:
    root = tmp_path_factory.mktemp("tls-auth")
    tls = make_tls(root / "tls")
    htpasswd = make_htpasswd(root / "htpasswd", REGISTRY_USER, REGISTRY_PASSWORD)
    with run_registry(root / "server", htpasswd=htpasswd, tls=tls) as server:
        yield server, tls.ca


def docker_config(directory: Path, host: str, password: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{REGISTRY_USER}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return directory


def test_tls_registry_with_app_ca_bundle_and_docker_credentials(
        tmp_path: Path, tls_auth_registry: tuple[RegistryServer, Path], registry: RegistryServer) -> None:
    server, ca = tls_auth_registry
    # Push over plain HTTP to the anonymous registry's storage would not reach this one: push here.
    from support.fixtures import fixture_path
    from support.spinpush import SpinAppSpec, SpinComponent, build_artifact, push

    def publish(tag: str, version: str) -> str:
        app = SpinAppSpec(name="private", components=[SpinComponent(
            id="private", wasm=fixture_path("sleep").read_bytes(), env={"VERSION": version})],
            triggers=[{"route": "/...", "component": "private", "executor": {"type": "wagi"}}])
        push(build_artifact(app), server.host, "private/app", tag, insecure=False,
             auth=(REGISTRY_USER, REGISTRY_PASSWORD), verify=str(ca))
        return f"{server.host}/private/app:{tag}"

    v1, v2 = publish("v1", "v1"), publish("v2", "v2")
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    docker = docker_config(tmp_path / "docker", server.host, REGISTRY_PASSWORD)
    with run_tauon(tmp_path, env={"DOCKER_CONFIG": str(docker)}) as tauon:
        shutil.copy(ca, tauon.watch_dir / "registry-ca.pem")
        path = tauon.watch_dir / "app.json"
        path.write_text(json.dumps({"reference": v1, "address": f"127.0.0.1:{port}",
                                    "ca_bundle": "registry-ca.pem"}))
        wait_http(url, contains="in v1")

        # Credentials go bad, then the app file asks for v2: v1 keeps serving, the error is clear.
        docker_config(docker, server.host, "wrong-password-123")
        path.write_text(json.dumps({"reference": v2, "address": f"127.0.0.1:{port}",
                                    "ca_bundle": "registry-ca.pem"}))
        log = tauon.wait_log(rf"refused credentials for user '{REGISTRY_USER}'")
        assert "keeps serving" in log
        assert "in v1" in httpx.get(url).text

        # Without the app's CA bundle the certificate cannot be verified, and tauon says so.
        other = free_port()
        (tauon.watch_dir / "nocert.json").write_text(json.dumps(
            {"reference": v1, "address": f"127.0.0.1:{other}"}))
        log = tauon.wait_log(r"nocert\.json: .*could not be verified")

        docker_config(docker, server.host, REGISTRY_PASSWORD)
        tauon.signal(__import__("signal").SIGHUP)
        wait_http(url, contains="in v2")
        log = tauon.log()
    for secret in (REGISTRY_PASSWORD, "wrong-password-123",
                   base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()):
        assert secret not in log
