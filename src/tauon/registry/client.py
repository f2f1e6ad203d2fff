"""A small OCI distribution client: manifests and blobs with timeouts, bounded retries and auth.

Not oras-py: its retry decorator takes about two minutes, its `pull()` checks no digests, and its token
flow knows neither identity tokens nor registry tokens. A dead registry must fail a pull within seconds
(the supervisor then keeps the last good generation), and every byte is verified by the caller.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import requests
import requests.adapters
import urllib3

from tauon import boundedjson
from tauon.errors import DigestMismatch, PullError
from tauon.registry.auth import Credentials
from tauon.registry.bearer import (
    PlainHttpRealm,
    TokenEndpointDown,
    TokenRefused,
    fetch_token,
    parse_challenge,
)
from tauon.registry.budget import PullBudget
from tauon.registry.reference import Reference
from tauon.registry.tls import TrustStore, resolve_trust, tls_error

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX])
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
CHUNK = 64 * 1024
USER_AGENT = "tauon"
AUTH_HINT = ("add credentials for '{key}': a systemd credential ($CREDENTIALS_DIRECTORY/registry-auth.json "
             "or docker-config.json), `spin registry login` (~/.config/fermyon/registry-auth.json), "
             "`docker login` ($DOCKER_CONFIG/config.json) or `podman login` ($REGISTRY_AUTH_FILE)")
# What Go's net/http answers when plain HTTP reaches its TLS listener.
_HTTP_TO_HTTPS = "http request to an https server"


_STREAM_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
CredentialSource = Credentials | None | Callable[[], Credentials | None]


class RegistryUnreachable(PullError):
    """Connection refused, timed out, or 429/5xx after all retries: a cached copy may be used."""


@dataclass(frozen=True)
class FetchedManifest:
    raw: bytes
    media_type: str | None
    header_digest: str | None


class _SharedAdapter(requests.adapters.HTTPAdapter):
    """The process's connection pools, shared by every pull's session: kept-alive connections to each
    registry (and token server) instead of a new pool and connection per pull, which were a tenth of
    the daemon's samples in a warm restart of 1,000 apps from one registry. Pools are keyed by host
    and TLS settings (requests' pool key), and credentials go per request, never per connection."""

    def close(self) -> None:
        pass  # it lives as long as the process: a session closing must not close the others' pools


_ADAPTER = _SharedAdapter(pool_connections=32, pool_maxsize=8)


class _TimeoutSession(requests.Session):
    """Puts a timeout and the trust store on every request, token requests included."""

    def __init__(self, timeout: tuple[float, float], verify: str) -> None:
        super().__init__()
        self.mount("https://", _ADAPTER)
        self.mount("http://", _ADAPTER)
        self._timeout = timeout
        self._verify = verify
        self.headers["User-Agent"] = USER_AGENT

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        # Per request, not `self.verify`: requests lets the process's REQUESTS_CA_BUNDLE override a
        # session-level setting, and the trust store was already resolved from the pull's environment.
        kwargs.setdefault("verify", self._verify)
        # A no-op auth keeps requests from adding ~/.netrc credentials over our Authorization header.
        kwargs.setdefault("auth", _no_auth)
        return super().request(method, url, *args, **kwargs)


def _no_auth(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def _registry_error(resp: requests.Response) -> str:
    """The registry's own error text (`{"errors":[{"code","message"}]}`), else the status line."""
    with contextlib.suppress(ValueError, KeyError, TypeError, IndexError, requests.RequestException):
        first = boundedjson.loads(resp.content[:65536])["errors"][0]
        return f"HTTP {resp.status_code} {first.get('code', '')}: {first.get('message', '')}".strip()
    return f"HTTP {resp.status_code} {resp.reason or ''}".strip()


def _describe(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host",
                   "Temporary failure in name resolution", "Connection reset"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


class RegistryClient:
    def __init__(
        self,
        ref: Reference,
        *,
        insecure: bool = False,
        timeout: float = 10.0,
        credentials: CredentialSource = None,
        trust: TrustStore | None = None,
        connect_timeout: float = 3.0,
        attempts: int = 3,
        backoff: float = 0.25,
        budget: PullBudget | None = None,
    ) -> None:
        """`credentials` may be a callable: it is then called once, on the first challenge, so a public
        image never runs a credential helper."""
        self.ref = ref
        self.host = ref.api_host
        self._insecure = insecure
        self._scheme = "http" if insecure else "https"
        self._base = f"{self._scheme}://{self.host}/v2/{ref.repository}"
        self._lookup = credentials if callable(credentials) else None
        self._credentials = None if callable(credentials) else credentials
        self._attempts = max(1, attempts)
        # Retries stop once this much time went by, so a hung registry costs about one read timeout.
        self._retry_budget = timeout
        self._backoff = backoff
        self._trust = trust if trust is not None else resolve_trust(None, {})
        self._session = _TimeoutSession((min(connect_timeout, timeout), timeout), self._trust.verify)
        self._timeouts = (min(connect_timeout, timeout), timeout)
        self._auth_header: dict[str, str] = {}
        self.budget = budget if budget is not None else PullBudget(24 * 3600.0)

    def close(self) -> None:
        self._session.close()

    def _creds(self) -> Credentials | None:
        if self._lookup is not None:
            self._credentials, self._lookup = self._lookup(), None
        return self._credentials

    # -- transport -------------------------------------------------------------------------------

    def _unreachable(self, what: str, reason: str) -> RegistryUnreachable:
        hint = "check that the registry is running and reachable from this host"
        if self._scheme == "https":
            hint += "; set insecure if it serves plain HTTP"
        return RegistryUnreachable(f"registry {self.host} unreachable while fetching {what}: {reason}",
                                   hint=hint)

    def _sleep_before_retry(self, attempt: int, resp: requests.Response | None = None) -> None:
        delay = self._backoff * (2 ** (attempt - 1))
        retry_after = resp.headers.get("Retry-After", "") if resp is not None else ""
        if retry_after.strip().isdigit():
            delay = float(retry_after)
        # Capped: a pull must fail (or fall back to the cache) within seconds, not wait on the registry.
        time.sleep(min(max(delay, 0.0), 2.0))

    def _send(self, url: str, *, what: str, headers: dict[str, str], stream: bool) -> requests.Response:
        attempt = 0
        auth_rounds = 0
        started = time.monotonic()
        while True:
            attempt += 1
            self.budget.check(what)
            connect, read = self._timeouts
            read = max(0.1, min(read, self.budget.remaining()))
            try:
                resp = self._session.get(url, headers={**headers, **self._auth_header}, stream=stream,
                                         timeout=(min(connect, read), read))
                if resp.status_code == 401 and auth_rounds < 2:
                    auth_rounds += 1
                    attempt -= 1  # an auth round trip is not a failed attempt
                    self._negotiate(resp, what)
                    resp.close()
                    continue
            except requests.exceptions.SSLError as exc:
                raise tls_error(self.host, what, exc, self._trust) from exc
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt < self._attempts and time.monotonic() - started < self._retry_budget:
                    self._sleep_before_retry(attempt)
                    continue
                raise self._unreachable(what, _describe(exc)) from exc
            if resp.status_code == 429 or resp.status_code >= 500:
                if attempt < self._attempts and time.monotonic() - started < self._retry_budget:
                    resp.close()
                    self._sleep_before_retry(attempt, resp)
                    continue
                raise self._unreachable(what, _registry_error(resp))
            if resp.status_code in (401, 403):
                raise self._auth_failed(resp, what)
            if resp.status_code == 400 and self._insecure and _HTTP_TO_HTTPS in resp.text[:512].lower():
                raise PullError(f"registry {self.host} serves HTTPS, but insecure (plain HTTP) is set for "
                                f"{what}", hint="unset insecure; for a private CA pass its CA bundle")
            return resp

    def _auth_failed(self, resp: requests.Response, what: str, detail: str | None = None) -> PullError:
        detail = detail or _registry_error(resp)
        creds = self._credentials
        if creds is None:
            verb = "denied access to" if resp.status_code == 403 else "requires authentication for"
            return PullError(f"registry {self.host} {verb} {what} ({detail})",
                             hint=AUTH_HINT.format(key=self.ref.auth_key))
        if resp.status_code == 403:
            return PullError(f"registry {self.host} denied {creds.describe()} access to {what} ({detail})",
                             hint="check that the account may pull this repository")
        secret = {"basic": "username and password", "identity_token": "identity token (log in again)",
                  "registry_token": "registry token (it may have expired)"}[creds.kind]
        return PullError(f"registry {self.host} refused credentials for {creds.describe()} while fetching "
                         f"{what} ({detail})",
                         hint=f"check the {secret} and that the account may pull this repository")

    def _negotiate(self, resp: requests.Response, what: str) -> None:
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        creds = self._creds()
        sent = self._auth_header.get("Authorization", "")
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            raise self._auth_failed(resp, what)
        if challenge.scheme == "basic":
            if creds is not None and creds.kind != "basic":
                raise PullError(f"registry {self.host} asks for a username and password, but "
                                f"{creds.describe()} is a token", hint="store a username and password for it")
            if creds is None or sent.startswith("Basic"):
                raise self._auth_failed(resp, what)
            self._auth_header = {"Authorization": f"Basic {creds.basic_token()}"}
            return
        if creds is not None and creds.kind == "registry_token":
            if sent:
                raise self._auth_failed(resp, what)
            self._auth_header = {"Authorization": f"Bearer {creds.password}"}
            return
        try:
            token = fetch_token(self._session, challenge, creds, plain_http_ok=self._insecure)
        except TokenRefused as exc:
            raise self._auth_failed(resp, what, exc.detail) from exc
        except TokenEndpointDown as exc:
            raise self._unreachable(f"a token for {what}", str(exc)) from exc
        except PlainHttpRealm as exc:
            assert creds is not None
            raise PullError(f"registry {self.host} sends clients to the plain-HTTP token endpoint {exc}; "
                            f"refusing to send {creds.describe()} unencrypted",
                            hint="configure the registry's token realm with an https:// URL") from exc
        except requests.exceptions.SSLError as exc:
            realm_host = challenge.realm.split("://", 1)[-1].split("/", 1)[0]
            raise tls_error(realm_host, f"a token for {what}", exc, self._trust) from exc
        self._auth_header = {"Authorization": f"Bearer {token}"}

    def _body(self, resp: requests.Response, what: str) -> Iterator[bytes]:
        """The response body as it arrives (read1: whatever came, not CHUNK-sized reads that a
        dribbling registry never fills), metered by the pull's budget, which also cuts a read still
        blocked at the deadline."""
        raw = resp.raw
        with self.budget.cutting(resp):
            def arriving() -> Iterator[bytes]:
                while chunk := raw.read1(CHUNK, decode_content=True):
                    yield chunk

            try:
                yield from self.budget.metered(arriving(), what)
            except (*_STREAM_ERRORS, urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
                # raw reads raise urllib3's errors (and a closed file's) where iter_content would
                # raise requests': past the deadline say so, else the registry is unreachable
                self.budget.check(what)
                raise self._unreachable(what, type(exc).__name__) from exc

    # -- API -------------------------------------------------------------------------------------

    def get_manifest(self, target: str) -> FetchedManifest:
        """GET /v2/<repo>/manifests/<tag|digest>; the caller verifies the digest."""
        what = f"manifest {self.ref.registry}/{self.ref.repository}:{target}"
        if ":" in target:
            what = f"manifest {self.ref.registry}/{self.ref.repository}@{target}"
        resp = self._send(f"{self._base}/manifests/{target}", what=what,
                          headers={"Accept": MANIFEST_ACCEPT}, stream=True)
        with resp:
            if resp.status_code == 404:
                raise PullError(f"{what} not found in registry {self.host} ({_registry_error(resp)})",
                                hint="check the repository name and the tag or digest")
            if resp.status_code != 200:
                raise PullError(f"registry {self.host} refused {what}: {_registry_error(resp)}")
            body = bytearray()
            try:
                for chunk in self._body(resp, what):
                    body += chunk
                    if len(body) > MAX_MANIFEST_BYTES:
                        raise PullError(f"{what} is larger than {MAX_MANIFEST_BYTES} bytes; refusing it")
            except _STREAM_ERRORS as exc:
                raise self._unreachable(what, _describe(exc)) from exc
            media_type = resp.headers.get("Content-Type", "").split(";", 1)[0].strip() or None
            return FetchedManifest(bytes(body), media_type, resp.headers.get("Docker-Content-Digest"))

    @contextlib.contextmanager
    def open_blob(self, digest: str) -> Iterator[Iterator[bytes]]:
        """GET /v2/<repo>/blobs/<digest> and yield its chunks. A connection lost mid-stream raises
        RegistryUnreachable; the caller hashes the chunks and may retry the whole blob."""
        what = f"blob {digest} of {self.ref.registry}/{self.ref.repository}"
        resp = self._send(f"{self._base}/blobs/{digest}", what=what, headers={}, stream=True)
        with resp:
            if resp.status_code == 404:
                raise PullError(f"{what} is missing from registry {self.host} ({_registry_error(resp)})",
                                hint="the image was deleted or pushed incompletely; re-push it")
            if resp.status_code != 200:
                raise PullError(f"registry {self.host} refused {what}: {_registry_error(resp)}")
            sent = resp.headers.get("Docker-Content-Digest")
            if sent and sent != digest:
                raise DigestMismatch(f"{what}: registry says its digest is {sent}")

            def chunks() -> Iterator[bytes]:
                try:
                    yield from self._body(resp, what)
                except _STREAM_ERRORS as exc:
                    raise self._unreachable(what, _describe(exc)) from exc

            yield chunks()
