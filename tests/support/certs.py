"""A throwaway certificate authority made with the openssl CLI, issuing as many server certificates as a
test needs (rotation needs two from one CA; a mismatched pair needs a key from another)."""

from __future__ import annotations

import socket
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@dataclass(frozen=True)
class Leaf:
    cert: Path
    """The certificate chain as servers give it: leaf, then the CA (certbot's fullchain.pem)."""
    key: Path
    serial: str
    """The leaf's serial number in hex (upper case, as `openssl x509 -serial` prints it)."""


class TestCA:
    __test__ = False  # not a pytest class

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.cert, self.key = root / "ca.pem", root / "ca.key"
        self._count = 0
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-days", "2", "-subj", "/CN=tauon test CA", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign", "-keyout", str(self.key), "-out", str(self.cert))

    def issue(self, name: str, *, hosts: tuple[str, ...] = ("IP:127.0.0.1", "DNS:localhost")) -> Leaf:
        """A server certificate for `hosts` signed by this CA, in `root/name/{fullchain,privkey}.pem`."""
        self._count += 1
        out = self.root / name
        out.mkdir(parents=True, exist_ok=True)
        key, csr, ext, leaf = out / "privkey.pem", out / "req.csr", out / "ext.cnf", out / "cert.pem"
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
                 f"/CN={name}", "-keyout", str(key), "-out", str(csr))
        ext.write_text(f"subjectAltName={','.join(hosts)}\nextendedKeyUsage=serverAuth\n")
        serial = f"{0x1000 + self._count:X}"
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
                 "-set_serial", f"0x{serial}", "-days", "2", "-extfile", str(ext), "-out", str(leaf))
        chain = out / "fullchain.pem"
        chain.write_bytes(leaf.read_bytes() + self.cert.read_bytes())
        return Leaf(cert=chain, key=key, serial=serial)


def issue_client(ca: TestCA, name: str) -> Leaf:
    """A client certificate (extendedKeyUsage clientAuth) for `name`, signed by `ca`, in
    `root/name/{fullchain,privkey}.pem`."""
    out = ca.root / name
    out.mkdir(parents=True, exist_ok=True)
    key, csr, ext, leaf = out / "privkey.pem", out / "req.csr", out / "ext.cnf", out / "cert.pem"
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj",
             f"/CN={name}", "-keyout", str(key), "-out", str(csr))
    ext.write_text("extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
             "-set_serial", "0x7001", "-days", "2", "-extfile", str(ext), "-out", str(leaf))
    chain = out / "fullchain.pem"
    chain.write_bytes(leaf.read_bytes() + ca.cert.read_bytes())
    return Leaf(cert=chain, key=key, serial="7001")


def https_get(port: int, context: ssl.SSLContext, path: str = "/", *, host: str = "127.0.0.1",
              timeout: float = 20) -> tuple[str, int, bytes]:
    """One request on a new, verified TLS connection: (served certificate serial, status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw, \
            context.wrap_socket(raw, server_hostname=host) as tls:
        cert = tls.getpeercert()
        assert cert is not None
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return str(cert["serialNumber"]), int(head.split(b" ", 2)[1]), body
