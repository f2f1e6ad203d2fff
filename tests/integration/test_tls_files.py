"""HTTPS on a real listener in this process: openssl-made CA and certificates, Python's ssl client
verifying the chain and the host name, and the certificate reloader's decisions (what a rotation,
a bad pair and a fix do), handshake by handshake."""

from __future__ import annotations

import socket
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import start_blocking_portal

from support.certs import Leaf, TestCA
from support.daemon import free_port
from tauon.errors import TauonError
from tauon.model.address import Address
from tauon.server.listener import Listener
from tauon.server.tls import CertReloader, TlsError, build_context
from tauon.settings import loop_options

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCA:
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def leaves(ca: TestCA) -> tuple[Leaf, Leaf]:
    return ca.issue("first"), ca.issue("second")


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = scope["scheme"].encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@contextmanager
def serving(reloader: CertReloader) -> Iterator[int]:
    port = free_port()
    listener = Listener(Address("127.0.0.1", port), _app, owner="app.json", drain_timeout=1, tls=reloader)
    with start_blocking_portal(backend="asyncio", backend_options=loop_options()) as portal:
        portal.start_task(listener.run)
        try:
            yield port
        finally:
            portal.call(listener.stop)


def client_context(ca: TestCA, **kw: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.cert))
    for name, value in kw.items():
        setattr(context, name, value)
    return context


def handshake(port: int, context: ssl.SSLContext, host: str = "127.0.0.1") -> tuple[str, str]:
    """(the served certificate's serial in hex, the response body) over one new verified connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        cert = tls.getpeercert()
        assert cert is not None
        tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
        return str(cert["serialNumber"]), data.partition(b"\r\n\r\n")[2].decode()


def test_https_with_a_verified_chain_and_host_name(ca: TestCA, leaves: tuple[Leaf, Leaf]) -> None:
    first, _ = leaves
    reloader = CertReloader((str(first.cert), str(first.key)), owner="app.json")
    with serving(reloader) as port:
        assert handshake(port, client_context(ca)) == (first.serial, "https")  # the ASGI scheme too
        assert handshake(port, client_context(ca), host="localhost")[0] == first.serial
        with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
            handshake(port, client_context(ca), host="example.com")
        with pytest.raises(ssl.SSLCertVerificationError):
            handshake(port, ssl.create_default_context())  # the system roots do not know this CA
        # TLS 1.2 and 1.3 only: the server itself refuses a client that would go lower.
        old = client_context(ca)
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version, old.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
        with pytest.raises(ssl.SSLError):  # uvloop closes without an alert: the client sees EOF
            handshake(port, old)
        old.maximum_version = ssl.TLSVersion.TLSv1_2  # the same client allowed 1.2 gets through
        assert handshake(port, old)[0] == first.serial
        tls12 = client_context(ca, maximum_version=ssl.TLSVersion.TLSv1_2)
        assert handshake(port, tls12)[0] == first.serial
        cbc = client_context(ca, maximum_version=ssl.TLSVersion.TLSv1_2)
        cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA")  # no AEAD: not among the modern suites offered
        with pytest.raises(ssl.SSLError):
            handshake(port, cbc)
        cbc.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256")
        assert handshake(port, cbc)[0] == first.serial
        # ALPN says HTTP/1.1 (uvicorn has no HTTP/2).
        alpn = client_context(ca)
        alpn.set_alpn_protocols(["h2", "http/1.1"])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                alpn.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "http/1.1"


def test_curl_verifies_the_chain(ca: TestCA, leaves: tuple[Leaf, Leaf]) -> None:
    first, _ = leaves
    reloader = CertReloader((str(first.cert), str(first.key)), owner="app.json")
    with serving(reloader) as port:
        ok = subprocess.run(["curl", "-sS", "--cacert", str(ca.cert), f"https://localhost:{port}/"],
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0 and ok.stdout == "https", ok.stderr
        bad = subprocess.run(["curl", "-sS", f"https://localhost:{port}/"], capture_output=True, text=True,
                             timeout=30)
        assert bad.returncode == 60, bad.stderr  # CURLE_PEER_FAILED_VERIFICATION


def test_rotation_reaches_new_handshakes_once_the_files_settle(ca: TestCA, tmp_path: Path,
                                                               leaves: tuple[Leaf, Leaf]) -> None:
    first, second = leaves
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    problems: list[str | None] = []
    reloader = CertReloader((str(cert), str(key)), owner="app.json", on_problem=problems.append)
    context = client_context(ca)
    with serving(reloader) as port:
        assert reloader.poll() is False  # nothing changed
        cert.write_bytes(second.cert.read_bytes())
        assert reloader.poll() is False  # only the certificate so far: wait for the key
        key.write_bytes(second.key.read_bytes())
        assert reloader.poll() is False  # changed since the last look: not settled yet
        assert handshake(port, context)[0] == first.serial
        assert reloader.poll() is True and reloader.reloads == 1
        assert handshake(port, context)[0] == second.serial
    assert problems == []  # the half-written state was never reported


def test_a_bad_pair_keeps_the_old_one_and_is_reported_once(ca: TestCA, tmp_path: Path,
                                                           leaves: tuple[Leaf, Leaf]) -> None:
    first, second = leaves
    cert, key = tmp_path / "fullchain.pem", tmp_path / "privkey.pem"
    cert.write_bytes(first.cert.read_bytes())
    key.write_bytes(first.key.read_bytes())
    problems: list[str | None] = []
    reloader = CertReloader((str(cert), str(key)), owner="app.json", on_problem=problems.append)
    context = client_context(ca)
    with serving(reloader) as port:
        key.write_bytes(second.key.read_bytes())  # the other certificate's key: a mismatch
        for _ in range(3):
            assert reloader.poll() is False
        assert problems == [f"app.json: field 'tls.key': {key} is not the key of the certificate in {cert} "
                            "(use the key the certificate was issued for); the previous certificate "
                            "keeps serving"]
        assert handshake(port, context)[0] == first.serial
        cert.write_bytes(second.cert.read_bytes())  # the operator fixes it
        reloader.poll()
        assert reloader.poll() is True
        assert problems[-1] is None and reloader.problem is None
        assert handshake(port, context)[0] == second.serial
        key.unlink()  # a deleted file: reported, still serving
        reloader.poll()
        reloader.poll()
        assert f"{key} does not exist" in str(problems[-1])
        assert handshake(port, context)[0] == second.serial


def _error(cert: Path, key: Path) -> TauonError:
    with pytest.raises(TlsError) as info:
        build_context(cert, key)
    return info.value


def test_errors_name_the_field_the_file_and_the_fix(tmp_path: Path, leaves: tuple[Leaf, Leaf]) -> None:
    first, second = leaves
    missing = _error(tmp_path / "nope.pem", first.key)
    assert missing.field == "tls.cert" and str(tmp_path / "nope.pem") in missing.message
    assert "relative paths resolve against the app file's directory" in str(missing.hint)
    not_pem = tmp_path / "junk.pem"
    not_pem.write_text("hello")
    assert _error(not_pem, first.key).field == "tls.cert"
    assert _error(first.cert, first.cert).field == "tls.key"  # a certificate where the key should be
    assert _error(first.cert, second.key).field == "tls.key"
    unreadable = tmp_path / "secret.pem"
    unreadable.write_bytes(first.key.read_bytes())
    unreadable.chmod(0)
    try:
        readable = unreadable.open("rb")  # root reads anything: then there is nothing to test here
        readable.close()
    except PermissionError:
        err = _error(first.cert, unreadable)
        assert err.field == "tls.key" and "permission denied" in err.message
    finally:
        unreadable.chmod(0o600)
    encrypted = tmp_path / "encrypted.pem"
    subprocess.run(["openssl", "pkey", "-in", str(first.key), "-aes256", "-passout", "pass:pw", "-out",
                    str(encrypted)], check=True, capture_output=True)
    err = _error(first.cert, encrypted)  # refused at once, never a prompt on the terminal
    assert err.field == "tls.key" and "encrypted" in err.message
