"""Registry credentials, looked up for one registry in this order (the first source with an entry wins):

1. systemd credentials in `$CREDENTIALS_DIRECTORY` (`LoadCredential=`): `registry-auth.json` (Spin's
   format), then `docker-config.json` (Docker's config.json format, helpers included).
2. Spin: `$XDG_CONFIG_HOME/fermyon/registry-auth.json` (default `~/.config/...`).
3. Docker: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Within a Docker-format file:
   `credHelpers[host]` > `credsStore` > `auths[host]`; a helper that has nothing for the host falls
   through to `auths`.
4. Podman/skopeo: `$REGISTRY_AUTH_FILE`, else `$XDG_RUNTIME_DIR/containers/auth.json` (same format).
5. Anonymous.

`find_credentials` is a function of (host, environment mapping, home directory) plus an injectable
helper runner, so tests hand it a fake environment. Secrets never appear in messages, logs or `repr`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tauon.errors import PullError
from tauon.registry.credhelper import (
    TOKEN_USERNAME,
    HelperError,
    HelperRunner,
    SubprocessHelperRunner,
    helper_program,
    parse_helper_output,
)
from tauon.registry.reference import DOCKER_HUB_AUTH_KEY

log = logging.getLogger("tauon.registry")

# Every spelling Docker and Spin use for Docker Hub's credential key.
_HUB_KEYS = ("index.docker.io", "docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")
# What Docker hands a credential helper for Docker Hub.
HUB_SERVER_URL = "https://index.docker.io/v1/"
SYSTEMD_SPIN_FILE = "registry-auth.json"
SYSTEMD_DOCKER_FILE = "docker-config.json"

CredentialKind = Literal["basic", "identity_token", "registry_token"]
# Docker sends a registry token as-is, else exchanges an identity token, else uses the password.
_TOKEN_FIELDS: tuple[tuple[str, CredentialKind], ...] = (("registrytoken", "registry_token"),
                                                         ("identitytoken", "identity_token"))
_KIND_LABEL = {"basic": "password", "identity_token": "identity token", "registry_token": "registry token"}


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    """The password, or the identity/registry token for those kinds."""
    source: str
    """Which file or helper they came from, for error messages."""
    kind: CredentialKind = "basic"

    def basic_token(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")

    def describe(self) -> str:
        """`user 'alice' (password) from /etc/...`: safe for messages."""
        return f"user '{self.username}' ({_KIND_LABEL[self.kind]}) from {self.source}"


@dataclass(frozen=True)
class CredentialFile:
    path: Path
    format: Literal["spin", "docker"]


def spin_auth_path(env: Mapping[str, str], home: Path) -> Path:
    config_home = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config_home) / "fermyon" / "registry-auth.json"


def docker_config_path(env: Mapping[str, str], home: Path) -> Path:
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return home / ".docker" / "config.json"


def podman_auth_path(env: Mapping[str, str]) -> Path | None:
    if env.get("REGISTRY_AUTH_FILE"):
        return Path(env["REGISTRY_AUTH_FILE"])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "containers" / "auth.json"
    return None


def credential_files(env: Mapping[str, str], home: Path) -> list[CredentialFile]:
    """Every file consulted, in precedence order (whether or not it exists)."""
    files: list[CredentialFile] = []
    if env.get("CREDENTIALS_DIRECTORY"):
        systemd = Path(env["CREDENTIALS_DIRECTORY"])
        files += [CredentialFile(systemd / SYSTEMD_SPIN_FILE, "spin"),
                  CredentialFile(systemd / SYSTEMD_DOCKER_FILE, "docker")]
    files += [CredentialFile(spin_auth_path(env, home), "spin"),
              CredentialFile(docker_config_path(env, home), "docker")]
    podman = podman_auth_path(env)
    if podman is not None:
        files.append(CredentialFile(podman, "docker"))
    return files


def normalize_auth_key(key: str) -> str:
    """`https://ghcr.io/v2/` -> `ghcr.io`; every Docker Hub spelling -> `index.docker.io`."""
    text = key.strip()
    for scheme in ("https://", "http://"):
        if text.lower().startswith(scheme):
            text = text[len(scheme):]
    text = text.split("/", 1)[0].lower()
    if text in _HUB_KEYS or key in _HUB_KEYS:
        return DOCKER_HUB_AUTH_KEY
    return text


def helper_server(host: str) -> str:
    """The server name written to a helper's stdin (Docker uses the v1 URL for Docker Hub)."""
    return HUB_SERVER_URL if normalize_auth_key(host) == DOCKER_HUB_AUTH_KEY else host


def _decode_user_pass(value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, colon, password = decoded.partition(":")
    if not colon or not user:
        return None
    return user, password


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        # JSONDecodeError's text quotes no document content, only a position.
        log.warning("ignoring credentials file %s: %s", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("ignoring credentials file %s: not a JSON object", path)
        return None
    return data


def _matching(mapping: object, host: str) -> list[Any]:
    """Values whose key is `host`, then those whose key normalizes to it (URLs, Docker Hub aliases)."""
    if not isinstance(mapping, dict):
        return []
    wanted = normalize_auth_key(host)
    found = [mapping[host]] if host in mapping else []
    return found + [v for k, v in mapping.items() if k != host and normalize_auth_key(str(k)) == wanted]


def _from_spin(path: Path, host: str) -> Credentials | None:
    data = _read_json(path)
    if data is None:
        return None
    for entry in _matching(data.get("auths"), host):
        pair = _decode_user_pass(entry) if isinstance(entry, str) else None
        if pair is None:
            # Spin treats an undecodable entry as an error and falls through to the next source.
            log.warning("%s: entry for %s is not base64 'user:password'; ignoring it", path, host)
            continue
        return Credentials(pair[0], pair[1], source=str(path))
    return None


def _from_auths_entry(entry: dict[str, Any], path: Path, host: str) -> Credentials | None:
    user, password = "", None
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        pair = _decode_user_pass(auth)
        if pair is None:
            log.warning("%s: auths entry for %s has an 'auth' that is not base64 'user:password'", path, host)
        else:
            user, password = pair
    if isinstance(entry.get("username"), str) and entry["username"]:
        user = entry["username"]
        password = entry["password"] if isinstance(entry.get("password"), str) else password
    for key, kind in _TOKEN_FIELDS:
        token = entry.get(key)
        if isinstance(token, str) and token:
            return Credentials(user or TOKEN_USERNAME, token, source=str(path), kind=kind)
    if user and user != TOKEN_USERNAME and password is not None:
        return Credentials(user, password, source=str(path))
    return None


def _from_helper(name: object, how: str, path: Path, host: str, run: HelperRunner) -> Credentials | None:
    try:
        program = helper_program(name)
        source = f"credential helper {program} ({how} in {path})"
        answer = parse_helper_output(program, run(program, helper_server(host)))
    except HelperError as exc:
        raise PullError(f"credentials for registry {host}: {exc}",
                        hint=f"install the helper or fix {how} in {path}") from exc
    if answer is None:
        log.debug("%s has no credentials for %s", source, host)
        return None
    user, secret = answer
    if user == TOKEN_USERNAME:
        return Credentials(user, secret, source=source, kind="identity_token")
    return Credentials(user, secret, source=source)


def _from_docker(path: Path, host: str, run: HelperRunner) -> Credentials | None:
    data = _read_json(path)
    if data is None:
        return None
    for name in _matching(data.get("credHelpers"), host)[:1]:
        creds = _from_helper(name, f"credHelpers[{host}]", path, host, run)
        if creds is not None:
            return creds
    store = data.get("credsStore")
    if store:
        creds = _from_helper(store, "credsStore", path, host, run)
        if creds is not None:
            return creds
    for entry in _matching(data.get("auths"), host):
        if isinstance(entry, dict):
            creds = _from_auths_entry(entry, path, host)
            if creds is not None:
                return creds
    return None


def find_credentials(host: str, env: Mapping[str, str], home: Path, *,
                     run_helper: HelperRunner | None = None) -> Credentials | None:
    """Credentials for `host` (a Reference.auth_key), or None for anonymous access.

    Raises PullError when a configured credential helper is missing or fails.
    """
    run = run_helper if run_helper is not None else SubprocessHelperRunner(env)
    for file in credential_files(env, home):
        creds = _from_spin(file.path, host) if file.format == "spin" else _from_docker(file.path, host, run)
        if creds is not None:
            log.debug("registry %s: using %s", host, creds.describe())
            return creds
    return None
