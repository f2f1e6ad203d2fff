"""The registry token flow (distribution's token spec): read the `WWW-Authenticate: Bearer` challenge,
then get a token from its realm: anonymously, with HTTP basic auth, or by exchanging an identity
token (an OAuth2 refresh token) with a `grant_type=refresh_token` POST.

Secrets travel only in `Authorization` headers and POST bodies, never in a URL, so urllib3's debug log
(which prints request lines) cannot leak them.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field

import requests

from tauon import boundedjson
from tauon.registry.auth import Credentials

CLIENT_ID = "tauon"
_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lowercase: "basic" or "bearer"
    params: dict[str, str] = field(default_factory=dict)

    @property
    def realm(self) -> str:
        return self.params.get("realm", "")


def parse_challenge(header: str) -> Challenge | None:
    """`Bearer realm="https://x/token",service="x",scope="repository:a/b:pull"` -> Challenge."""
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        found = _PARAM.match(rest, pos)
        if found is None or found.end() == pos:
            break
        quoted, bare = found.group(2), found.group(3)
        params[found.group(1).lower()] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        pos = found.end()
    return Challenge(scheme.lower(), params)


class TokenRefused(Exception):
    """The token endpoint answered 4xx (or no token). `detail` holds status lines, never a secret."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TokenEndpointDown(Exception):
    """The token endpoint answered 429/5xx: treated like an unreachable registry."""


class PlainHttpRealm(Exception):
    """Credentials would be sent to a plain-HTTP token endpoint of a TLS registry."""


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")


def _status(resp: requests.Response) -> str:
    return f"HTTP {resp.status_code} {resp.reason or ''}".strip()


def _token_from(resp: requests.Response, how: str) -> str:
    if resp.status_code == 429 or resp.status_code >= 500:
        raise TokenEndpointDown(f"token endpoint {how}: {_status(resp)}")
    if resp.status_code != 200:
        raise TokenRefused(f"token endpoint {how}: {_status(resp)}")
    try:
        doc = boundedjson.loads(resp.content[:1024 * 1024])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TokenRefused(f"token endpoint {how}: answer is not JSON") from exc
    token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
    if not isinstance(token, str) or not token:
        raise TokenRefused(f"token endpoint {how}: answer holds no token")
    return token


def fetch_token(session: requests.Session, challenge: Challenge, creds: Credentials | None, *,
                plain_http_ok: bool) -> str:
    """A bearer token for the challenge's service and scope. Raises TokenRefused, TokenEndpointDown,
    PlainHttpRealm, or a requests exception (the caller retries and maps those)."""
    realm = challenge.realm
    if not realm.startswith(("https://", "http://")):
        raise TokenRefused(f"the Bearer challenge has no usable realm ({realm!r})")
    if creds is not None and realm.startswith("http://") and not plain_http_ok:
        raise PlainHttpRealm(realm)
    params = {k: challenge.params[k] for k in ("service", "scope") if challenge.params.get(k)}
    headers = {"Accept": "application/json"}
    if creds is None:
        with session.get(realm, params=params, headers=headers) as resp:
            return _token_from(resp, "GET")
    basic = {**headers, "Authorization": _basic(creds.username, creds.password)}
    if creds.kind == "identity_token":
        form = {"grant_type": "refresh_token", "refresh_token": creds.password, "client_id": CLIENT_ID,
                **params}
        with session.post(realm, data=form, headers=headers) as resp:
            if resp.status_code == 200 or resp.status_code == 429 or resp.status_code >= 500:
                return _token_from(resp, "POST refresh_token")
            refused = _status(resp)
        # Registries without the OAuth2 POST take the identity token as a basic-auth password.
        try:
            with session.get(realm, params=params, headers=basic) as resp:
                return _token_from(resp, "GET")
        except TokenRefused as exc:
            raise TokenRefused(f"token endpoint POST refresh_token: {refused}; {exc.detail}") from exc
    with session.get(realm, params=params, headers=basic) as resp:
        return _token_from(resp, "GET")
