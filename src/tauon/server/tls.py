"""HTTPS for an app's listener: the certificate and key named by the app file's `tls` field, reloaded
when their content changes, without a restart and without touching established connections.

uvicorn wraps every accepted connection with the one SSLContext it was started with. That context (the
*front*) carries an SNI callback, which OpenSSL calls on every ClientHello (with or without a server
name); it hands the handshake the context built from the newest good pair. So a rotation reaches the
next handshake and nothing else.

Changes are found by polling content, not events: every `POLL_INTERVAL` seconds both files are read
through any symlinks (certbot's `live/` links, a Kubernetes Secret's `..data` swap, a plain rewrite)
and hashed. New content is loaded once it has stayed the same for one more poll (renewal tools write
the certificate and the key one after the other). A pair that does not load (unreadable, not PEM, the
key not matching the certificate) leaves the previous pair serving and is reported once, until the
files change again.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from collections.abc import Callable
from pathlib import Path

import anyio

from tauon.errors import TauonError

log = logging.getLogger("tauon.tls")

POLL_INTERVAL = 1.0
"""Seconds between content checks of the PEM files (a rotation is picked up in one to two of these)."""

CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""TLS 1.2 suites: forward secrecy and AEAD only (Mozilla's "intermediate" without DHE). TLS 1.3 suites
are OpenSSL's defaults, all of them modern."""

_PATH_HINT = "relative paths resolve against the app file's directory"
_READ_HINT = "tauon's user must be able to read it (the key may be mode 0600, owned by that user)"


class TlsError(TauonError):
    """The app's certificate or key cannot be served."""


def _refuse_password() -> str:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key and block the daemon.
    raise TlsError("is encrypted", field="tls.key",
                   hint="tauon needs an unencrypted PEM key (e.g. `openssl pkey -in key.pem -out plain.pem`)")


def _read(path: Path, field: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TlsError(f"{path} does not exist", field=field, hint=_PATH_HINT) from None
    except IsADirectoryError:
        raise TlsError(f"{path} is a directory", field=field, hint="name the PEM file itself") from None
    except PermissionError:
        raise TlsError(f"{path} cannot be read: permission denied", field=field, hint=_READ_HINT) from None
    except OSError as exc:
        raise TlsError(f"{path} cannot be read: {exc.strerror}", field=field, hint=_READ_HINT) from None


def build_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for this pair: TLS 1.2+, modern ciphers, HTTP/1.1 by ALPN. Raises TlsError
    naming the field and the file."""
    cert_pem, key_pem = _read(cert, "tls.cert"), _read(key, "tls.key")
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise TlsError(f"{cert} holds no PEM certificate", field="tls.cert",
                       hint="give the certificate chain in PEM, leaf first (certbot: fullchain.pem)")
    if b"PRIVATE KEY-----" not in key_pem:
        raise TlsError(f"{key} holds no PEM private key", field="tls.key",
                       hint="give the private key in PEM (certbot: privkey.pem)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(CIPHERS)
    context.set_alpn_protocols(["http/1.1"])  # uvicorn has no HTTP/2
    context.options |= ssl.OP_NO_RENEGOTIATION
    try:
        context.load_cert_chain(cert, key, password=_refuse_password)
    except TlsError:
        raise
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsError(f"{key} is not the key of the certificate in {cert}", field="tls.key",
                           hint="use the key the certificate was issued for") from None
        raise TlsError(f"{cert} and {key} do not load: {exc.reason or exc}", field="tls",
                       hint="check both are PEM: the certificate chain, and its unencrypted key") from None
    return context


def _fingerprint(cert: Path, key: Path) -> str:
    """What the pair holds now: a hash of both files' bytes, or why they cannot be read."""
    digest = hashlib.sha256()
    for path in (cert, key):
        try:
            data = path.read_bytes()
        except OSError as exc:
            return f"unreadable {path}: {exc!r}"
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def _ignore(problem: str | None) -> None:
    pass


class CertReloader:
    """One listener's certificate: the front context for uvicorn, and the pair currently served.

    `owner` names the app in messages; `on_problem` hears a rotation's error (None once a good pair
    loads again). Construction loads the pair and raises TlsError if it cannot be served.
    """

    def __init__(self, paths: tuple[str, str], *, owner: str,
                 on_problem: Callable[[str | None], None] = _ignore) -> None:
        self.owner = owner
        self.on_problem = on_problem
        self.problem: str | None = None
        self.reloads = 0
        """New pairs loaded since the listener started (for tests and logs)."""
        self.paths = paths
        self._current = self._load(paths)
        self.front = self._current
        self.front.sni_callback = self._pick

    @property
    def cert(self) -> Path:
        return Path(self.paths[0])

    @property
    def key(self) -> Path:
        return Path(self.paths[1])

    def _load(self, paths: tuple[str, str]) -> ssl.SSLContext:
        cert, key = Path(paths[0]), Path(paths[1])
        seen = _fingerprint(cert, key)
        try:
            context = build_context(cert, key)
        except TlsError as exc:
            raise exc.with_file(self.owner) from None
        self._seen = self._loaded = seen
        self._failed: str | None = None
        return context

    def _pick(self, conn: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        current = self._current
        if current is not context:
            conn.context = current

    def set_paths(self, paths: tuple[str, str]) -> None:
        """The app file now names other files: serve them from the next handshake. Raises TlsError
        (and keeps the old pair) if they cannot be served."""
        if paths == self.paths:
            return
        self._current = self._load(paths)
        self.paths = paths
        self._report(None)

    def poll(self) -> bool:
        """Look at the files once; load new content that has settled. True if a new pair was loaded."""
        seen = _fingerprint(self.cert, self.key)
        previous, self._seen = self._seen, seen
        if seen == self._loaded:
            self._report(None)  # back to the pair being served (a bad edit undone)
            return False
        if seen != previous or seen == self._failed:
            return False  # still being written (look again next time), or already reported
        try:
            context = build_context(self.cert, self.key)
        except TlsError as exc:
            self._failed = seen
            self._report(f"{exc.with_file(self.owner)}; the previous certificate keeps serving")
            return False
        self._current, self._loaded, self._failed = context, seen, None
        self.reloads += 1
        log.info("%s: TLS certificate reloaded from %s and %s", self.owner, self.cert, self.key)
        self._report(None)
        return True

    def _report(self, problem: str | None) -> None:
        if problem == self.problem:
            return
        self.problem = problem
        if problem is not None:
            log.error("%s", problem)
        self.on_problem(problem)

    async def watch(self) -> None:
        """Poll until cancelled (the listener's lifetime)."""
        while True:
            await anyio.sleep(POLL_INTERVAL)
            try:
                self.poll()  # two small reads; on the loop, so problems are reported from it
            except Exception:  # a bug here must not end the listener; the current pair keeps serving
                log.exception("%s: checking the TLS files failed", self.owner)
