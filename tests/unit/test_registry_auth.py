"""Credential lookup: sources, precedence, entry kinds, helpers (through a fake runner), aliases."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from tauon.errors import PullError
from tauon.registry.auth import (
    Credentials,
    credential_files,
    find_credentials,
    helper_server,
    normalize_auth_key,
)
from tauon.registry.credhelper import HelperError, HelperOutput


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write(path: Path, doc: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


class FakeHelpers:
    """Stands in for `docker-credential-<name> get`: answers from a table, records every call."""

    def __init__(self, answers: dict[str, HelperOutput | HelperError]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []

    def __call__(self, program: str, server: str) -> HelperOutput:
        self.calls.append((program, server))
        answer = self.answers.get(program, HelperError(f"{program} is not on PATH"))
        if isinstance(answer, HelperError):
            raise answer
        return answer


def ok(user: str, secret: str) -> HelperOutput:
    return HelperOutput(0, json.dumps({"ServerURL": "x", "Username": user, "Secret": secret}), "")


NOT_FOUND = HelperOutput(1, "credentials not found in native keychain\n", "")


def find(host: str, env: dict[str, str], home: Path,
         helpers: FakeHelpers | None = None) -> Credentials | None:
    return find_credentials(host, env, home, run_helper=helpers or FakeHelpers({}))


def test_anonymous_when_no_files(tmp_path: Path) -> None:
    assert find("ghcr.io", {}, tmp_path) is None


def test_spin_file_in_default_location_wins_over_docker(tmp_path: Path) -> None:
    write(tmp_path / ".config/fermyon/registry-auth.json", {"auths": {"ghcr.io": b64("spin:one")}})
    write(tmp_path / ".docker/config.json", {"auths": {"ghcr.io": {"auth": b64("docker:two")}}})
    creds = find("ghcr.io", {}, tmp_path)
    assert creds is not None
    assert (creds.username, creds.password, creds.kind) == ("spin", "one", "basic")
    assert creds.source.endswith("fermyon/registry-auth.json")


def test_xdg_and_docker_config_env(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DOCKER_CONFIG": str(tmp_path / "dc")}
    write(tmp_path / "dc/config.json", {"auths": {"r.example:5000": {"auth": b64("u:p:with:colons")}}})
    creds = find("r.example:5000", env, tmp_path / "home")
    assert creds is not None and (creds.username, creds.password) == ("u", "p:with:colons")
    write(tmp_path / "xdg/fermyon/registry-auth.json", {"auths": {"r.example:5000": b64("x:y")}})
    creds = find("r.example:5000", env, tmp_path / "home")
    assert creds is not None and creds.username == "x"


def test_full_precedence(tmp_path: Path) -> None:
    """systemd spin > systemd docker > spin > docker > $REGISTRY_AUTH_FILE, each removed in turn."""
    host = "r.example"
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path / "creds"), "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "DOCKER_CONFIG": str(tmp_path / "docker"), "REGISTRY_AUTH_FILE": str(tmp_path / "podman.json"),
           "XDG_RUNTIME_DIR": str(tmp_path / "run")}
    files = [
        write(tmp_path / "creds/registry-auth.json", {"auths": {host: b64("systemd-spin:p")}}),
        write(tmp_path / "creds/docker-config.json", {"auths": {host: {"auth": b64("systemd-docker:p")}}}),
        write(tmp_path / "xdg/fermyon/registry-auth.json", {"auths": {host: b64("spin:p")}}),
        write(tmp_path / "docker/config.json", {"auths": {host: {"auth": b64("docker:p")}}}),
        write(tmp_path / "podman.json", {"auths": {host: {"auth": b64("podman:p")}}}),
    ]
    assert [f.path for f in credential_files(env, tmp_path)] == files
    for expected, path in zip(["systemd-spin", "systemd-docker", "spin", "docker", "podman"], files,
                              strict=True):
        creds = find(host, env, tmp_path)
        assert creds is not None and creds.username == expected and creds.source == str(path)
        path.unlink()
    assert find(host, env, tmp_path) is None


def test_podman_runtime_dir_when_no_registry_auth_file(tmp_path: Path) -> None:
    write(tmp_path / "run/containers/auth.json", {"auths": {"quay.io": {"auth": b64("pod:man")}}})
    creds = find("quay.io", {"XDG_RUNTIME_DIR": str(tmp_path / "run")}, tmp_path)
    assert creds is not None and creds.username == "pod"
    # An explicit REGISTRY_AUTH_FILE replaces the runtime-dir file (Podman's rule).
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "run"), "REGISTRY_AUTH_FILE": str(tmp_path / "none.json")}
    assert find("quay.io", env, tmp_path) is None


def test_docker_username_password_fields_and_url_keys(tmp_path: Path) -> None:
    write(tmp_path / ".docker/config.json",
          {"auths": {"https://ghcr.io/v2/": {"username": "alice", "password": "pw"}}})
    creds = find("ghcr.io", {}, tmp_path)
    assert creds is not None and (creds.username, creds.password) == ("alice", "pw")
    assert find("quay.io", {}, tmp_path) is None


@pytest.mark.parametrize("key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io",
                                 "registry-1.docker.io", "http://docker.io/"])
def test_docker_hub_aliases(tmp_path: Path, key: str) -> None:
    write(tmp_path / ".docker/config.json", {"auths": {key: {"auth": b64("hub:pw")}}})
    creds = find("index.docker.io", {}, tmp_path)
    assert creds is not None and creds.username == "hub"
    assert normalize_auth_key(key) == "index.docker.io"
    assert helper_server("index.docker.io") == "https://index.docker.io/v1/"
    assert helper_server("ghcr.io") == "ghcr.io"


def test_key_normalisation() -> None:
    assert normalize_auth_key("https://Registry.Example:5000/v2/") == "registry.example:5000"
    assert normalize_auth_key("http://127.0.0.1:5000") == "127.0.0.1:5000"
    assert normalize_auth_key("ghcr.io/acme") == "ghcr.io"


def test_bad_spin_entry_falls_through_to_docker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / ".config/fermyon/registry-auth.json", {"auths": {"ghcr.io": b64("no-colon")}})
    write(tmp_path / ".docker/config.json", {"auths": {"ghcr.io": {"auth": b64("d:pw")}}})
    with caplog.at_level(logging.WARNING):
        creds = find("ghcr.io", {}, tmp_path)
    assert creds is not None and creds.username == "d"
    assert "not base64" in caplog.text


def test_identity_and_registry_tokens(tmp_path: Path) -> None:
    config = tmp_path / ".docker/config.json"
    write(config, {"auths": {"ghcr.io": {"auth": b64("bob:"), "identitytoken": "refresh-me"}}})
    creds = find("ghcr.io", {}, tmp_path)
    assert creds is not None
    assert (creds.username, creds.password, creds.kind) == ("bob", "refresh-me", "identity_token")
    write(config, {"auths": {"ghcr.io": {"identitytoken": "refresh-me"}}})
    creds = find("ghcr.io", {}, tmp_path)
    assert creds is not None and (creds.username, creds.kind) == ("<token>", "identity_token")
    # A registry token is sent as-is and beats an identity token in the same entry (Docker's order).
    write(config, {"auths": {"ghcr.io": {"registrytoken": "bearer-me", "identitytoken": "refresh-me"}}})
    creds = find("ghcr.io", {}, tmp_path)
    assert creds is not None and (creds.password, creds.kind) == ("bearer-me", "registry_token")


def test_broken_json_and_empty_entries_mean_anonymous(tmp_path: Path) -> None:
    write(tmp_path / ".docker/config.json", {"auths": {"ghcr.io": {}, "quay.io": {"auth": b64("<token>:x")}}})
    assert find("ghcr.io", {}, tmp_path) is None
    assert find("quay.io", {}, tmp_path) is None
    (tmp_path / ".docker/config.json").write_text("{not json")
    assert find("ghcr.io", {}, tmp_path) is None


def test_helper_precedence_cred_helpers_then_store_then_auths(tmp_path: Path) -> None:
    config = write(tmp_path / ".docker/config.json", {
        "credHelpers": {"https://ghcr.io": "per-host"}, "credsStore": "store",
        "auths": {"ghcr.io": {"auth": b64("plain:pw")}}})
    helpers = FakeHelpers({"docker-credential-per-host": ok("host-user", "s1"),
                           "docker-credential-store": ok("store-user", "s2")})
    creds = find("ghcr.io", {}, tmp_path, helpers)
    assert creds is not None and (creds.username, creds.password) == ("host-user", "s1")
    assert creds.source == f"credential helper docker-credential-per-host (credHelpers[ghcr.io] in {config})"
    assert helpers.calls == [("docker-credential-per-host", "ghcr.io")]
    # credHelpers names no helper for quay.io: credsStore answers.
    creds = find("quay.io", {}, tmp_path, helpers)
    assert creds is not None and creds.username == "store-user"
    # Neither helper has it: auths[host] is used.
    helpers.answers = {"docker-credential-per-host": NOT_FOUND, "docker-credential-store": NOT_FOUND}
    creds = find("ghcr.io", {}, tmp_path, helpers)
    assert creds is not None and creds.username == "plain"


def test_helper_token_username_means_identity_token(tmp_path: Path) -> None:
    write(tmp_path / ".docker/config.json", {"credsStore": "tok"})
    helpers = FakeHelpers({"docker-credential-tok": ok("<token>", "refresh")})
    creds = find("index.docker.io", {}, tmp_path, helpers)
    assert creds is not None and creds.kind == "identity_token" and creds.password == "refresh"
    assert helpers.calls == [("docker-credential-tok", "https://index.docker.io/v1/")]


@pytest.mark.parametrize(("answer", "expected"), [
    (HelperError("docker-credential-gone is not on PATH"), "docker-credential-gone is not on PATH"),
    (HelperOutput(3, "", "keyring locked\n"), "exited with status 3: keyring locked"),
    (HelperOutput(0, "not json", ""), "did not print JSON"),
])
def test_failing_helper_is_a_clear_error(tmp_path: Path, answer: HelperOutput | HelperError,
                                         expected: str) -> None:
    config = write(tmp_path / ".docker/config.json", {"credHelpers": {"ghcr.io": "gone"}})
    with pytest.raises(PullError) as info:
        find("ghcr.io", {}, tmp_path, FakeHelpers({"docker-credential-gone": answer}))
    message = str(info.value)
    assert "registry ghcr.io" in message and expected in message and str(config) in message


def test_helper_name_cannot_escape_the_prefix(tmp_path: Path) -> None:
    write(tmp_path / ".docker/config.json", {"credsStore": "../../bin/sh"})
    helpers = FakeHelpers({})
    with pytest.raises(PullError, match="not a plain program suffix"):
        find("ghcr.io", {}, tmp_path, helpers)
    assert helpers.calls == []


def test_secret_not_in_repr_or_description() -> None:
    creds = Credentials("alice", "hunter2", source="x", kind="identity_token")
    assert "hunter2" not in repr(creds) and "hunter2" not in creds.describe()
    assert creds.describe() == "user 'alice' (identity token) from x"
    assert base64.b64decode(creds.basic_token()) == b"alice:hunter2"
