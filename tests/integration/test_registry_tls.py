"""Pulls over TLS from a real docker-registry with a certificate from a CA the test makes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.registry import (
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    RegistryServer,
    TlsFiles,
    TokenServer,
    make_htpasswd,
    make_tls,
    run_registry,
)
from support.spinpush import SpinAppSpec, SpinComponent, build_artifact, push, tiny_wasm
from tauon.errors import PullError
from tauon.registry import pull_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tls(tmp_path_factory.mktemp("other-tls")).ca


@pytest.fixture(scope="module")
def tls_registry(registry: RegistryServer, tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[RegistryServer]:
    """HTTPS (no auth) over the plain registry's storage, so tests push over plain HTTP."""
    component = SpinComponent("web", tiny_wasm("tls"), files={"f": b"t" * 200})
    app = SpinAppSpec(name="tls", components=[component],
                      triggers=[{"route": "/...", "component": "web"}])
    push(build_artifact(app), registry.host, "tests/tls", "v1")
    root = tmp_path_factory.mktemp("tls-registry")
    with run_registry(root, storage=registry.storage, tls=tls_files) as server:
        yield server


def pull(ref: str, tmp_path: Path, **kwargs: object) -> object:
    kwargs.setdefault("env", {})
    return pull_app(ref, base_dir=tmp_path, cache_dir=tmp_path / "c", home=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_ca_bundle_parameter(tls_registry: RegistryServer, tls_files: TlsFiles, tmp_path: Path) -> None:
    pulled = pull(f"{tls_registry.host}/tests/tls:v1", tmp_path, ca_bundle=tls_files.ca)
    assert pulled.locked["components"][0]["id"] == "web"  # type: ignore[attr-defined]


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "CURL_CA_BUNDLE"])
def test_ca_bundle_from_environment(tls_registry: RegistryServer, tls_files: TlsFiles, tmp_path: Path,
                                    variable: str) -> None:
    pull(f"{tls_registry.host}/tests/tls:v1", tmp_path, env={variable: str(tls_files.ca)})


def test_process_environment_is_honoured_and_explicit_bundle_wins(
        tls_registry: RegistryServer, tls_files: TlsFiles, other_ca: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_files.ca))
    pull(f"{tls_registry.host}/tests/tls:v1", tmp_path / "a", env=None)
    # requests alone would let the process's REQUESTS_CA_BUNDLE override a session-level bundle.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(other_ca))
    pull(f"{tls_registry.host}/tests/tls:v1", tmp_path / "b", env=None, ca_bundle=tls_files.ca)


def test_untrusted_certificate_suggests_the_ca_bundle(tls_registry: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(PullError) as info:
        pull(f"{tls_registry.host}/tests/tls:v1", tmp_path)
    message = str(info.value)
    assert f"the TLS certificate of registry {tls_registry.host} could not be verified" in message
    assert "unable to get local issuer certificate" in message
    assert "ca_bundle" in message and "insecure" not in message


def test_wrong_ca_bundle_names_the_bundle(tls_registry: RegistryServer, other_ca: Path,
                                          tmp_path: Path) -> None:
    with pytest.raises(PullError) as info:
        pull(f"{tls_registry.host}/tests/tls:v1", tmp_path, ca_bundle=other_ca)
    message = str(info.value)
    assert "could not be verified" in message and f"not signed by a CA in CA bundle {other_ca}" in message
    assert "insecure" not in message


def test_insecure_against_a_tls_registry(tls_registry: RegistryServer, tmp_path: Path) -> None:
    with pytest.raises(PullError, match=r"serves HTTPS, but insecure \(plain HTTP\) is set .*unset insecure"):
        pull(f"{tls_registry.host}/tests/tls:v1", tmp_path, insecure=True)


def test_tls_with_basic_auth_from_systemd_credentials(registry: RegistryServer, tls_files: TlsFiles,
                                                      tmp_path: Path) -> None:
    """The production shape: a private HTTPS registry with htpasswd, credentials via LoadCredential=."""
    htpasswd = make_htpasswd(tmp_path / "htpasswd", REGISTRY_USER, REGISTRY_PASSWORD)
    with run_registry(tmp_path / "server", htpasswd, storage=registry.storage, tls=tls_files) as server:
        creds = tmp_path / "credentials"
        creds.mkdir()
        pair = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
        (creds / "docker-config.json").write_text(json.dumps({"auths": {server.host: {"auth": pair}}}))
        with pytest.raises(PullError, match="requires authentication"):
            pull(f"{server.host}/tests/tls:v1", tmp_path / "anon", ca_bundle=tls_files.ca)
        pull(f"{server.host}/tests/tls:v1", tmp_path, ca_bundle=tls_files.ca,
             env={"CREDENTIALS_DIRECTORY": str(creds)})


def test_credentials_are_not_sent_to_a_plain_http_token_endpoint(
        registry: RegistryServer, tls_files: TlsFiles, tmp_path: Path) -> None:
    with TokenServer(tmp_path / "token", "robot", "pw") as tokens, \
            run_registry(tmp_path / "server", token=tokens, storage=registry.storage,
                         tls=tls_files) as server:
        docker = tmp_path / "docker"
        docker.mkdir()
        (docker / "config.json").write_text(json.dumps({"auths": {server.host: {"username": "robot",
                                                                                  "password": "pw"}}}))
        with pytest.raises(PullError, match=r"plain-HTTP token endpoint http://127\.0\.0\.1:\d+/token; "
                                            r"refusing to send user 'robot'"):
            pull(f"{server.host}/tests/tls:v1", tmp_path, ca_bundle=tls_files.ca,
                 env={"DOCKER_CONFIG": str(docker)})
        assert tokens.requests == []
