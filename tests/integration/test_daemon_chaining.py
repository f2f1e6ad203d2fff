"""Service chaining and self-requests (spin-spec §3.8) through the real tauon process and registry, on both
component runtimes (`component_runtime`), sharing one compile cache."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import runtimes
from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, component_runtime: str,
          shared_cache: Path) -> Iterator[dict[str, str]]:
    """Two apps. 'chain': front (python-raw on /..., may chain and self-request) and back (the C
    component on a private route: reachable by chaining only). 'plain': python-raw, no outbound."""
    raw = component_path("python-raw").read_bytes()
    chain = SpinAppSpec(name="chain", components=[
        SpinComponent(id="front", wasm=raw, metadata={"allowed_outbound_hosts": [
            "http://*.spin.internal", "http://self"]}),
        SpinComponent(id="back", wasm=component_path("c").read_bytes()),
    ], triggers=[{"route": "/...", "component": "front"},
                 {"route": {"private": True}, "component": "back"}])
    plain = SpinAppSpec(name="plain", components=[SpinComponent(id="plain", wasm=raw)],
                        triggers=[{"route": "/...", "component": "plain"}])
    urls = {}
    with run_tauon(tmp_path_factory.mktemp("chaining"), cache_dir=shared_cache) as tauon:
        for name, app in (("front", chain), ("plain", plain)):
            port = free_port()
            ref = push_app(registry, f"chaining/{name}", "v1", app)
            (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port))
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=120)
        runtimes.check_on_tauon(tauon.log(), "front.json/front", "front.json/back", "plain.json/plain")
        yield urls


def outbound(bases: dict[str, str], app: str, url: str) -> httpx.Response:
    return httpx.get(f"{bases[app]}/outbound", params={"url": url}, timeout=30)


def headers_of(doc: dict[str, object]) -> dict[str, str]:
    pairs = doc["headers"]
    assert isinstance(pairs, list)
    return {k: v for k, v in pairs}


def test_a_private_component_is_reachable_by_chaining_only(bases: dict[str, str]) -> None:
    r = outbound(bases, "front", "http://back.spin.internal/echo-path/deep?q=1")
    assert r.status_code == 200 and r.text == "/echo-path/deep?q=1"
    r = httpx.get(f"{bases['front']}/echo-path/deep")  # the only public route is front's
    assert r.status_code == 200 and json.loads(r.text)["path"] == "/echo-path/deep"  # front's echo


def test_a_chained_request_looks_as_spin_makes_it(bases: dict[str, str]) -> None:
    r = outbound(bases, "front", "http://front.spin.internal/echo/chained?x=1")
    assert r.status_code == 200, r.text
    doc = json.loads(r.text)
    assert doc["path"] == "/echo/chained?x=1"
    headers = headers_of(doc)
    assert headers["spin-client-addr"] == "0.0.0.0:0"
    assert headers["spin-matched-route"] == "/..."
    assert headers["spin-path-info"] == "/echo/chained"
    assert headers["spin-full-url"] == "http://front.spin.internal/echo/chained?x=1"


def test_self_requests_go_to_the_apps_own_listener(bases: dict[str, str]) -> None:
    r = outbound(bases, "front", "http://self.alt/echo/self")
    assert r.status_code == 200, r.text
    doc = json.loads(r.text)
    assert doc["path"] == "/echo/self"
    assert headers_of(doc)["spin-client-addr"].startswith("127.0.0.1:")  # it came in on the socket


def test_without_allowed_hosts_neither_is_possible(bases: dict[str, str]) -> None:
    for url in ("http://back.spin.internal/echo-path/x", "http://self.alt/echo/x"):
        r = outbound(bases, "plain", url)
        assert r.status_code == 502 and "HttpRequestDenied" in r.text, (url, r.text)
    # '*.spin.internal' stands for the app's components only.
    r = outbound(bases, "front", "http://nope.spin.internal/")
    assert r.status_code == 502 and "HttpRequestDenied" in r.text


def test_a_large_chained_response_streams_through(bases: dict[str, str]) -> None:
    n = 3 * 1024 * 1024 + 7  # over the 1 MiB pipe: the chained writer must wait for the reader
    r = outbound(bases, "front", f"http://front.spin.internal/big?n={n}")
    assert r.status_code == 200
    assert r.content == bytes(i % 251 for i in range(n))


def test_a_chained_request_finding_the_pool_full_gets_503(tmp_path: Path, registry: RegistryServer,
                                                          component_runtime: str, shared_cache: Path) -> None:
    # With one instance slot the caller holds it, so the component it chains to cannot get one.
    app = SpinAppSpec(name="tight", components=[
        SpinComponent(id="front", wasm=component_path("python-raw").read_bytes(),
                      metadata={"allowed_outbound_hosts": ["http://*.spin.internal"]}),
        SpinComponent(id="back", wasm=component_path("c").read_bytes()),
    ], triggers=[{"route": "/...", "component": "front"}, {"route": {"private": True}, "component": "back"}])
    ref = push_app(registry, "chaining/tight", "v1", app)
    port = free_port()
    with run_tauon(tmp_path, "--instance-pool", "1", cache_dir=shared_cache) as tauon:
        (tauon.watch_dir / "tight.json").write_text(app_file(ref, port))
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/.well-known/spin/health", timeout=120)
        r = httpx.get(f"{base}/outbound", params={"url": "http://back.spin.internal/"}, timeout=30)
        assert r.status_code == 503, r.text
        assert "every instance slot is in use" not in tauon.log()  # not a listener 503: the chained one
        assert re.search(r"chained request to back\.spin\.internal failed: .*concurrent limit", tauon.log())
