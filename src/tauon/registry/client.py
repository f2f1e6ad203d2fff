"""A small OCI distribution client: manifests and blobs with timeouts, bounded retries and auth.

oras-py supplies the bearer-token negotiation (anonymous and basic-to-bearer, `oras.auth.TokenAuth`).
Its retry decorator (about two minutes) and `pull()` (no digest checks) are deliberately not used: a
dead registry must fail a pull within seconds, and every byte is verified by the caller.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import oras.auth
import requests

from tauon.errors import DigestMismatch, PullError
from tauon.registry.auth import Credentials
from tauon.registry.reference import Reference

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX])
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
CHUNK = 64 * 1024
USER_AGENT = "tauon"
AUTH_HINT = ("add credentials for '{key}' with `spin registry login` (~/.config/fermyon/registry-auth.json) "
             "or `docker login` ($DOCKER_CONFIG/config.json)")


_STREAM_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class RegistryUnreachable(PullError):
    """Connection refused, timed out, or 429/5xx after all retries: a cached copy may be used."""


@dataclass(frozen=True)
class FetchedManifest:
    raw: bytes
    media_type: str | None
    header_digest: str | None


class _TimeoutSession(requests.Session):
    """Puts a timeout on every request, including the token requests oras makes with this session."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__()
        self._timeout = timeout
        self.headers["User-Agent"] = USER_AGENT

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return super().request(method, url, *args, **kwargs)


def _registry_error(resp: requests.Response) -> str:
    """The registry's own error text (`{"errors":[{"code","message"}]}`), else the status line."""
    with contextlib.suppress(ValueError, KeyError, TypeError, IndexError, requests.RequestException):
        first = json.loads(resp.content[:65536])["errors"][0]
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
        credentials: Credentials | None = None,
        connect_timeout: float = 3.0,
        attempts: int = 3,
        backoff: float = 0.25,
    ) -> None:
        self.ref = ref
        self.host = ref.api_host
        self._scheme = "http" if insecure else "https"
        self._base = f"{self._scheme}://{self.host}/v2/{ref.repository}"
        self._credentials = credentials
        self._attempts = max(1, attempts)
        # Retries stop once this much time went by, so a hung registry costs about one read timeout.
        self._retry_budget = timeout
        self._backoff = backoff
        self._session = _TimeoutSession((min(connect_timeout, timeout), timeout))
        self._tokens: Any = oras.auth.get_auth_backend("token", session=self._session, insecure=insecure)
        if credentials is not None:
            self._tokens.set_basic_auth(credentials.username, credentials.password)
        self._auth_header: dict[str, str] = {}

    def close(self) -> None:
        self._session.close()

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
            try:
                resp = self._session.get(url, headers={**headers, **self._auth_header}, stream=stream)
                if resp.status_code == 401 and auth_rounds < 2:
                    auth_rounds += 1
                    attempt -= 1  # an auth round trip is not a failed attempt
                    self._negotiate(resp, what)
                    resp.close()
                    continue
            except requests.exceptions.SSLError as exc:
                found = re.search(r"\[SSL: [A-Z_]+\] ([^(]+)|certificate verify failed[^(')]*", str(exc))
                reason = (found.group(1) or found.group(0)).strip() if found else type(exc).__name__
                raise PullError(
                    f"TLS with registry {self.host} failed while fetching {what}: {reason}",
                    hint="if the registry serves plain HTTP, set insecure; otherwise check its certificate",
                ) from exc
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
            return resp

    def _auth_failed(self, resp: requests.Response, what: str) -> PullError:
        verb = "denied access to" if resp.status_code == 403 else "requires authentication for"
        if self._credentials is None:
            return PullError(f"registry {self.host} {verb} {what} ({_registry_error(resp)})",
                             hint=AUTH_HINT.format(key=self.ref.auth_key))
        return PullError(
            f"registry {self.host} rejected the credentials of user '{self._credentials.username}' "
            f"from {self._credentials.source} for {what} ({_registry_error(resp)})",
            hint="check the username/password (or token) and that the account may pull this repository",
        )

    def _negotiate(self, resp: requests.Response, what: str) -> None:
        challenge = resp.headers.get("WWW-Authenticate", "")
        scheme = challenge.split(" ", 1)[0].lower()
        if scheme == "basic":
            if self._credentials is None or self._auth_header.get("Authorization", "").startswith("Basic"):
                raise self._auth_failed(resp, what)
            self._auth_header = {"Authorization": f"Basic {self._credentials.basic_token()}"}
        elif scheme == "bearer":
            refresh = bool(self._auth_header)
            headers, ok = self._tokens.authenticate_request(resp, {}, refresh=refresh)
            if not ok or "Authorization" not in headers:
                raise self._auth_failed(resp, what)
            self._auth_header = {"Authorization": str(headers["Authorization"])}
        else:
            raise self._auth_failed(resp, what)

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
                for chunk in resp.iter_content(CHUNK):
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
                    yield from resp.iter_content(CHUNK)
                except _STREAM_ERRORS as exc:
                    raise self._unreachable(what, _describe(exc)) from exc

            yield chunks()
