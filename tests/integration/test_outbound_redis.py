"""Outbound Redis from a spin-sdk 3.4.1 Python app (fermyon:spin/redis@2.0.0) through the real registry,
the real `tauon` process and a real redis-server, as Spin's conformance tests outbound-redis,
outbound-redis-no-permission and outbound-redis-variable-permission do, plus every operation and
parameter/result kind, Spin's error cases and the faults (server stopped mid-request, a server that
never answers, too many connections). The swap-leak test is in test_outbound_redis_swaps.py. Every
test runs on both component runtimes (`component_runtime`): each operation and value kind is lowered and
lifted by tauon's canonical ABI on the tauon runtime.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
REQUEST_TIMEOUT = 5.0
PASSWORD = "hunter2-redis-pw"


@functools.cache
def outbound_wasm() -> bytes:
    return component_path("python-outbound").read_bytes()


def outbound_app(allowed: list[str], *, variables: dict[str, Any] | None = None) -> SpinAppSpec:
    return SpinAppSpec(
        name="outbound", components=[SpinComponent(
            id="web", wasm=outbound_wasm(), metadata={"allowed_outbound_hosts": allowed})],
        triggers=[{"route": "/...", "component": "web"}], variables=variables or {})


class Served:
    def __init__(self, tauon: TauonProcess, ports: dict[str, int], server: RedisServer,
                 dead_port: int) -> None:
        self.tauon = tauon
        self.ports = ports
        self.server = server
        self.dead_port = dead_port
        """An allowed port nobody listens on."""

    def url(self, app: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[app]}{path}"

    def call(self, app: str, path: str, *, address: str | None = None, method: str = "GET",
             body: bytes | None = None, timeout: float = 30.0) -> httpx.Response:
        headers = {"redis-address": address if address is not None else self.server.address}
        return httpx.request(method, self.url(app, path), headers=headers, content=body, timeout=timeout)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.server.port, password=PASSWORD)

    def clients(self) -> int:
        """Connections redis-server holds, not counting the one asking."""
        return int(self.client().info("clients")["connected_clients"]) - 1


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, component_runtime: str,
           shared_cache: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("outbound-redis")
    server = RedisServer(root / "redis", password=PASSWORD)
    server.start()
    dead = free_port()
    apps = {
        "allowed": outbound_app([f"redis://127.0.0.1:{server.port}", f"redis://127.0.0.1:{dead}"]),
        "denied": outbound_app([]),
        "variable": outbound_app([f"redis://{{{{ redis_host }}}}:{server.port}"],
                                 variables={"redis_host": {"default": "localhost"}}),
    }
    ports = {name: free_port() for name in apps}
    try:
        with run_tauon(root / "tauon", cache_dir=shared_cache) as tauon:
            for name, app in apps.items():
                ref = push_app(registry, f"outbound/redis-{name}", "v1", app)
                extra: dict[str, Any] = {"limits": {"request_timeout": REQUEST_TIMEOUT}}
                if name == "variable":
                    extra["variables"] = {"redis_host": "127.0.0.1"}
                (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, ports[name], **extra))
            for port in ports.values():
                wait_http(f"http://127.0.0.1:{port}/nothing", status=404, timeout=240)
            yield Served(tauon, ports, server, dead)
    finally:
        server.stop()


def test_conformance_outbound_redis(served: Served) -> None:
    r = served.call("allowed", "/redis/conformance")
    assert (r.status_code, r.content) == (200, b""), r.text
    assert served.client().get("spin-example") == b"Eureka! I've got it!"


def test_conformance_no_permission_is_invalid_address(served: Served) -> None:
    r = served.call("denied", "/redis/conformance")
    assert (r.status_code, r.text) == (502, "error: invalid-address")
    assert PASSWORD not in served.tauon.log()


def test_conformance_variable_permission(served: Served) -> None:
    """allowed_outbound_hosts = ["redis://{{ redis_host }}:<port>"], the variable set by the app file."""
    r = served.call("variable", "/redis/conformance")
    assert (r.status_code, r.content) == (200, b""), r.text
    # The template grants only the rendered host: another host on the same port is denied.
    other = served.server.address.replace("127.0.0.1", "localhost")
    assert served.call("variable", "/redis/conformance", address=other).text == "error: invalid-address"


def test_every_typed_operation(served: Served) -> None:
    pubsub = served.client().pubsub()
    pubsub.subscribe("typed:channel")
    assert pubsub.get_message(timeout=5) is not None  # the subscribe confirmation
    r = served.call("allowed", "/redis/ops?p=typed")
    assert r.status_code == 200, r.text
    assert r.json() == {"get": "00ff76616c7565", "get_missing": None, "incr": [1, 2], "sadd": 3, "srem": 1,
                        "smembers": ["a", "c"], "del": 2, "published": True}
    message = pubsub.get_message(timeout=5)
    assert message is not None and message["data"] == b"hello subscribers"
    pubsub.close()


def execute(served: Served, command: str, *args: dict[str, Any]) -> httpx.Response:
    body = json.dumps({"command": command, "args": list(args)}).encode()
    return served.call("allowed", "/redis/execute", method="POST", body=body)


def test_execute_every_parameter_and_result_kind(served: Served) -> None:
    key, number = {"binary": b"exec:k".hex()}, {"binary": b"exec:n".hex()}
    assert execute(served, "SET", key, {"binary": b"\x00\x01\xfe".hex()}).json() == [{"status": "OK"}]
    assert execute(served, "GET", key).json() == [{"binary": "0001fe"}]
    assert execute(served, "SET", number, {"int64": -7}).json() == [{"status": "OK"}]
    assert execute(served, "INCRBY", number, {"int64": 10}).json() == [{"int64": 3}]
    assert execute(served, "MGET", key, {"binary": b"exec:none".hex()}, number).json() == [
        {"binary": "0001fe"}, {"nil": None}, {"binary": b"3".hex()}]
    assert execute(served, "GET", {"binary": b"exec:none".hex()}).json() == [{"nil": None}]
    assert execute(served, "PING").json() == [{"status": "PONG"}]
    # Nested arrays are flattened in order, as Spin does: SCAN answers [cursor, [keys...]].
    scan = execute(served, "SCAN", {"int64": 0}, {"binary": b"MATCH".hex()}, {"binary": b"exec:*".hex()},
                   {"binary": b"COUNT".hex()}, {"int64": 1000}).json()
    assert scan[0] == {"binary": b"0".hex()}
    assert sorted(item["binary"] for item in scan[1:]) == sorted([b"exec:k".hex(), b"exec:n".hex()])
    assert execute(served, "DEL", key, number).json() == [{"int64": 2}]


def test_server_errors_are_other_with_the_servers_text(served: Served) -> None:
    r = execute(served, "NOSUCHCOMMAND")
    assert r.status_code == 502 and r.text.startswith("error: other: ") and "unknown command" in r.text
    served.client().set("wrongtype", b"a string")
    r = served.call("allowed", "/redis/sadd?key=wrongtype", method="POST", body=b"x")
    assert r.status_code == 502 and r.text.startswith("error: other: WRONGTYPE"), r.text
    r = served.call("allowed", "/redis/incr?key=wrongtype")
    assert r.status_code == 502 and r.text.startswith("error: other: ") and "not an integer" in r.text


def test_bad_addresses(served: Served) -> None:
    port = served.server.port
    # Allowed host and port, but not a Redis URL redis-rs accepts: invalid-address, no connection.
    for address in (f"redis://127.0.0.1:{port}/not-a-db", f"http://127.0.0.1:{port}"):
        assert served.call("allowed", "/redis/get?key=x", address=address).text == "error: invalid-address"
    # Without the password: the server refuses, and the guest sees the client's text as `other`.
    r = served.call("allowed", "/redis/get?key=x", address=f"redis://127.0.0.1:{port}")
    assert r.status_code == 502 and r.text.startswith("error: other: ")
    assert "authentication required" in r.text.lower()
    # Nobody listening (an allowed port): `other`, at once.
    started = time.monotonic()
    r = served.call("allowed", "/redis/get?key=x", address=f"redis://127.0.0.1:{served.dead_port}")
    assert r.status_code == 502 and r.text.startswith("error: other: ") and "refused" in r.text.lower()
    assert time.monotonic() - started < 3
    assert PASSWORD not in served.tauon.log()


def test_server_stopped_mid_request_then_back(served: Served) -> None:
    """A guest blocked on BLPOP when the server goes away gets `other`; once it is back, calls work."""
    results: list[httpx.Response] = []
    blpop = json.dumps({"command": "BLPOP", "args": [{"binary": b"never-pushed".hex()}, {"int64": 30}]})
    worker = threading.Thread(target=lambda: results.append(
        served.call("allowed", "/redis/execute", method="POST", body=blpop.encode())))
    worker.start()
    deadline = time.monotonic() + 20
    while int(served.client().info("clients")["blocked_clients"]) < 1:
        assert time.monotonic() < deadline, "the guest's BLPOP never reached the server"
        time.sleep(0.02)
    served.server.stop()
    try:
        worker.join(30)
        assert results and results[0].status_code == 502, results
        assert results[0].text.startswith("error: other: "), results[0].text
        r = served.call("allowed", "/redis/conformance")  # the server is down: a clean error
        assert r.status_code == 502 and r.text.startswith("error: other: ")
    finally:
        served.server.start()
    r = served.call("allowed", "/redis/conformance")
    assert (r.status_code, r.content) == (200, b""), r.text


def test_a_server_that_never_answers_is_bounded_by_the_request_timeout(served: Served) -> None:
    served.server.process.pause()
    try:
        started = time.monotonic()
        r = served.call("allowed", "/redis/get?key=x")
        elapsed = time.monotonic() - started
    finally:
        served.server.process.resume()
    # The guest gets the error before its deadline and answers with it.
    assert r.status_code == 502 and r.text.startswith("error: other: "), r.text
    assert elapsed < REQUEST_TIMEOUT + 2
    r = served.call("allowed", "/redis/conformance")
    assert (r.status_code, r.content) == (200, b""), r.text


def test_too_many_connections_then_all_closed(served: Served) -> None:
    baseline = served.clients()
    r = served.call("allowed", "/redis/open-many?n=129")  # the per-app bound is 128
    assert (r.status_code, r.text) == (502, "error: too-many-connections")
    r = served.call("allowed", "/redis/open-many?n=20")
    assert (r.status_code, r.text) == (200, "opened 20")
    deadline = time.monotonic() + 10
    while served.clients() > baseline:  # closed when each request ended
        assert time.monotonic() < deadline, f"{served.clients()} connections left, {baseline} before"
        time.sleep(0.05)


def test_fixture_imports() -> None:
    world = component_world(component_path("python-outbound"))
    assert "fermyon:spin/redis@2.0.0" in world.imports and "fermyon:spin/mqtt@2.0.0" in world.imports
