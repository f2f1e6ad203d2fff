"""Spin's Redis trigger end to end: a real redis-server, apps pushed to the real registry, the real tauon
process. PUBLISH -> the guest runs (it writes what it got to key-value); Redis restarted -> tauon
reconnects; a swap under a stream of messages loses none; other trigger types are load errors.
The Redis-only and mixed apps run on both component runtimes (`component_runtime`): the Redis-component
executor and an HTTP component beside a Spin 1.x module; reconnects and swaps are the host's alone.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from support import runtimes
from support.apps import push_app
from support.components import component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.fixtures import fixture_path
from support.registry import RegistryServer
from support.servers.redis import RedisServer, run_redis
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

PASSWORD = "r3dis-pw-7c1e"


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One compile cache for the module: the Python components take long to compile the first time."""
    return tmp_path_factory.mktemp("redis-cache")


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    with run_redis(tmp_path / "redis") as server:
        yield server


def redis_component(component_id: str = "worker", **kw: Any) -> SpinComponent:
    return SpinComponent(id=component_id, wasm=component_path("python-redis").read_bytes(),
                         metadata={"key_value_stores": ["default"]}, **kw)


def redis_app(address: str, *, channel: str = "orders", marker: str = "1",
              extra: list[SpinComponent] | None = None, triggers: list[dict[str, Any]] | None = None,
              variables: dict[str, Any] | None = None) -> SpinAppSpec:
    return SpinAppSpec(
        name="worker", components=[redis_component(env={"MARKER": marker}), *(extra or [])],
        triggers=[{"_type": "redis", "component": "worker", "channel": channel}, *(triggers or [])],
        trigger_metadata={"redis": {"address": address}}, variables=variables or {})


def app_file(reference: str, **extra: Any) -> str:
    return json.dumps({"reference": reference, "insecure": True, **extra})


def kv(state_dir: Path, key: str) -> bytes | None:
    """A key of the app's default store, read from Spin's SQLite file in its state dir."""
    path = state_dir / "sqlite_key_value.db"
    if not path.exists():
        return None
    with sqlite3.connect(path, timeout=10) as db:
        row = db.execute("SELECT value FROM spin_key_value WHERE store='default' AND key=?",
                         (key,)).fetchone()
    return bytes(row[0]) if row else None


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {value!r})")
        time.sleep(0.05)


def app_status(tauon: TauonProcess, app_id: str) -> dict[str, Any]:
    apps = httpx.get(f"{tauon.admin}/status", timeout=5).json()["apps"]
    # {"state": None} until the watcher has seen the file (tests poll right after writing it)
    row: dict[str, Any] = next((a for a in apps if a["app"] == app_id), {"state": None})
    return row


def trigger_state(tauon: TauonProcess, app_id: str) -> str | None:
    triggers = app_status(tauon, app_id)["triggers"]
    return triggers[0]["state"] if triggers else None


def metric(tauon: TauonProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{tauon.admin}/metrics", timeout=5).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{want}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def client(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, password=server.password, socket_timeout=5)


@pytest.mark.timeout(900)
def test_publish_is_handled_by_a_redis_only_app(tmp_path: Path, registry: RegistryServer,
                                                 redis_server: RedisServer, shared_cache: Path,
                                                 component_runtime: str) -> None:
    """No address in the app file, no port bound; each message runs the guest once (with a worker
    process too: only the daemon subscribes), which writes it to the state dir's key-value file;
    /status, `tauon status` and /metrics show the trigger. On both component runtimes."""
    ref = push_app(registry, "redis/only", "v1", redis_app(redis_server.address))
    state = tmp_path / "state" / "w"
    with run_tauon(tmp_path, "--workers", "2", cache_dir=shared_cache,
                   admin=True) as tauon:
        (tauon.watch_dir / "w.json").write_text(app_file(ref, state_dir="w"))
        tauon.wait_log(r"w\.json: serving", timeout=600)
        runtimes.check_on_tauon(tauon.log(), "w.json/worker")
        log = tauon.wait_log(r"Active Channels on redis://127\.0\.0\.1:\d+:\n"
                             r"\tredis://127\.0\.0\.1:\d+/orders: \[worker\]")
        assert "Serving http" not in log.split("w.json: serving", 1)[1]
        wait_for("subscribed", lambda: trigger_state(tauon, "w.json") == "connected")
        row = app_status(tauon, "w.json")
        assert row["state"] == "running" and row["address"] is None
        assert row["triggers"][0]["channels"] == ["orders"]
        with client(redis_server) as r:
            assert r.publish("orders", b"hello") == 1
            wait_for("hello stored", lambda: kv(state, "last") == b"hello")
            assert r.publish("orders", b"fail") == 1
            assert r.publish("orders", b"trap") == 1
            assert r.publish("orders", b"after") == 1
        wait_for("after stored", lambda: kv(state, "last") == b"after")
        assert kv(state, "count") == b"2"  # the failing messages stored nothing
        labels = {"app": "w.json", "channel": "orders"}
        assert metric(tauon, "tauon_redis_messages_total", **labels) == 4
        assert metric(tauon, "tauon_redis_messages_handled_total", **labels, component="worker") == 2
        wait_for("failures counted", lambda: metric(tauon, "tauon_redis_messages_failed_total", **labels,
                                                    component="worker") == 2)
        assert tauon.wait_log(r"Redis message on channel 'orders' failed: .*returned an error \(error\)")
        assert tauon.admin is not None
        out = subprocess.run([sys.executable, "-m", "tauon", "status", "--admin", tauon.admin.removeprefix(
            "http://")], capture_output=True, text=True, check=True).stdout
        assert "triggers:" in out and "w.json: redis redis://127.0.0.1" in out and "connected" in out


def test_mixed_app_serves_both_halves_and_hides_the_password(
        tmp_path: Path, registry: RegistryServer, shared_cache: Path, component_runtime: str) -> None:
    """HTTP and Redis components of one app share its (in-memory) key-value store; the address is a
    template whose password comes from a secret variable and is never logged or shown; a Spin 1.x
    core module on the same channel handles each message too."""
    with run_redis(tmp_path / "redis", password=PASSWORD) as server:
        address = f"redis://:{{{{ redis_password }}}}@127.0.0.1:{server.port}"
        web = SpinComponent(id="web", wasm=component_path("python-sdk").read_bytes(),
                            metadata={"key_value_stores": ["default"]})
        legacy = SpinComponent(id="legacy", wasm=component_path("redis-legacy").read_bytes(),
                               metadata={"key_value_stores": ["default"]})
        app = redis_app(address, extra=[web, legacy],
                        triggers=[{"route": "/...", "component": "web"},
                                  {"_type": "redis", "component": "legacy", "channel": "orders"}],
                        variables={"redis_password": {"secret": True, "required": True}})
        ref = push_app(registry, "redis/mixed", "v1", app)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with run_tauon(tmp_path, cache_dir=shared_cache, admin=True) as tauon:
            (tauon.watch_dir / "m.json").write_text(app_file(ref, address=f"127.0.0.1:{port}",
                                                             variables={"redis_password": PASSWORD}))
            wait_http(f"{base}/echo", timeout=600)
            wait_for("subscribed", lambda: trigger_state(tauon, "m.json") == "connected")
            with client(server) as r:
                assert r.publish("orders", b"mixed-1") == 1  # one subscriber connection per server
            wait_for("the HTTP half sees it", lambda: httpx.get(f"{base}/kv?key=last").content == b"mixed-1")
            wait_for("the legacy module ran",
                     lambda: httpx.get(f"{base}/kv?key=legacy-last").content == b"mixed-1")
            tauon.wait_log(r"m\.json/legacy stdout: legacy got mixed-1")
            status = httpx.get(f"{tauon.admin}/status", timeout=5).text
            log = tauon.log()
    assert PASSWORD not in status and PASSWORD not in log
    assert f"redis://:***@127.0.0.1:{server.port}" in status


def test_reconnects_after_redis_restarts(tmp_path: Path, registry: RegistryServer,
                                         redis_server: RedisServer, shared_cache: Path) -> None:
    ref = push_app(registry, "redis/reconnect", "v1", redis_app(redis_server.address))
    state = tmp_path / "state" / "w"
    with run_tauon(tmp_path, cache_dir=shared_cache, admin=True) as tauon:
        (tauon.watch_dir / "w.json").write_text(app_file(ref, state_dir="w"))
        tauon.wait_log(r"w\.json: serving", timeout=600)
        wait_for("subscribed", lambda: trigger_state(tauon, "w.json") == "connected")
        with client(redis_server) as r:
            assert r.publish("orders", b"before") == 1
        wait_for("before stored", lambda: kv(state, "last") == b"before")
        with redis_server.stopped():
            wait_for("reconnecting", lambda: trigger_state(tauon, "w.json") == "reconnecting")
            assert app_status(tauon, "w.json")["triggers"][0]["last_error"]
            assert app_status(tauon, "w.json")["state"] == "running"
        wait_for("connected again", lambda: trigger_state(tauon, "w.json") == "connected", timeout=90)
        with client(redis_server) as r:
            assert r.publish("orders", b"after-restart") == 1
        wait_for("after-restart stored", lambda: kv(state, "last") == b"after-restart")
        tauon.wait_log(r"w\.json: Redis redis://127\.0\.0\.1:\d+: .*; reconnecting in")


def test_swap_under_a_stream_of_messages_loses_none(tmp_path: Path, registry: RegistryServer,
                                                     redis_server: RedisServer, shared_cache: Path) -> None:
    """Every message published before, during and after an update is handled exactly once: the new
    generation subscribes before the old one lets go, and a channel both use is never unsubscribed."""
    v1 = push_app(registry, "redis/swap", "v1", redis_app(redis_server.address, marker="one"))
    v2 = push_app(registry, "redis/swap", "v2", redis_app(redis_server.address, marker="two"))
    state = tmp_path / "state" / "w"
    published: list[str] = []
    stop = threading.Event()

    def publish() -> None:
        with client(redis_server) as r:
            while not stop.is_set():
                name = f"m{len(published):05d}"
                receivers = r.publish("orders", name.encode())
                assert receivers == 1, f"{name} reached {receivers} subscribers"
                published.append(name)
                time.sleep(0.01)

    with run_tauon(tmp_path, cache_dir=shared_cache, admin=True) as tauon:
        (tauon.watch_dir / "w.json").write_text(app_file(ref := v1, state_dir="w"))
        tauon.wait_log(r"w\.json: serving", timeout=600)
        wait_for("subscribed", lambda: trigger_state(tauon, "w.json") == "connected")
        thread = threading.Thread(target=publish)
        thread.start()
        try:
            wait_for("a stream running", lambda: len(published) > 20)
            (tauon.watch_dir / "w.json").write_text(app_file(ref := v2, state_dir="w"))
            tauon.wait_log(r"w\.json: updated to generation 2", timeout=600)
            after = len(published)
            wait_for("a stream after the swap", lambda: len(published) > after + 50)
        finally:
            stop.set()
            thread.join(timeout=30)
        assert ref == v2 and not thread.is_alive()
        total = len(published)
        wait_for("every message counted", lambda: kv(state, "count") == str(total).encode(), timeout=120)
        missing = [name for name in published if kv(state, f"msg:{name}") != name.encode()]
        assert missing == []
        assert metric(tauon, "tauon_redis_messages_total", app="w.json", channel="orders") == total


def legacy_app(address: str, channel: str, marker: str) -> SpinAppSpec:
    legacy = SpinComponent(id="legacy", wasm=component_path("redis-legacy").read_bytes(),
                           env={"MARKER": marker}, metadata={"key_value_stores": ["default"]})
    return SpinAppSpec(name="legacy", components=[legacy],
                       triggers=[{"_type": "redis", "component": "legacy", "channel": channel}],
                       trigger_metadata={"redis": {"address": address}},
                       variables={"chan": {"default": "old"}})


def test_swap_moves_subscriptions_to_the_new_channel(tmp_path: Path, registry: RegistryServer,
                                                      redis_server: RedisServer) -> None:
    """An update that changes the channel subscribes the new one before the swap and lets the old one
    go after it (the Spin 1.x core-module handler, which compiles in no time)."""
    v1 = push_app(registry, "redis/move", "v1", legacy_app(redis_server.address, "old", "1"))
    v2 = push_app(registry, "redis/move", "v2", legacy_app(redis_server.address, "{{ chan }}", "2"))
    state = tmp_path / "state" / "w"
    with run_tauon(tmp_path, admin=True) as tauon, client(redis_server) as r:
        (tauon.watch_dir / "w.json").write_text(app_file(v1, state_dir="w"))
        wait_for("subscribed to old", lambda: r.pubsub_numsub("old") == [(b"old", 1)])
        assert r.publish("old", b"one") == 1
        wait_for("one stored", lambda: kv(state, "legacy-last") == b"one")
        (tauon.watch_dir / "w.json").write_text(app_file(v2, state_dir="w", variables={"chan": "new"}))
        tauon.wait_log(r"w\.json: updated to generation 2")
        assert r.publish("new", b"two") == 1  # subscribed before the swap
        wait_for("two stored", lambda: kv(state, "legacy-last") == b"two")
        wait_for("old channel released", lambda: r.pubsub_numsub("old") == [(b"old", 0)])
        assert app_status(tauon, "w.json")["triggers"][0]["channels"] == ["new"]
        assert r.publish("old", b"three") == 0


def test_unsupported_trigger_type_is_a_load_error(tmp_path: Path, registry: RegistryServer) -> None:
    hello = SpinComponent(id="hello", wasm=fixture_path("hello").read_bytes())
    good = push_app(registry, "redis/good", "v1", SpinAppSpec(
        name="good", components=[hello], triggers=[{"route": "/hello", "component": "hello",
                                                    "executor": {"type": "wagi"}}]))
    bad = push_app(registry, "redis/cron", "v1", SpinAppSpec(
        name="cron", components=[hello],
        triggers=[{"route": "/hello", "component": "hello", "executor": {"type": "wagi"}},
                  {"_type": "cron", "component": "hello", "cron_expression": "*/5 * * * * *"}]))
    good_port, bad_port = free_port(), free_port()
    with run_tauon(tmp_path, admin=True) as tauon:
        (tauon.watch_dir / "good.json").write_text(app_file(good, address=f"127.0.0.1:{good_port}"))
        (tauon.watch_dir / "cron.json").write_text(app_file(bad, address=f"127.0.0.1:{bad_port}"))
        wait_http(f"http://127.0.0.1:{good_port}/hello", timeout=60)
        tauon.wait_log(r"cron\.json: .*type 'cron', which tauon cannot serve")
        row = wait_for("failed", lambda: (r := app_status(tauon, "cron.json"))["state"] == "failed" and r)
        assert "cron.json" in row["error"] and "triggers[1].trigger_type" in row["error"]
        assert "trigger-cron plugin" in row["error"]
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{bad_port}/hello", timeout=2)
        assert httpx.get(f"http://127.0.0.1:{good_port}/hello").status_code == 200


def test_redis_trigger_on_a_component_without_a_redis_handler_fails_to_load(
        tmp_path: Path, registry: RegistryServer, redis_server: RedisServer) -> None:
    """Never `running` for an app that cannot handle its messages: the error names the component."""
    hello = SpinComponent(id="hello", wasm=fixture_path("hello").read_bytes())
    ref = push_app(registry, "redis/wrong", "v1", SpinAppSpec(
        name="wrong", components=[hello], triggers=[{"_type": "redis", "component": "hello", "channel": "c"}],
        trigger_metadata={"redis": {"address": redis_server.address}}))
    with run_tauon(tmp_path, admin=True) as tauon:
        (tauon.watch_dir / "wrong.json").write_text(app_file(ref))
        row = wait_for("failed", lambda: (r := app_status(tauon, "wrong.json"))["state"] == "failed" and r)
        assert row["error"].startswith("wrong.json: ")
        assert ("component 'hello' is a core wasm module that does not export handle-redis-message"
                in row["error"])
        assert row["triggers"] == []
