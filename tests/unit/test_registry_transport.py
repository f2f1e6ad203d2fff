"""Pure parts of the transport: helper output, Bearer challenges, trust-store resolution, TLS errors."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import requests

from tauon.errors import PullError
from tauon.registry.bearer import parse_challenge
from tauon.registry.credhelper import HelperError, HelperOutput, helper_program, parse_helper_output
from tauon.registry.tls import classify_tls_error, resolve_trust, tls_error


def test_helper_output() -> None:
    out = HelperOutput(0, '{"ServerURL":"ghcr.io","Username":"u","Secret":"s"}', "")
    assert parse_helper_output("h", out) == ("u", "s")
    assert parse_helper_output("h", HelperOutput(0, '{"Username":"u","Secret":""}', "")) is None
    assert parse_helper_output("h", HelperOutput(1, "credentials not found in native keychain", "")) is None
    with pytest.raises(HelperError, match="non-string"):
        parse_helper_output("h", HelperOutput(0, '{"Username":1,"Secret":"s"}', ""))


def test_failing_helper_output_that_looks_secret_is_withheld() -> None:
    with pytest.raises(HelperError) as info:
        parse_helper_output("h", HelperOutput(2, '{"Secret":"hunter2"}', ""))
    assert "hunter2" not in str(info.value) and "withheld" in str(info.value)


@pytest.mark.parametrize("name", ["desktop", "ecr-login", "pass", "osxkeychain", "gcloud"])
def test_helper_program_names(name: str) -> None:
    assert helper_program(name) == f"docker-credential-{name}"


@pytest.mark.parametrize("name", ["", "../x", "a/b", " x", 3])
def test_helper_program_rejects(name: object) -> None:
    with pytest.raises(HelperError):
        helper_program(name)


def test_parse_bearer_challenge() -> None:
    challenge = parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                                'scope="repository:a/b:pull,push"')
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.realm == "https://auth.example/token"
    assert challenge.params == {"realm": "https://auth.example/token", "service": "registry.example",
                                "scope": "repository:a/b:pull,push"}
    basic = parse_challenge('Basic realm="tauon-test"')
    assert basic is not None and basic.scheme == "basic" and basic.params == {"realm": "tauon-test"}
    spaced = parse_challenge('bearer realm="r", service=s , error="insufficient \\"scope\\""')
    assert spaced is not None
    assert spaced.params == {"realm": "r", "service": "s", "error": 'insufficient "scope"'}
    assert parse_challenge("") is None


def test_trust_resolution_order(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("pem")
    env = {"SSL_CERT_FILE": "/ssl.pem", "REQUESTS_CA_BUNDLE": "/requests.pem", "SSL_CERT_DIR": "/dir"}
    assert resolve_trust(bundle, env).verify == str(bundle)
    assert resolve_trust(bundle, env).origin == f"CA bundle {bundle}"
    assert resolve_trust(None, env).verify == "/requests.pem"
    assert resolve_trust(None, {"SSL_CERT_FILE": "/ssl.pem", "SSL_CERT_DIR": "/d"}).verify == "/ssl.pem"
    default = resolve_trust(None, {})
    assert default.origin is None and Path(default.verify).is_file()
    with pytest.raises(PullError, match=r"CA bundle .*missing\.pem does not exist"):
        resolve_trust(tmp_path / "missing.pem", {})


def wrapped(inner: BaseException) -> requests.exceptions.SSLError:
    """The nesting requests produces: SSLError(MaxRetryError(reason=SSLError(ssl error)))."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise requests.exceptions.SSLError(exc) from exc
    except requests.exceptions.SSLError as outer:
        return outer


def test_classify_tls_errors() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "unable to get local issuer certificate"
    assert classify_tls_error(wrapped(verify)).kind == "verify"
    plain = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number")
    plain.reason = "WRONG_VERSION_NUMBER"
    assert classify_tls_error(wrapped(plain)).kind == "not-tls"
    other = ssl.SSLError(1, "handshake failure")
    other.reason = "SSLV3_ALERT_HANDSHAKE_FAILURE"
    assert classify_tls_error(wrapped(other)).kind == "other"


def test_tls_error_hints() -> None:
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "self-signed certificate"
    error = tls_error("r:5000", "manifest x", wrapped(verify), resolve_trust(None, {}))
    assert "could not be verified (self-signed certificate)" in str(error)
    assert "CA bundle" in str(error) and "insecure" not in str(error)
    plain = ssl.SSLError(1, "wrong version number")
    plain.reason = "WRONG_VERSION_NUMBER"
    assert "set insecure" in str(tls_error("r:5000", "x", wrapped(plain), resolve_trust(None, {})))
