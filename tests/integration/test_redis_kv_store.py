"""The Redis key-value backend (services/redis_kv.py) against a real redis-server: every operation,
compare-and-swap semantics (absent vs present, a lost race), and exact counters when several OS
processes increment and compare-and-swap one key at once. And the runtime config's `[outbound_redis]`
connection bound."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from support.servers.redis import run_redis
from tauon.app.plan import GenerationPlan
from tauon.outbound.limits import OutboundError
from tauon.runtimeconfig.parse import parse_runtime_config
from tauon.services import AppServices
from tauon.services.keyvalue import KeyValueError
from tauon.services.redis_kv import RedisKeyValue

pytestmark = pytest.mark.integration
PASSWORD = "kv-pass-5e2a"
ROUNDS = 300


def test_operations_and_cas(tmp_path: Path) -> None:
    with run_redis(tmp_path / "redis", password=PASSWORD) as server:
        kv = RedisKeyValue(server.address)
        try:
            assert kv.get("default", "a") is None and not kv.exists("default", "a")
            kv.set("default", "a", b"1")
            assert kv.get("default", "a") == b"1" and kv.exists("default", "a")
            kv.set_many("default", [("b", b"2"), ("c", b"")])
            assert kv.get_many("default", ["a", "zz", "c"]) == [("a", b"1"), ("zz", None), ("c", b"")]
            assert sorted(kv.get_keys("default")) == ["a", "b", "c"]
            kv.delete_many("default", ["b", "c"])
            kv.delete("default", "a")
            assert kv.get_keys("default") == []
            assert kv.increment("default", "n", 5) == 5 and kv.increment("default", "n", -7) == -2
            assert kv.get("default", "n") == b"-2"  # Redis' integer text, as Spin's Redis store keeps it
            assert kv.compare_and_swap("default", "k", None, b"x")  # absent, as expected
            assert not kv.compare_and_swap("default", "k", None, b"y")  # present now: lost
            assert not kv.compare_and_swap("default", "k", b"other", b"y")
            assert kv.compare_and_swap("default", "k", b"x", b"y") and kv.get("default", "k") == b"y"
            assert not kv.compare_and_swap("default", "k", b"", b"z")  # empty is not absent
            kv.set("default", "text", b"abc")
            with pytest.raises(KeyValueError) as info:
                kv.increment("default", "text", 1)
            assert info.value.kind == "other" and PASSWORD not in str(info.value)
        finally:
            kv.close()


def test_unreachable_server_is_other_without_the_password(tmp_path: Path) -> None:
    with run_redis(tmp_path / "redis", password=PASSWORD) as server:
        url = server.address
    kv = RedisKeyValue(url)  # the server is gone now
    with pytest.raises(KeyValueError) as info:
        kv.get("default", "a")
    assert info.value.kind == "other" and f"127.0.0.1:{server.port}" in str(info.value)
    assert PASSWORD not in str(info.value)
    kv.close()


def _worker(url: str, rounds: int) -> None:
    kv = RedisKeyValue(url)
    for _ in range(rounds):
        kv.increment("default", "counter", 1)
        while True:  # a compare-and-swap loop, as a guest writes one
            current = kv.get("default", "cas")
            new = str(int(current or b"0") + 1).encode()
            if kv.compare_and_swap("default", "cas", current, new):
                break
    kv.close()


def test_processes_never_lose_an_update(tmp_path: Path) -> None:
    with run_redis(tmp_path / "redis") as server:
        ctx = multiprocessing.get_context("spawn")
        workers = [ctx.Process(target=_worker, args=(server.address, ROUNDS)) for _ in range(3)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(240)
            assert w.exitcode == 0
        kv = RedisKeyValue(server.address)
        assert kv.get("default", "counter") == str(3 * ROUNDS).encode()
        assert kv.get("default", "cas") == str(3 * ROUNDS).encode()
        kv.close()


def test_outbound_redis_max_connections_from_the_runtime_config(tmp_path: Path) -> None:
    """`[outbound_redis] max_connections` bounds the guests' Redis connections of one app (Spin's
    runtime config key); one more waits within the request's time, then is `too-many-connections`."""
    rc_path = tmp_path / "rc.toml"
    rc_path.write_text("[outbound_redis]\nmax_connections = 2\n[outbound_mqtt]\nmax_connections = 5\n")
    rc = parse_runtime_config(rc_path, rc_path.read_bytes())
    plan = GenerationPlan(app_id="a.json", reference="r/a:1", digest="sha256:0", name="a", version=None,
                          triggers=(), components={}, runtime_config=rc)
    services = AppServices.open(plan, {})
    try:
        assert services.outbound.mqtt.limit.limit == 5
        with run_redis(tmp_path / "redis") as server:
            deadline = time.monotonic() + 1.5
            first = services.outbound.redis.open(server.address, deadline)
            second = services.outbound.redis.open(server.address, deadline)
            with pytest.raises(OutboundError) as info:
                services.outbound.redis.open(server.address, deadline)
            assert info.value.kind == "too-many-connections"
            second.close()
            services.outbound.redis.open(server.address, time.monotonic() + 1.5).close()  # a slot came free
            first.close()
    finally:
        services.close()
