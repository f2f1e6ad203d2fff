"""Outbound MQTT from a spin-sdk 3.4.1 Python app (fermyon:spin/mqtt@2.0.0) through the real registry,
the real `tauon` process and a real Mosquitto broker (with a password file, anonymous clients allowed,
like the conformance suite's), as Spin's conformance tests outbound-mqtt and outbound-mqtt-no-permission
do; a paho subscriber in the test checks what the guest published, with each QoS. Every test runs on
both component runtimes (`component_runtime`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.mosquitto import MosquittoServer, subscribed
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration
USER, PASSWORD = "user", "password-6b1f-mqtt"
REQUEST_TIMEOUT = 5.0


@functools.cache
def outbound_wasm() -> bytes:
    return component_path("python-outbound").read_bytes()


def outbound_app(allowed: list[str]) -> SpinAppSpec:
    return SpinAppSpec(
        name="outbound-mqtt", components=[SpinComponent(
            id="web", wasm=outbound_wasm(), metadata={"allowed_outbound_hosts": allowed})],
        triggers=[{"route": "/...", "component": "web"}])


class Served:
    def __init__(self, tauon: TauonProcess, ports: dict[str, int], broker: MosquittoServer,
                 dead_port: int) -> None:
        self.tauon = tauon
        self.ports = ports
        self.broker = broker
        self.dead_port = dead_port

    def call(self, app: str, path: str, *, address: str | None = None, username: str = USER,
             password: str = PASSWORD, body: bytes = b"") -> httpx.Response:
        address = address if address is not None else f"{self.broker.address}?client_id=spintest"
        headers = {"mqtt-address": address, "mqtt-username": username, "mqtt-password": password}
        return httpx.post(f"http://127.0.0.1:{self.ports[app]}{path}", headers=headers, content=body,
                          timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer, component_runtime: str,
           shared_cache: Path) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("outbound-mqtt")
    broker = MosquittoServer(root / "mosquitto", users={USER: PASSWORD})
    broker.start()
    dead = free_port()
    apps = {
        "allowed": outbound_app([f"mqtt://127.0.0.1:{broker.port}", f"mqtt://127.0.0.1:{dead}"]),
        "denied": outbound_app([]),
    }
    ports = {name: free_port() for name in apps}
    try:
        with run_tauon(root / "tauon", cache_dir=shared_cache) as tauon:
            for name, app in apps.items():
                ref = push_app(registry, f"outbound/mqtt-{name}", "v1", app)
                (tauon.watch_dir / f"{name}.json").write_text(
                    app_file(ref, ports[name], limits={"request_timeout": REQUEST_TIMEOUT}))
            for port in ports.values():
                wait_http(f"http://127.0.0.1:{port}/nothing", status=404, timeout=240)
            yield Served(tauon, ports, broker, dead)
    finally:
        broker.stop()


def test_conformance_outbound_mqtt(served: Served) -> None:
    with subscribed(served.broker.port, "telemetry-topic") as sub:
        r = served.call("allowed", "/mqtt/conformance")
        assert (r.status_code, r.content) == (200, b""), r.text
        assert sub.wait_for(1) == [("telemetry-topic", b"Eureka!", 1)]
    assert PASSWORD not in served.tauon.log()


def test_conformance_no_permission(served: Served) -> None:
    address = "mqtt://localhost:1883?client_id=spintest"
    r = served.call("denied", "/mqtt/conformance", address=address)
    assert (r.status_code, r.text) == (502, f"error: connection-failed: address {address} is not permitted")


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_each_qos_reaches_a_subscriber(served: Served, qos: int) -> None:
    topic = f"qos/{qos}"
    with subscribed(served.broker.port, topic) as sub:
        r = served.call("allowed", f"/mqtt/publish?topic={topic}&qos={qos}&count=3",
                        body=b"\x00payload\xff")
        assert (r.status_code, r.text) == (200, "published 3")
        assert sub.wait_for(3) == [(topic, b"\x00payload\xff", qos)] * 3


def test_anonymous_publish_with_empty_credentials(served: Served) -> None:
    with subscribed(served.broker.port, "anon") as sub:
        r = served.call("allowed", "/mqtt/publish?topic=anon&qos=1", username="", password="", body=b"hi")
        assert (r.status_code, r.text) == (200, "published 1")
        assert sub.wait_for(1) == [("anon", b"hi", 1)]


def test_connection_errors(served: Served) -> None:
    r = served.call("allowed", "/mqtt/publish?topic=t", password="wrong-password")
    assert r.status_code == 502 and r.text.startswith("error: connection-failed: "), r.text
    assert "not authorized" in r.text.lower()
    started = time.monotonic()
    r = served.call("allowed", "/mqtt/publish?topic=t",
                    address=f"mqtt://127.0.0.1:{served.dead_port}?client_id=spintest")
    assert r.status_code == 502 and r.text.startswith("error: connection-failed: "), r.text
    assert "refused" in r.text.lower() and time.monotonic() - started < 3
    # rumqttc requires a client_id and refuses unknown or bad options: invalid-address, at open.
    for address in (served.broker.address, f"{served.broker.address}?client_id=x&bogus=1",
                    f"{served.broker.address}?client_id=x&clean_session=maybe"):
        r = served.call("allowed", "/mqtt/publish?topic=t", address=address)
        assert (r.status_code, r.text) == (502, "error: invalid-address"), address
    assert PASSWORD not in served.tauon.log() and "wrong-password" not in served.tauon.log()


def test_a_wildcard_topic_is_other(served: Served) -> None:
    r = served.call("allowed", "/mqtt/publish?topic=a/%23")
    assert r.status_code == 502 and r.text.startswith("error: other: "), r.text


def test_a_broker_that_never_answers_is_bounded_by_the_request_timeout(served: Served) -> None:
    served.broker.process.pause()
    try:
        started = time.monotonic()
        r = served.call("allowed", "/mqtt/publish?topic=t&qos=1")
        elapsed = time.monotonic() - started
    finally:
        served.broker.process.resume()
    assert r.status_code == 502 and r.text.startswith("error: connection-failed: "), r.text
    assert elapsed < REQUEST_TIMEOUT + 2
    with subscribed(served.broker.port, "after") as sub:
        assert served.call("allowed", "/mqtt/publish?topic=after&qos=1", body=b"x").status_code == 200
        assert sub.wait_for(1) == [("after", b"x", 1)]
