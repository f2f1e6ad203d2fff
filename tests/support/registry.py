"""A real OCI registry for tests: Debian's docker-registry (CNCF distribution 2.8.2) on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from support.ports import free_port as free_port

BINARY = "docker-registry"
REGISTRY_USER = "tauon"
REGISTRY_PASSWORD = "s3cret:with-colon!"  # the colon checks that only the first one splits user:pass
SETUP_HINT = "install it with the set-up command in README.md (apt-get install -y docker-registry)"



@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate clients must trust (PEM)
    cert: Path  # the server certificate, for IP 127.0.0.1 and DNS localhost
    key: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_tls(root: Path) -> TlsFiles:
    """A throwaway CA and a server certificate it signed, with subjectAltName IP:127.0.0.1."""
    root.mkdir(parents=True, exist_ok=True)
    ca, ca_key = root / "ca.pem", root / "ca.key"
    cert, key, csr, ext = root / "server.pem", root / "server.key", root / "server.csr", root / "server.ext"
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=tauon test CA",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
             "-keyout", str(ca_key), "-out", str(ca))
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(key),
             "-out", str(csr))
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
             "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return TlsFiles(ca=ca, cert=cert, key=key)


class RegistryServer:
    """One registry process over a storage root; `stop()`/`start()` keep the same port and data."""

    def __init__(self, root: Path, htpasswd: Path | None = None, port: int | None = None, *,
                 token: TokenServer | None = None, storage: Path | None = None,
                 tls: TlsFiles | None = None) -> None:
        binary = shutil.which(BINARY)
        if binary is None:
            raise RuntimeError(f"'{BINARY}' is not on PATH: {SETUP_HINT}")
        self.binary = binary
        self.root = root
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.storage = storage or root / "storage"
        self.config = root / "config.yml"
        self.log_path = root / "registry.log"
        self.tls = tls
        self._proc: subprocess.Popen[bytes] | None = None
        auth = ""
        if htpasswd is not None:
            auth = f"auth:\n  htpasswd:\n    realm: tauon-test\n    path: {htpasswd}\n"
        elif token is not None:
            auth = (f"auth:\n  token:\n    realm: {token.realm}\n    service: {token.service}\n"
                    f"    issuer: {token.issuer}\n    rootcertbundle: {token.cert}\n")
        root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.storage}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n  secret: tauon-test-secret\n"
            + (f"  tls:\n    certificate: {tls.cert}\n    key: {tls.key}\n" if tls is not None else "")
            + auth
        )

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        log = self.log_path.open("ab")
        self._proc = subprocess.Popen([self.binary, "serve", str(self.config)], stdout=log, stderr=log,
                                      stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        scheme, context = "http", None
        if self.tls is not None:
            scheme, context = "https", ssl.create_default_context(cafile=str(self.tls.ca))
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited with {self._proc.returncode}: "
                                   f"{self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{scheme}://{self.host}/v2/", timeout=1, context=context):
                    return
            except urllib.error.HTTPError:
                return  # 401 with auth enabled: it answers
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.host} within {timeout}s")

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """Take the registry down for the block, bring it back afterwards."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def blob_file(self, digest: str) -> Path:
        """Where distribution keeps a blob's bytes (corrupt it to test digest checks)."""
        hexpart = digest.split(":", 1)[1]
        return self.storage / "docker/registry/v2/blobs/sha256" / hexpart[:2] / hexpart / "data"


@contextlib.contextmanager
def run_registry(root: Path, htpasswd: Path | None = None, *, token: TokenServer | None = None,
                 storage: Path | None = None, tls: TlsFiles | None = None) -> Iterator[RegistryServer]:
    server = RegistryServer(root, htpasswd, token=token, storage=storage, tls=tls)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def make_htpasswd(path: Path, user: str, password: str) -> Path:
    """A bcrypt htpasswd file (apache2-utils' `htpasswd -Bbn`)."""
    if shutil.which("htpasswd") is None:
        hint = SETUP_HINT.replace("docker-registry", "apache2-utils")
        raise RuntimeError(f"'htpasswd' is not on PATH: {hint}")
    out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True).stdout
    path.write_bytes(out)
    return path


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


class TokenServer:
    """A minimal Docker token service (the bearer flow of ghcr.io, Docker Hub, ...).

    It signs RS256 JWTs with a throwaway key (via the openssl CLI) whose self-signed certificate the
    registry trusts. With `user`/`password` set it demands HTTP basic auth on the token request;
    otherwise it hands out anonymous pull tokens. With `refresh_token` set it also answers the OAuth2
    `grant_type=refresh_token` POST (unless `accept_post` is False: then 404, like registries without
    it) and accepts that token as a basic-auth password on GET. `requests` records every query and form
    it answered, with a `method` entry.
    """

    service = "tauon-test"
    issuer = "tauon-test-issuer"

    def __init__(self, root: Path, user: str | None = None, password: str | None = None, *,
                 refresh_token: str | None = None, accept_post: bool = True) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.key, self.cert = root / "token.key", root / "token.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=tauon-test-token", "-keyout", str(self.key), "-out", str(self.cert)],
                       check=True, capture_output=True)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"],
                             check=True, capture_output=True).stdout
        self._x5c = base64.b64encode(der).decode()
        self._basic = None if user is None else "Basic " + base64.b64encode(
            f"{user}:{password}".encode()).decode()
        self.refresh_token = refresh_token
        self.accept_post = accept_post
        self.requests: list[dict[str, list[str]]] = []
        self.issued: list[str] = []  # every token handed out, so tests can check none is logged
        handler = self._handler()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.realm = f"http://127.0.0.1:{self._httpd.server_address[1]}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def sign(self, scope: str) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        now = int(time.time())
        access = []
        if scope.startswith("repository:"):
            _, name, actions = scope.split(":", 2)
            access.append({"type": "repository", "name": name, "actions": actions.split(",")})
        claims = {"iss": self.issuer, "sub": "test", "aud": self.service, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": str(now), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)],
                                   input=signing_input.encode(), check=True, capture_output=True).stdout
        token = f"{signing_input}.{_b64url(signature)}"
        self.issued.append(token)
        return token

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                server.requests.append({**query, "method": ["GET"]})
                if not server._get_allowed(self.headers.get("Authorization")):
                    self._answer(401)
                    return
                self._answer(200, {"token": server.sign(query.get("scope", [""])[0])})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                server.requests.append({**form, "method": ["POST"]})
                if not server.accept_post:
                    self._answer(404)
                elif (form.get("grant_type") != ["refresh_token"] or server.refresh_token is None
                        or form.get("refresh_token") != [server.refresh_token]):
                    self._answer(400, {"error": "invalid_grant"})
                else:
                    self._answer(200, {"access_token": server.sign(form.get("scope", [""])[0]),
                                       "expires_in": 300})

            def _answer(self, status: int, doc: object = None) -> None:
                body = json.dumps(doc).encode() if doc is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler

    def _get_allowed(self, authorization: str | None) -> bool:
        if self._basic is None and self.refresh_token is None:
            return True  # anonymous tokens for everyone
        if authorization is not None and authorization == self._basic:
            return True
        if self.refresh_token is not None and authorization and authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode(errors="replace")
            return decoded.partition(":")[2] == self.refresh_token
        return False

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
