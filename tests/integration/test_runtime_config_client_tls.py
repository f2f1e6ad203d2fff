"""`[[client_tls]]` through the registry and the real tauon process: a loopback HTTPS upstream whose
certificate comes from an openssl-made CA and which requires a client certificate from that CA. The
C wasi:http handler fixture (`/outbound?<url>`) reaches it only when the app's runtime config gives
the CA as `ca_roots_file` and the client certificate and key; with the CA alone the server refuses
the handshake, and without any `[[client_tls]]` the server's certificate is not trusted. The Spin 1.x
outbound HTTP import (tests/fixtures/legacy/spin-legacy-outbound.wat) uses the same settings."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from test_daemon_outbound_http import _handler_wasm, _legacy_wasm

from support.apps import app_file, push_app
from support.certs import TestCA, issue_client
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.upstream import CountingUpstream, counting_upstream
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration


def _deploy(tauon: TauonProcess, registry: RegistryServer, name: str, wasm: bytes, allowed: str,
            runtime_config: str | None, *, legacy: bool = False) -> str:
    key = "allowed_http_hosts" if legacy else "allowed_outbound_hosts"
    app = SpinAppSpec(name=name, components=[SpinComponent(id="web", wasm=wasm, metadata={key: [allowed]})],
                      triggers=[{"route": "/...", "component": "web"}])
    ref = push_app(registry, f"clienttls/{name}", "v1", app)
    port = free_port()
    extra = {"runtime_config": runtime_config} if runtime_config else {}
    (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port, **extra))
    return f"http://127.0.0.1:{port}"


def _rc(ca: Path, client: tuple[Path, Path] | None, component: str = "web") -> str:
    text = f'[[client_tls]]\ncomponent_ids = ["{component}"]\nhosts = ["127.0.0.1"]\nca_roots_file = "{ca}"\n'
    if client is not None:
        text += f'client_cert_file = "{client[0]}"\nclient_private_key_file = "{client[1]}"\n'
    return text


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory,
           registry: RegistryServer) -> Iterator[tuple[dict[str, str], CountingUpstream]]:
    ca = TestCA(tmp_path_factory.mktemp("ca"))
    server, client = ca.issue("upstream"), issue_client(ca, "guest-client")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert, server.key)
    context.load_verify_locations(cafile=ca.cert)
    context.verify_mode = ssl.CERT_REQUIRED  # mutual TLS: no client certificate, no connection
    with counting_upstream() as up, \
            run_tauon(tmp_path_factory.mktemp("clienttls"), "--workers", "1") as tauon:
        up.socket = context.wrap_socket(up.socket, server_side=True)
        (tauon.watch_dir / "mtls.toml").write_text(_rc(ca.cert, (client.cert, client.key)))
        (tauon.watch_dir / "caonly.toml").write_text(_rc(ca.cert, None))
        (tauon.watch_dir / "other.toml").write_text(_rc(ca.cert, (client.cert, client.key), "someone-else"))
        allowed, handler = f"https://127.0.0.1:{up.port}", _handler_wasm()
        urls = {name: _deploy(tauon, registry, name, handler, allowed, rc)
                for name, rc in (("mtls", "mtls.toml"), ("caonly", "caonly.toml"), ("plain", None),
                                 ("other", "other.toml"))}
        urls["legacy"] = _deploy(tauon, registry, "legacy", _legacy_wasm(), f"127.0.0.1:{up.port}",
                                 "mtls.toml", legacy=True)
        for url in urls.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=180)
        yield urls, up


def test_mutual_tls_with_the_configured_client_certificate(
        served: tuple[dict[str, str], CountingUpstream]) -> None:
    urls, up = served
    for i in range(3):  # the pooled connection keeps its client certificate
        r = httpx.get(f"{urls['mtls']}/outbound?https://127.0.0.1:{up.port}/m{i}", timeout=30)
        assert (r.status_code, r.text) == (200, f"status=200\nupstream saw /m{i}")
    r = httpx.get(f"{urls['legacy']}/fetch?https://127.0.0.1:{up.port}/legacy", timeout=30)
    assert (r.status_code, r.text) == (200, "status=200 body=upstream saw /legacy")


def test_without_the_client_certificate_the_server_refuses(
        served: tuple[dict[str, str], CountingUpstream]) -> None:
    urls, up = served
    before = up.requests
    r = httpx.get(f"{urls['caonly']}/outbound?https://127.0.0.1:{up.port}/n", timeout=30)
    assert r.status_code == 502 and r.text in ("error-code=12", "error-code=14"), r.text  # TLS errors
    assert up.requests == before


@pytest.mark.parametrize("app", ["plain", "other"])
def test_without_client_tls_for_the_component_the_ca_is_not_trusted(
        served: tuple[dict[str, str], CountingUpstream], app: str) -> None:
    """No [[client_tls]], or one for another component: the system roots, which lack the test CA."""
    urls, up = served
    before = up.requests
    r = httpx.get(f"{urls[app]}/outbound?https://127.0.0.1:{up.port}/p", timeout=30)
    assert (r.status_code, r.text) == (502, "error-code=13")  # TLS-certificate-error
    assert up.requests == before
