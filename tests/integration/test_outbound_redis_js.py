"""Outbound Redis from a JavaScript component (j2w; fermyon:spin/redis@2.0.0 and the unversioned v1
fermyon:spin/redis) through the real registry, the real `tauon` process and a real redis-server, on both
component runtimes (`component_runtime`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from support.apps import app_file, push_app
from support.components import component_path, component_world
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.redis import RedisServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration
PASSWORD = "js-redis-pw-51c0"


def js_app(allowed: list[str]) -> SpinAppSpec:
    return SpinAppSpec(
        name="js-redis", components=[SpinComponent(
            id="web", wasm=component_path("js-redis").read_bytes(),
            metadata={"allowed_outbound_hosts": allowed})],
        triggers=[{"route": "/...", "component": "web"}])


@dataclass
class Served:
    tauon: TauonProcess
    server: RedisServer
    allowed: str
    denied: str

    def get(self, base: str, path: str, address: str | None = None) -> httpx.Response:
        return httpx.get(f"{base}{path}", headers={"redis-address": address or self.server.address},
                         timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, component_runtime: str,
           shared_cache: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("outbound-redis-js")
    server = RedisServer(root / "redis", password=PASSWORD)
    server.start()
    try:
        with run_tauon(root / "tauon", cache_dir=shared_cache) as tauon:
            bases = {}
            # Allowed without a port: redis' default 6379 would not match, so give the port; the
            # host-only form is checked by the denied app.
            for name, allowed in (("allowed", [f"redis://127.0.0.1:{server.port}"]),
                                  ("denied", ["redis://127.0.0.1"])):
                ref = push_app(registry, f"outbound/js-redis-{name}", "v1", js_app(allowed))
                port = free_port()
                (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port))
                bases[name] = f"http://127.0.0.1:{port}"
            for base in bases.values():
                wait_http(f"{base}/", timeout=240)
            yield Served(tauon, server, bases["allowed"], bases["denied"])
    finally:
        server.stop()


def test_fixture_imports_both_redis_interfaces() -> None:
    world = component_world(component_path("js-redis"))
    assert {"fermyon:spin/redis@2.0.0", "fermyon:spin/redis"} <= set(world.imports)


def test_v2_conformance_sequence(served: Served) -> None:
    r = served.get(served.allowed, "/v2/conformance")
    assert (r.status_code, r.content) == (200, b""), r.text
    r = served.get(served.allowed, "/v2/bench?n=50")
    assert (r.status_code, r.text) == (200, "ok 50")


def test_v1_every_function(served: Served) -> None:
    probe = redis.Redis(port=served.server.port, password=PASSWORD)
    pubsub = probe.pubsub()
    pubsub.subscribe("v1:channel")
    assert pubsub.get_message(timeout=5) is not None
    r = served.get(served.allowed, "/v1/ops?p=v1")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "get": "v1 value", "get_missing": "", "incr": [1, 2], "sadd": 3, "srem": 1, "smembers": ["x", "z"],
        "del": 2, "execute": [{"nil": None}, {"nil": None}], "execute_int": [{"int64": 5}],
        "execute_status": [{"status": "OK"}]}
    message = pubsub.get_message(timeout=5)
    assert message is not None and message["data"] == b"v1 hello"
    pubsub.close()
    probe.connection_pool.disconnect()  # the pubsub's connection went back to the pool, still open
    # v1 opens a connection per call and closes it after: nothing is left open but the probe.
    deadline = time.monotonic() + 10  # the server sees the closes a moment later
    while int(probe.info("clients")["connected_clients"]) > 1:
        assert time.monotonic() < deadline, probe.client_list()
        time.sleep(0.02)
    probe.close()


def test_v1_errors_are_the_bare_error_case(served: Served) -> None:
    # Denied (the port is not redis' default), a bad address, a refused connection: all `error`.
    assert served.get(served.denied, "/v1/get?key=k").text == "error: error"
    assert served.get(served.allowed, "/v1/get?key=k",
                      address=f"redis://127.0.0.1:{served.server.port}/x").text == "error: error"
    assert served.get(served.allowed, "/v1/get?key=k",
                      address=f"redis://127.0.0.1:{served.server.port}").text == "error: error"  # NOAUTH
    assert served.get(served.denied, "/v2/conformance").text == "error: invalid-address"
    assert PASSWORD not in served.tauon.log()
