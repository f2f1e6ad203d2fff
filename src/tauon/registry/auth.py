"""Registry credentials: Spin's registry-auth.json first, then Docker's config.json, else anonymous.

`find_credentials` only reads the two JSON files it derives from the given environment and home
directory, so tests hand it a fake environment. Secrets never appear in messages or `repr`.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tauon.registry.reference import DOCKER_HUB_AUTH_KEY

log = logging.getLogger("tauon.registry")

# Every spelling Docker and Spin use for Docker Hub's credential key.
_HUB_KEYS = ("index.docker.io", "docker.io", "registry-1.docker.io", "https://index.docker.io/v1/")


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)
    source: str  # which file they came from, for error messages

    def basic_token(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode("ascii")


def spin_auth_path(env: Mapping[str, str], home: Path) -> Path:
    config_home = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    return Path(config_home) / "fermyon" / "registry-auth.json"


def docker_config_path(env: Mapping[str, str], home: Path) -> Path:
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return home / ".docker" / "config.json"


def normalize_auth_key(key: str) -> str:
    """`https://ghcr.io/v2/` -> `ghcr.io`; every Docker Hub spelling -> `index.docker.io`."""
    text = key.strip()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme):]
    text = text.split("/", 1)[0].lower()
    if text in _HUB_KEYS or key in _HUB_KEYS:
        return DOCKER_HUB_AUTH_KEY
    return text


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
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        log.warning("ignoring credentials file %s: %s", path, exc)
        return None
    if not isinstance(data, dict):
        log.warning("ignoring credentials file %s: not a JSON object", path)
        return None
    return data


def _matching_entries(auths: object, host: str) -> list[object]:
    if not isinstance(auths, dict):
        return []
    wanted = normalize_auth_key(host)
    # Exact key first, then keys that normalize to the same host (URLs, Docker Hub aliases).
    entries = [auths[host]] if host in auths else []
    entries += [v for k, v in auths.items() if k != host and normalize_auth_key(str(k)) == wanted]
    return entries


def _from_spin(path: Path, host: str) -> Credentials | None:
    data = _read_json(path)
    if data is None:
        return None
    for entry in _matching_entries(data.get("auths"), host):
        pair = _decode_user_pass(entry) if isinstance(entry, str) else None
        if pair is None:
            # Spin treats an undecodable entry as an error and falls through to Docker's config.
            log.warning("%s: entry for %s is not base64 'user:password'; ignoring it", path, host)
            continue
        return Credentials(pair[0], pair[1], source=str(path))
    return None


def _from_docker(path: Path, host: str) -> Credentials | None:
    data = _read_json(path)
    if data is None:
        return None
    for entry in _matching_entries(data.get("auths"), host):
        if not isinstance(entry, dict):
            continue
        auth = entry.get("auth")
        if isinstance(auth, str) and auth:
            pair = _decode_user_pass(auth)
            if pair is not None and pair[0] != "<token>":
                return Credentials(pair[0], pair[1], source=str(path))
        user, password = entry.get("username"), entry.get("password")
        if isinstance(user, str) and user and user != "<token>" and isinstance(password, str):
            return Credentials(user, password, source=str(path))
        if entry.get("identitytoken"):
            # Like Spin, identity tokens are not supported; fall back to anonymous.
            log.info("%s: identity token for %s is not supported; pulling anonymously", path, host)
    helpers = data.get("credHelpers")
    if data.get("credsStore") or (isinstance(helpers, dict) and helpers):
        log.info("%s: credential helpers are not supported yet; using only 'auths'", path)
    return None


def find_credentials(host: str, env: Mapping[str, str], home: Path) -> Credentials | None:
    """Credentials for `host` (a Reference.auth_key), or None for anonymous access."""
    spin = _from_spin(spin_auth_path(env, home), host)
    if spin is not None:
        return spin
    return _from_docker(docker_config_path(env, home), host)
