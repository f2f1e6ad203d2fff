"""Production credential sources against a real docker-registry: a credential helper (a script the test
puts on PATH: the one fake, standing in for a keychain), identity-token exchange, registry tokens,
$REGISTRY_AUTH_FILE, $CREDENTIALS_DIRECTORY, and no secret in any log line or error."""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.registry import REGISTRY_PASSWORD, REGISTRY_USER, RegistryServer, TokenServer, run_registry
from support.spinpush import SpinAppSpec, SpinComponent, build_artifact, push, tiny_wasm
from tauon.errors import PullError
from tauon.registry import pull_app
from tauon.registry.credhelper import HelperError, SubprocessHelperRunner

pytestmark = pytest.mark.integration

HELPER = """#!/bin/sh
# docker-credential-tauontest: answers `get` from $TAUONTEST_ANSWER, logs the server it was asked for.
[ "$1" = get ] || exit 2
read -r server
printf '%s\\n' "$server" >> "$TAUONTEST_LOG"
case "$TAUONTEST_MODE" in
  sleep) exec sleep 30 ;;
  fail) echo "vault is sealed" >&2; exit 4 ;;
  none) echo "credentials not found in native keychain"; exit 1 ;;
esac
cat "$TAUONTEST_ANSWER"
"""
REFRESH_TOKEN = "refresh-4f1c9e-identity"
GOOD_AUTH = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def web_app(name: str) -> SpinAppSpec:
    component = SpinComponent("web", tiny_wasm(name), files={"a.txt": b"x" * 300})
    return SpinAppSpec(name=name, components=[component],
                       triggers=[{"route": "/...", "component": "web"}])


class Helper:
    """The helper script on a private PATH, plus the environment a pull needs to find it."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir(parents=True)
        script = self.bin / "docker-credential-tauontest"
        script.write_text(HELPER)
        script.chmod(0o755)
        self.log, self.answer, self.docker = root / "helper.log", root / "answer.json", root / "docker"
        self.docker.mkdir()
        self.log.touch()
        self.env = {"PATH": f"{self.bin}:{os.environ.get('PATH', '/usr/bin:/bin')}",
                    "TAUONTEST_LOG": str(self.log), "TAUONTEST_ANSWER": str(self.answer),
                    "TAUONTEST_MODE": "", "DOCKER_CONFIG": str(self.docker)}

    def config(self, doc: object) -> Path:
        path = self.docker / "config.json"
        path.write_text(json.dumps(doc))
        return path

    def answers(self, user: str, secret: str) -> None:
        self.answer.write_text(json.dumps({"ServerURL": "x", "Username": user, "Secret": secret}))

    @property
    def asked(self) -> list[str]:
        return self.log.read_text().splitlines()


@pytest.fixture
def helper(tmp_path: Path) -> Helper:
    return Helper(tmp_path / "helper")


@pytest.fixture(scope="module")
def private_ref(auth_registry: RegistryServer) -> str:
    push(build_artifact(web_app("creds")), auth_registry.host, "tests/creds", "v1",
         auth=(REGISTRY_USER, REGISTRY_PASSWORD))
    return f"{auth_registry.host}/tests/creds:v1"


@pytest.fixture(scope="module")
def token_registry(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[RegistryServer, TokenServer]]:
    """A Bearer-token registry over the anonymous registry's storage; its token server knows
    REFRESH_TOKEN (POST grant and basic-auth password)."""
    push(build_artifact(web_app("tokened")), registry.host, "tests/tokened", "v1")
    root = tmp_path_factory.mktemp("token-registry")
    with TokenServer(root / "token", refresh_token=REFRESH_TOKEN) as tokens, \
            run_registry(root / "server", token=tokens, storage=registry.storage) as server:
        yield server, tokens


def pull(ref: str, tmp_path: Path, env: dict[str, str], **kwargs: object) -> object:
    return pull_app(ref, base_dir=tmp_path, cache_dir=tmp_path / f"c{time.monotonic_ns()}", insecure=True,
                    env=env, home=tmp_path / "home", **kwargs)  # type: ignore[arg-type]


def test_cred_helpers_entry(private_ref: str, auth_registry: RegistryServer, helper: Helper,
                            tmp_path: Path) -> None:
    helper.config({"credHelpers": {auth_registry.host: "tauontest"},
                   "auths": {auth_registry.host: {"auth": b64(f"{REGISTRY_USER}:wrong")}}})
    helper.answers(REGISTRY_USER, REGISTRY_PASSWORD)
    pull(private_ref, tmp_path, helper.env)
    assert helper.asked == [auth_registry.host]  # asked once for the whole pull


def test_creds_store_with_wrong_password(private_ref: str, auth_registry: RegistryServer, helper: Helper,
                                         tmp_path: Path) -> None:
    config = helper.config({"credsStore": "tauontest"})
    helper.answers(REGISTRY_USER, "hunter2-wrong")
    with pytest.raises(PullError) as info:
        pull(private_ref, tmp_path, helper.env)
    message = str(info.value)
    assert (f"registry {auth_registry.host} refused credentials for user '{REGISTRY_USER}' (password) from "
            f"credential helper docker-credential-tauontest (credsStore in {config})") in message
    assert "hunter2" not in message


def test_helper_without_entry_falls_through_to_auths(private_ref: str, auth_registry: RegistryServer,
                                                     helper: Helper, tmp_path: Path) -> None:
    helper.config({"credsStore": "tauontest",
                   "auths": {f"https://{auth_registry.host}/v2/": {"auth": GOOD_AUTH}}})
    helper.env["TAUONTEST_MODE"] = "none"
    pull(private_ref, tmp_path, helper.env)
    assert helper.asked == [auth_registry.host]


@pytest.mark.parametrize(("mode", "store", "expected"), [
    ("fail", "tauontest", "docker-credential-tauontest get exited with status 4: vault is sealed"),
    ("", "absent", "docker-credential-absent is not on PATH"),
])
def test_broken_helper_is_named(private_ref: str, auth_registry: RegistryServer, helper: Helper,
                                tmp_path: Path, mode: str, store: str, expected: str) -> None:
    config = helper.config({"credsStore": store})
    helper.env["TAUONTEST_MODE"] = mode
    with pytest.raises(PullError) as info:
        pull(private_ref, tmp_path, helper.env)
    assert f"credentials for registry {auth_registry.host}: {expected}" in str(info.value)
    assert str(config) in str(info.value)


def test_public_image_never_runs_the_helper(registry: RegistryServer, helper: Helper, tmp_path: Path) -> None:
    push(build_artifact(web_app("public")), registry.host, "tests/public", "v1")
    helper.config({"credsStore": "absent"})  # a stale credsStore must not break anonymous pulls
    pull(f"{registry.host}/tests/public:v1", tmp_path, helper.env)


def test_helper_timeout(helper: Helper) -> None:
    helper.env["TAUONTEST_MODE"] = "sleep"
    started = time.monotonic()
    with pytest.raises(HelperError, match=r"docker-credential-tauontest did not answer within 0.5s"):
        SubprocessHelperRunner(helper.env, timeout=0.5)("docker-credential-tauontest", "r.example")
    assert time.monotonic() - started < 3


def test_identity_token_from_helper_is_exchanged_by_post(
        token_registry: tuple[RegistryServer, TokenServer], helper: Helper, tmp_path: Path) -> None:
    server, tokens = token_registry
    helper.config({"credHelpers": {server.host: "tauontest"}})
    helper.answers("<token>", REFRESH_TOKEN)
    tokens.requests.clear()
    pull(f"{server.host}/tests/tokened:v1", tmp_path, helper.env)
    assert tokens.requests == [{"method": ["POST"], "grant_type": ["refresh_token"],
                                "refresh_token": [REFRESH_TOKEN], "client_id": ["tauon"],
                                "service": [tokens.service], "scope": ["repository:tests/tokened:pull"]}]


def test_identity_token_falls_back_to_get(token_registry: tuple[RegistryServer, TokenServer],
                                          helper: Helper, tmp_path: Path) -> None:
    server, tokens = token_registry
    helper.config({"auths": {server.host: {"auth": b64("bob:"), "identitytoken": REFRESH_TOKEN}}})
    tokens.requests.clear()
    tokens.accept_post = False
    try:
        pull(f"{server.host}/tests/tokened:v1", tmp_path, helper.env)
    finally:
        tokens.accept_post = True
    assert [r["method"] for r in tokens.requests] == [["POST"], ["GET"]]


def test_wrong_identity_token(token_registry: tuple[RegistryServer, TokenServer], helper: Helper,
                              tmp_path: Path) -> None:
    server, _ = token_registry
    config = helper.config({"auths": {server.host: {"identitytoken": "expired-refresh"}}})
    with pytest.raises(PullError) as info:
        pull(f"{server.host}/tests/tokened:v1", tmp_path, helper.env)
    message = str(info.value)
    assert f"refused credentials for user '<token>' (identity token) from {config}" in message
    assert "POST refresh_token: HTTP 400" in message and "GET: HTTP 401" in message
    assert "expired-refresh" not in message


def test_registry_token_is_sent_as_is(token_registry: tuple[RegistryServer, TokenServer], helper: Helper,
                                      tmp_path: Path) -> None:
    server, tokens = token_registry
    helper.config({"auths": {server.host: {"registrytoken": tokens.sign("repository:tests/tokened:pull")}}})
    tokens.requests.clear()
    pull(f"{server.host}/tests/tokened:v1", tmp_path, helper.env)
    assert tokens.requests == []  # no exchange: the registry accepted the stored token directly
    helper.config({"auths": {server.host: {"registrytoken": tokens.sign("repository:tests/other:pull")}}})
    with pytest.raises(PullError, match=r"refused credentials .*\(registry token\).*may have expired"):
        pull(f"{server.host}/tests/tokened:v1", tmp_path, helper.env)


def test_registry_auth_file(private_ref: str, auth_registry: RegistryServer, tmp_path: Path) -> None:
    auth_file = tmp_path / "podman-auth.json"
    auth_file.write_text(json.dumps({"auths": {auth_registry.host: {"auth": GOOD_AUTH}}}))
    pull(private_ref, tmp_path, {"REGISTRY_AUTH_FILE": str(auth_file)})
    run_dir = tmp_path / "run"
    (run_dir / "containers").mkdir(parents=True)
    auth_file.rename(run_dir / "containers" / "auth.json")
    pull(private_ref, tmp_path, {"XDG_RUNTIME_DIR": str(run_dir)})


@pytest.mark.parametrize("name", ["registry-auth.json", "docker-config.json"])
def test_systemd_credential_wins_over_home_files(private_ref: str, auth_registry: RegistryServer,
                                                 tmp_path: Path, name: str) -> None:
    creds_dir = tmp_path / "credentials"
    creds_dir.mkdir()
    pair = b64(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}")
    entry: object = pair if name == "registry-auth.json" else {"auth": pair}
    (creds_dir / name).write_text(json.dumps({"auths": {auth_registry.host: entry}}))
    # Home-dir files with a wrong password: the service credential must be used instead.
    home_docker = tmp_path / "home" / ".docker"
    home_docker.mkdir(parents=True)
    (home_docker / "config.json").write_text(json.dumps(
        {"auths": {auth_registry.host: {"auth": b64(f"{REGISTRY_USER}:wrong")}}}))
    pull(private_ref, tmp_path, {"CREDENTIALS_DIRECTORY": str(creds_dir)})
    with pytest.raises(PullError, match="refused credentials"):
        pull(private_ref, tmp_path, {})


def test_no_secret_in_logs_or_errors(private_ref: str, token_registry: tuple[RegistryServer, TokenServer],
                                     helper: Helper, tmp_path: Path,
                                     caplog: pytest.LogCaptureFixture) -> None:
    server, tokens = token_registry
    issued_before = len(tokens.issued)
    wrong_password = "hunter2-not-it"
    caplog.set_level(logging.DEBUG, logger="tauon")
    caplog.set_level(logging.DEBUG, logger="urllib3")
    errors: list[str] = []
    host = private_ref.split("/", 1)[0]
    # Basic auth: failing, then succeeding.
    helper.config({"auths": {host: {"username": REGISTRY_USER, "password": wrong_password}}})
    with pytest.raises(PullError) as info:
        pull(private_ref, tmp_path, helper.env)
    errors.append(str(info.value))
    helper.config({"auths": {host: {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}}})
    pull(private_ref, tmp_path, helper.env)
    # Identity token through a helper: failing, then succeeding (access tokens are secrets too).
    helper.config({"credsStore": "tauontest"})
    helper.answers("<token>", "refresh-wrong-0xdead")
    with pytest.raises(PullError) as info:
        pull(f"{server.host}/tests/tokened:v1", tmp_path, helper.env)
    errors.append(str(info.value))
    helper.answers("<token>", REFRESH_TOKEN)
    pull(f"{server.host}/tests/tokened:v1", tmp_path, helper.env)

    assert any(r.name.startswith("urllib3") for r in caplog.records), "urllib3 debug logging was not captured"
    assert any("user 'tauon'" in r.getMessage() for r in caplog.records if r.name.startswith("tauon"))
    secrets = [REGISTRY_PASSWORD, wrong_password, REFRESH_TOKEN, "refresh-wrong-0xdead",
               *tokens.issued[issued_before:]]
    secrets += [b64(f"{REGISTRY_USER}:{s}") for s in (REGISTRY_PASSWORD, wrong_password)]
    assert len(tokens.issued) > issued_before
    logged = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    for secret in secrets:
        assert secret not in logged
        for error in errors:
            assert secret not in error
