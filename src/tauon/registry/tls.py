"""Which CAs a registry's certificate is checked against, and what a TLS failure means for the operator.

The trust store is resolved once per pull from the given environment mapping and passed explicitly on
every request: requests lets `REQUESTS_CA_BUNDLE` from the *process* environment override a session's
`verify`, and it ignores `SSL_CERT_FILE` altogether, so neither is left to it.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from requests.utils import DEFAULT_CA_BUNDLE_PATH

from tauon.errors import PullError

# Environment variables naming a CA bundle, in the order they are consulted.
CA_ENV_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
CA_HINT = ("if the registry uses a private CA, pass that CA's certificate (PEM) as the CA bundle "
           "(ca_bundle, or REQUESTS_CA_BUNDLE / SSL_CERT_FILE in tauon's environment)")
# OpenSSL's reasons when the peer answered a ClientHello with something that is not TLS.
_NOT_TLS = frozenset({"WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL",
                      "HTTP_REQUEST", "PACKET_LENGTH_TOO_LONG"})


@dataclass(frozen=True)
class TrustStore:
    verify: str
    """A CA file or directory, as requests' `verify` takes it."""
    origin: str | None
    """Where a custom bundle came from ("CA bundle /x", "SSL_CERT_FILE=/x"); None for the default roots."""


def resolve_trust(ca_bundle: Path | None, env: Mapping[str, str]) -> TrustStore:
    """`ca_bundle` > REQUESTS_CA_BUNDLE > CURL_CA_BUNDLE > SSL_CERT_FILE > SSL_CERT_DIR > default roots.

    A bundle replaces the default roots for this registry and its token endpoint (as curl --cacert does).
    """
    if ca_bundle is not None:
        path = Path(ca_bundle).expanduser()
        if not path.exists():
            raise PullError(f"CA bundle {path} does not exist",
                            hint="point ca_bundle at a PEM file holding the registry's CA certificate")
        return TrustStore(str(path), f"CA bundle {path}")
    for name in CA_ENV_VARS:
        value = env.get(name, "")
        if value:
            return TrustStore(value, f"{name}={value}")
    return TrustStore(DEFAULT_CA_BUNDLE_PATH, None)


@dataclass(frozen=True)
class TlsFailure:
    kind: str  # "verify" (certificate not trusted), "not-tls" (peer speaks plain HTTP), "other"
    reason: str


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it wraps (requests -> urllib3 MaxRetryError -> ssl errors)."""
    todo, seen = [exc], set()
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        todo += [a for a in getattr(item, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(item, "reason", None)
        todo += [x for x in (reason, item.__cause__, item.__context__) if isinstance(x, BaseException)]


def classify_tls_error(exc: BaseException) -> TlsFailure:
    for item in _chain(exc):
        if isinstance(item, ssl.SSLCertVerificationError):
            reason = item.verify_message or item.reason or "certificate verify failed"
            return TlsFailure("verify", str(reason))
        if isinstance(item, ssl.SSLError) and item.reason in _NOT_TLS:
            return TlsFailure("not-tls", str(item.reason).lower().replace("_", " "))
    for item in _chain(exc):
        if isinstance(item, ssl.SSLError):
            return TlsFailure("other", str(item.reason or item).lower().replace("_", " "))
    return TlsFailure("other", type(exc).__name__)


def tls_error(host: str, what: str, exc: BaseException, trust: TrustStore) -> PullError:
    """The operator-facing error for a failed TLS handshake with `host`."""
    failure = classify_tls_error(exc)
    if failure.kind == "verify":
        hint = CA_HINT if trust.origin is None else (
            f"the certificate is not signed by a CA in {trust.origin}, or does not name {host}; "
            "check the bundle and the certificate's subjectAltName")
        return PullError(f"the TLS certificate of registry {host} could not be verified ({failure.reason}) "
                         f"while fetching {what}", hint=hint)
    if failure.kind == "not-tls":
        return PullError(f"registry {host} did not answer with TLS ({failure.reason}) while fetching {what}",
                         hint="it appears to serve plain HTTP: set insecure for this app if that is intended")
    return PullError(f"TLS with registry {host} failed while fetching {what}: {failure.reason}",
                     hint="check the registry's TLS configuration and certificate")
