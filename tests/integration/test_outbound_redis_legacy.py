"""The Spin 1.x `outbound-redis` imports: a hand-written Spin 1.x module (tests/fixtures/legacy/
spin-legacy-redis.wat, the wit-bindgen 0.2 ABI) calling each of them, pushed to the real registry and
served by the real `tauon` process against a real redis-server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import wasmtime

from support.apps import app_file, push_app
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.redis import RedisServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "legacy" / "spin-legacy-redis.wat"
PASSWORD = "legacy-redis-pw-77d2"


def legacy_app(allowed: list[str]) -> SpinAppSpec:
    return SpinAppSpec(
        name="legacy-redis",
        components=[SpinComponent(id="legacy", wasm=bytes(wasmtime.wat2wasm(FIXTURE.read_text())),
                                  metadata={"allowed_outbound_hosts": allowed})],
        triggers=[{"route": "/...", "component": "legacy"}])


@dataclass
class Served:
    tauon: TauonProcess
    server: RedisServer
    allowed: str
    denied: str

    def post(self, base: str, path: str, address: str | None = None) -> httpx.Response:
        return httpx.post(f"{base}{path}", content=(address or self.server.address).encode(), timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("outbound-redis-legacy")
    server = RedisServer(root / "redis", password=PASSWORD)
    server.start()
    try:
        with run_tauon(root / "tauon") as tauon:
            bases = {}
            for name, allowed in (("allowed", [f"redis://127.0.0.1:{server.port}"]), ("denied", [])):
                ref = push_app(registry, f"outbound/legacy-redis-{name}", "v1", legacy_app(allowed))
                port = free_port()
                (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port))
                bases[name] = f"http://127.0.0.1:{port}"
            for base in bases.values():
                wait_http(f"{base}/nothing", status=404, timeout=120)
            yield Served(tauon, server, bases["allowed"], bases["denied"])
    finally:
        server.stop()


def test_every_outbound_redis_import(served: Served) -> None:
    probe = redis.Redis(port=served.server.port, password=PASSWORD)
    pubsub = probe.pubsub()
    pubsub.subscribe("lchan")
    assert pubsub.get_message(timeout=5) is not None
    assert served.post(served.allowed, "/set").text == "hello"
    assert probe.get("lk") == b"hello"
    assert [served.post(served.allowed, "/incr").text for _ in range(2)] == ["1", "2"]
    assert served.post(served.allowed, "/del").text == "2"
    assert served.post(served.allowed, "/sets").text == "3 1 2"
    assert probe.smembers("ls") == {b"a", b"c"}
    # INCRBY lx 7 -> int64 7; PING -> status PONG; GET nokey -> nil
    assert served.post(served.allowed, "/exec").text == "2:7 1:PONG 0 "
    assert served.post(served.allowed, "/publish").text == "ok"
    message = pubsub.get_message(timeout=5)
    assert message is not None and message["data"] == b"hi"
    pubsub.close()
    probe.connection_pool.disconnect()  # the pubsub's connection went back to the pool, still open
    deadline = time.monotonic() + 10  # the server sees the closes a moment later
    while int(probe.info("clients")["connected_clients"]) > 1:  # each call closed its connection
        assert time.monotonic() < deadline, probe.client_list()
        time.sleep(0.02)
    probe.close()


def test_failures_are_the_error_case(served: Served) -> None:
    r = served.post(served.denied, "/set")
    assert (r.status_code, r.text) == (500, "error 1")
    for address in (f"redis://127.0.0.1:{served.server.port}",  # no password: NOAUTH
                    f"redis://127.0.0.1:{served.server.port}/not-a-db", "not a url"):
        r = served.post(served.allowed, "/incr", address)
        assert (r.status_code, r.text) == (500, "error 1"), address
    assert PASSWORD not in served.tauon.log()
