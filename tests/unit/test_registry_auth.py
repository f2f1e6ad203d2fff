from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from tauon.registry.auth import Credentials, find_credentials, normalize_auth_key


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write(path: Path, doc: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))


def test_anonymous_when_no_files(tmp_path: Path) -> None:
    assert find_credentials("ghcr.io", {}, tmp_path) is None


def test_spin_file_in_default_location_wins_over_docker(tmp_path: Path) -> None:
    write(tmp_path / ".config/fermyon/registry-auth.json", {"auths": {"ghcr.io": b64("spin:one")}})
    write(tmp_path / ".docker/config.json", {"auths": {"ghcr.io": {"auth": b64("docker:two")}}})
    creds = find_credentials("ghcr.io", {}, tmp_path)
    assert creds is not None
    assert (creds.username, creds.password) == ("spin", "one")
    assert creds.source.endswith("fermyon/registry-auth.json")


def test_xdg_and_docker_config_env(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "DOCKER_CONFIG": str(tmp_path / "dc")}
    write(tmp_path / "dc/config.json", {"auths": {"r.example:5000": {"auth": b64("u:p:with:colons")}}})
    creds = find_credentials("r.example:5000", env, tmp_path / "home")
    assert creds is not None and (creds.username, creds.password) == ("u", "p:with:colons")
    write(tmp_path / "xdg/fermyon/registry-auth.json", {"auths": {"r.example:5000": b64("x:y")}})
    creds = find_credentials("r.example:5000", env, tmp_path / "home")
    assert creds is not None and creds.username == "x"


def test_docker_username_password_fields_and_url_keys(tmp_path: Path) -> None:
    write(tmp_path / ".docker/config.json",
          {"auths": {"https://ghcr.io/v2/": {"username": "alice", "password": "pw"}}})
    creds = find_credentials("ghcr.io", {}, tmp_path)
    assert creds is not None and (creds.username, creds.password) == ("alice", "pw")
    assert find_credentials("quay.io", {}, tmp_path) is None


def test_docker_hub_aliases(tmp_path: Path) -> None:
    write(tmp_path / ".docker/config.json",
          {"auths": {"https://index.docker.io/v1/": {"auth": b64("hub:pw")}}})
    creds = find_credentials("index.docker.io", {}, tmp_path)
    assert creds is not None and creds.username == "hub"
    assert normalize_auth_key("docker.io") == "index.docker.io"


def test_bad_spin_entry_falls_through_to_docker(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write(tmp_path / ".config/fermyon/registry-auth.json", {"auths": {"ghcr.io": b64("no-colon")}})
    write(tmp_path / ".docker/config.json", {"auths": {"ghcr.io": {"auth": b64("d:pw")}}})
    with caplog.at_level(logging.WARNING):
        creds = find_credentials("ghcr.io", {}, tmp_path)
    assert creds is not None and creds.username == "d"
    assert "not base64" in caplog.text


def test_identity_token_and_broken_json_mean_anonymous(tmp_path: Path) -> None:
    write(tmp_path / ".docker/config.json",
          {"auths": {"ghcr.io": {"auth": b64("<token>:x"), "identitytoken": "refresh-me"}}})
    assert find_credentials("ghcr.io", {}, tmp_path) is None
    (tmp_path / ".docker/config.json").write_text("{not json")
    assert find_credentials("ghcr.io", {}, tmp_path) is None


def test_secret_not_in_repr() -> None:
    creds = Credentials("alice", "hunter2", source="x")
    assert "hunter2" not in repr(creds)
    assert base64.b64decode(creds.basic_token()) == b"alice:hunter2"
