"""Pure parts of the outbound clients: address parsing as redis-rs and rumqttc do it, Spin's conversion of
Redis replies, log-safe addresses, the per-app connection bound, and the Spin 1.x memory layouts."""

from __future__ import annotations

import struct
import threading
import time

import pytest
import redis

from tauon.executors.legacy_abi import AbiError
from tauon.executors.legacy_redis import lower_redis_results, read_redis_parameters
from tauon.outbound.limits import ConnectionLimit, OutboundError, public_address, remaining
from tauon.outbound.mqtt_client import parse_address as parse_mqtt
from tauon.outbound.redis_address import parse_address as parse_redis
from tauon.outbound.redis_client import RedisResult, RedisTarget, Status, _flatten


@pytest.mark.parametrize(("address", "target"), [
    ("redis://localhost", RedisTarget("localhost", 6379, 0, None, None, False)),
    ("redis://:pw@10.0.0.1:7000/3", RedisTarget("10.0.0.1", 7000, 3, None, "pw", False)),
    ("rediss://me:p%40ss@cache.example/", RedisTarget("cache.example", 6379, 0, "me", "p@ss", True)),
    ("redis://[::1]:6380", RedisTarget("::1", 6380, 0, None, None, False)),
])
def test_redis_addresses(address: str, target: RedisTarget) -> None:
    assert parse_redis(address) == target


@pytest.mark.parametrize("address", [
    "localhost:6379", "unix:///run/redis.sock", "redis+unix:///tmp/x", "http://h", "redis://h:99999",
    "redis://h/db", "redis://", "redis://h/-1",
])
def test_bad_redis_addresses_are_invalid_address(address: str) -> None:
    with pytest.raises(OutboundError) as failure:
        parse_redis(address)
    assert failure.value.kind == "invalid-address"


def test_replies_convert_as_spin_does() -> None:
    out: list[RedisResult] = []
    _flatten([Status("OK"), 7, None, b"\x00bin", [b"nested", [3, Status("QUEUED")]]], out)
    assert out == [("status", "OK"), ("int64", 7), ("nil", None), ("binary", b"\x00bin"),
                   ("binary", b"nested"), ("int64", 3), ("status", "QUEUED")]
    with pytest.raises(OutboundError) as failure:
        _flatten([1, redis.ResponseError("WRONGTYPE Operation against a key")], [])
    assert failure.value.kind == "other" and "WRONGTYPE" in (failure.value.message or "")


def test_mqtt_addresses_need_a_client_id_and_known_options() -> None:
    target = parse_mqtt("mqtt://broker:1884?client_id=c1&clean_session=false&keep_alive_secs=5")
    assert (target.host, target.port, target.tls, target.client_id, target.clean_session) == (
        "broker", 1884, False, "c1", False)
    assert parse_mqtt("mqtts://broker?client_id=x").port == 8883
    assert parse_mqtt("tcp://broker?client_id=x").port == 1883
    assert parse_mqtt("mqtt://b?client_id=x&conn_timeout_secs=2").connect_timeout == 2
    for bad in ("mqtt://broker:1883", "ws://broker?client_id=x", "mqtt://b?client_id=x&nope=1",
                "mqtt://b?client_id=x&inflight_num=many", "mqtt://b?client_id=x&clean_session=1",
                "mqtt://b:port?client_id=x"):
        with pytest.raises(OutboundError) as failure:
            parse_mqtt(bad)
        assert failure.value.kind == "invalid-address", bad


def test_public_address_drops_credentials_path_and_query() -> None:
    assert public_address("redis://user:hunter2@cache:6380/2?x=y") == "redis://cache:6380"
    assert public_address("mqtt://u:pw@[::1]?client_id=c") == "mqtt://[::1]"
    assert "hunter2" not in public_address("hunter2")
    assert public_address("redis://h:notaport") == "(an unparsable address)"


class Owner:
    def __init__(self, limit: ConnectionLimit) -> None:
        self.limit = limit
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        self.limit.release(self)


def test_connection_limit_waits_until_the_deadline_then_refuses() -> None:
    limit = ConnectionLimit(2)
    first, second, third = Owner(limit), Owner(limit), Owner(limit)
    far = time.monotonic() + 10
    assert limit.acquire(first, far) and limit.acquire(second, far)
    started = time.monotonic()
    assert not limit.acquire(third, time.monotonic() + 0.5)  # 0.5 s minus the guest's reserve
    assert 0.2 <= time.monotonic() - started < 2
    threading.Timer(0.2, first.close).start()  # a slot frees up while `third` waits
    assert limit.acquire(third, far)
    assert limit.in_use == 2


def test_closing_the_limit_closes_what_is_open_and_refuses_more() -> None:
    limit = ConnectionLimit(4)
    owners = [Owner(limit) for _ in range(3)]
    for owner in owners:
        assert limit.acquire(owner, time.monotonic() + 5)
    owners[0].close()
    limit.close()
    assert [o.closed for o in owners] == [1, 1, 1] and limit.in_use == 0
    assert not limit.acquire(Owner(limit), time.monotonic() + 5)
    assert remaining(time.monotonic() - 1) == 0


class Memory:
    def __init__(self) -> None:
        self.data = bytearray(4096)
        self.heap = 1024

    def read(self, ptr: int, length: int) -> bytes:
        if ptr + length > len(self.data):
            raise AbiError("out of bounds")
        return bytes(self.data[ptr:ptr + length])

    def write(self, ptr: int, data: bytes) -> None:
        self.data[ptr:ptr + len(data)] = data

    def alloc(self, size: int, align: int) -> int:
        ptr = (self.heap + align - 1) // align * align
        self.heap = ptr + size
        return ptr


def test_legacy_parameter_and_result_layouts() -> None:
    mem = Memory()
    mem.write(100, b"key")
    mem.write(200, struct.pack("<B7xII", 1, 100, 3) + struct.pack("<B7xq", 0, -5))
    assert read_redis_parameters(mem, 200, 2) == [("binary", b"key"), ("int64", -5)]
    mem.write(232, struct.pack("<B15x", 9))
    with pytest.raises(AbiError):
        read_redis_parameters(mem, 232, 1)
    ptr, count = lower_redis_results(mem, [("nil", None), ("status", "OK"), ("int64", 1 << 40),
                                           ("binary", b"\xff")])
    assert count == 4 and ptr % 8 == 0
    raw = mem.read(ptr, 64)
    assert raw[0] == 0 and raw[16] == 1 and raw[32] == 2 and raw[48] == 3
    status_ptr, status_len = struct.unpack_from("<II", raw, 24)
    assert mem.read(status_ptr, status_len) == b"OK"
    assert struct.unpack_from("<q", raw, 40)[0] == 1 << 40
    bin_ptr, bin_len = struct.unpack_from("<II", raw, 56)
    assert mem.read(bin_ptr, bin_len) == b"\xff"
