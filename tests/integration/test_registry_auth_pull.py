"""Pulls from a registry that requires HTTP basic auth (htpasswd), with credentials from files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from support.registry import REGISTRY_PASSWORD, REGISTRY_USER, RegistryServer, TokenServer, run_registry
from support.spinpush import SpinAppSpec, SpinComponent, build_artifact, push, tiny_wasm
from tauon.errors import PullError
from tauon.registry import pull_app

pytestmark = pytest.mark.integration


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def private_ref(auth_registry: RegistryServer) -> str:
    app = SpinAppSpec(name="private", components=[SpinComponent("web", tiny_wasm("private"),
                                                                files={"a.txt": b"secret file" * 20})],
                      triggers=[{"route": "/...", "component": "web"}])
    push(build_artifact(app), auth_registry.host, "tests/private", "v1",
         auth=(REGISTRY_USER, REGISTRY_PASSWORD))
    return f"{auth_registry.host}/tests/private:v1"


def test_no_credentials_suggests_adding_them(private_ref: str, tmp_path: Path) -> None:
    with pytest.raises(PullError, match=r"requires authentication.*spin registry login.*docker login"):
        pull_app(private_ref, base_dir=tmp_path, cache_dir=tmp_path / "c", insecure=True, env={},
                 home=tmp_path)


def test_docker_config_credentials(private_ref: str, auth_registry: RegistryServer, tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps(
        {"auths": {auth_registry.host: {"auth": b64(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}")}}}))
    pulled = pull_app(private_ref, base_dir=tmp_path, cache_dir=tmp_path / "c", insecure=True,
                      env={"DOCKER_CONFIG": str(docker)}, home=tmp_path / "home")
    assert pulled.locked["components"][0]["id"] == "web"


def test_spin_registry_auth_file(private_ref: str, auth_registry: RegistryServer, tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "fermyon").mkdir(parents=True)
    (xdg / "fermyon" / "registry-auth.json").write_text(json.dumps(
        {"auths": {auth_registry.host: b64(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}")}}))
    # Docker's config holds wrong credentials: Spin's file is consulted first.
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps(
        {"auths": {auth_registry.host: {"username": REGISTRY_USER, "password": "wrong"}}}))
    pulled = pull_app(private_ref, base_dir=tmp_path, cache_dir=tmp_path / "c", insecure=True,
                      env={"XDG_CONFIG_HOME": str(xdg), "DOCKER_CONFIG": str(docker)}, home=tmp_path)
    assert pulled.locked["components"][0]["id"] == "web"


def test_wrong_password_is_named_not_shown(private_ref: str, auth_registry: RegistryServer,
                                           tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps(
        {"auths": {auth_registry.host: {"username": REGISTRY_USER, "password": "hunter2-wrong"}}}))
    with pytest.raises(PullError) as info:
        pull_app(private_ref, base_dir=tmp_path, cache_dir=tmp_path / "c", insecure=True,
                 env={"DOCKER_CONFIG": str(docker)}, home=tmp_path)
    message = str(info.value)
    config = docker / "config.json"
    assert f"refused credentials for user '{REGISTRY_USER}' (password) from {config}" in message
    assert str(docker / "config.json") in message
    assert "hunter2" not in message


@pytest.mark.parametrize("with_credentials", [False, True])
def test_bearer_token_flow(registry: RegistryServer, tmp_path: Path, with_credentials: bool) -> None:
    """Token auth as ghcr.io/Docker Hub do it: anonymous tokens, and basic-to-bearer with credentials.

    The token-protected registry serves the anonymous registry's storage, so pushes go there.
    """
    app = SpinAppSpec(name="bearer", components=[SpinComponent("web", tiny_wasm("bearer"))],
                      triggers=[{"route": "/...", "component": "web"}])
    digest = push(build_artifact(app), registry.host, "tests/bearer", "v1")
    user, password = ("robot", "tok:en") if with_credentials else (None, None)
    with TokenServer(tmp_path / "token", user, password) as tokens, \
            run_registry(tmp_path / "server", token=tokens, storage=registry.storage) as protected:
        env: dict[str, str] = {}
        if with_credentials:
            (tmp_path / "docker").mkdir()
            (tmp_path / "docker" / "config.json").write_text(json.dumps(
                {"auths": {protected.host: {"auth": b64(f"{user}:{password}")}}}))
            env = {"DOCKER_CONFIG": str(tmp_path / "docker")}
        pulled = pull_app(f"{protected.host}/tests/bearer:v1", base_dir=tmp_path, cache_dir=tmp_path / "c",
                          insecure=True, env=env, home=tmp_path)
        assert pulled.digest == digest
        # One token for the whole pull, scoped to the repository.
        assert [q["scope"] for q in tokens.requests] == [["repository:tests/bearer:pull"]]
        if with_credentials:
            with pytest.raises(PullError, match="requires authentication"):
                pull_app(f"{protected.host}/tests/bearer:v1", base_dir=tmp_path, cache_dir=tmp_path / "c2",
                         insecure=True, env={}, home=tmp_path)
