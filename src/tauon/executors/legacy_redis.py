"""The Spin 1.x `outbound-redis` imports (wit-bindgen 0.2 ABI) on tauon's Redis client.

Each call names its address, as the v1 component interface does: `allowed_outbound_hosts` is checked,
a connection is opened for the call and closed after it, and any failure is `error` (the enum
`error {success, error}`), as Spin's adapter maps them. Results are written to the return area as
`expected<T, error>`: tag u8 at +0, then T (or the enum) at T's alignment (unit 1, lists 4, s64 8).
`redis-parameter` and `redis-result` lists are 16-byte elements: tag u8 at +0, payload at +8.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tauon.executors.legacy_abi import (
    AbiError,
    GuestMemory,
    lower_bytes,
    lower_string,
    lower_string_list,
    read_bytes,
    read_string,
    read_string_list,
    store_bytes,
    store_err_case,
    store_ok,
    write_i64,
)
from tauon.outbound.limits import OutboundError, public_address

if TYPE_CHECKING:  # redis-py loads on first use (tauon.outbound)
    from tauon.executors.legacy_imports import RequestContext
    from tauon.outbound.redis_client import RedisResult

_ERROR = 1
"""The `error` case of the v1 enum."""
_ELEMENT = 16
_MAX_PARAMS = 1 << 20


def read_redis_parameters(mem: GuestMemory, ptr: int, count: int) -> list[tuple[str, Any]]:
    """A list<redis-parameter>: int64(s64) is tag 0, binary(list<u8>) tag 1."""
    if count > _MAX_PARAMS:
        raise AbiError(f"list of {count} redis parameters is larger than the host accepts")
    raw = read_bytes(mem, ptr, count * _ELEMENT)
    params: list[tuple[str, Any]] = []
    for i in range(count):
        base = i * _ELEMENT
        tag = raw[base]
        if tag == 0:
            params.append(("int64", struct.unpack_from("<q", raw, base + 8)[0]))
        elif tag == 1:
            params.append(("binary", read_bytes(mem, *struct.unpack_from("<II", raw, base + 8))))
        else:
            raise AbiError(f"invalid redis-parameter tag {tag}")
    return params


def lower_redis_results(mem: GuestMemory, results: Sequence[RedisResult]) -> tuple[int, int]:
    """A list<redis-result>: nil 0, status(string) 1, int64(s64) 2, binary(list<u8>) 3."""
    table = bytearray()
    for case, value in results:
        if case == "nil":
            table += struct.pack("<B15x", 0)
        elif case == "status":
            table += struct.pack("<B7xII", 1, *lower_string(mem, value))
        elif case == "int64":
            table += struct.pack("<B7xq", 2, value)
        else:
            table += struct.pack("<B7xII", 3, *lower_bytes(mem, value))
    ptr = mem.alloc(len(table), 8)
    if table:
        mem.write(ptr, bytes(table))
    return ptr, len(results)


Store = Callable[[GuestMemory, int, Any], None]


def _store_unit(mem: GuestMemory, ret: int, value: Any) -> None:
    store_ok(mem, ret)


def _store_payload(mem: GuestMemory, ret: int, value: Any) -> None:
    store_ok(mem, ret)
    store_bytes(mem, ret + 4, value if value is not None else b"")


def _store_s64(mem: GuestMemory, ret: int, value: Any) -> None:
    store_ok(mem, ret)
    write_i64(mem, ret + 8, value)


def _store_strings(mem: GuestMemory, ret: int, value: Any) -> None:
    store_ok(mem, ret)
    mem.write(ret + 4, struct.pack("<II", *lower_string_list(mem, value)))


def _store_results(mem: GuestMemory, ret: int, value: Any) -> None:
    store_ok(mem, ret)
    mem.write(ret + 4, struct.pack("<II", *lower_redis_results(mem, value)))


def _run(ctx: RequestContext, address: str, op: str, *args: Any) -> tuple[bool, Any]:
    """Check, connect, call RedisConnection.<op>, close: (True, value) or (False, None) after logging
    why."""
    if not ctx.allows_redis(address):
        ctx.logger.info("%s: outbound Redis connection to %s denied by allowed_outbound_hosts", ctx.label,
                        public_address(address))
        return False, None
    try:
        outbound = ctx.services.outbound
        if outbound is None:
            raise OutboundError("other", "no outbound clients")
        with ctx.slot.blocked(), outbound.redis.connection(address, ctx.deadline) as conn:
            return True, getattr(conn, op)(ctx.deadline, *args)
    except OutboundError as exc:
        ctx.logger.info("%s: outbound Redis call to %s failed: %s", ctx.label, public_address(address),
                        exc.message or exc.kind)
        return False, None


def _import(op: str, read: Callable[[GuestMemory, tuple[int, ...]], tuple[Any, ...]],
            store: Store, offset: int) -> Callable[..., None]:
    """An import (addr_ptr, addr_len, *rest, ret): `read` turns `rest` into op's arguments."""

    def fn(mem: GuestMemory, ctx: RequestContext, addr_ptr: int, addr_len: int, *rest: int) -> None:
        *params, ret = rest
        address = read_string(mem, addr_ptr, addr_len)
        done, value = _run(ctx, address, op, *read(mem, tuple(params)))
        if done:
            store(mem, ret, value)
        else:
            store_err_case(mem, ret, offset, _ERROR)

    return fn


def _key(mem: GuestMemory, p: tuple[int, ...]) -> tuple[Any, ...]:
    return (read_string(mem, p[0], p[1]),)


def _key_bytes(mem: GuestMemory, p: tuple[int, ...]) -> tuple[Any, ...]:
    return (read_string(mem, p[0], p[1]), read_bytes(mem, p[2], p[3]))


def _keys(mem: GuestMemory, p: tuple[int, ...]) -> tuple[Any, ...]:
    return (read_string_list(mem, p[0], p[1]),)


def _key_strings(mem: GuestMemory, p: tuple[int, ...]) -> tuple[Any, ...]:
    return (read_string(mem, p[0], p[1]), read_string_list(mem, p[2], p[3]))


def _command(mem: GuestMemory, p: tuple[int, ...]) -> tuple[Any, ...]:
    return (read_string(mem, p[0], p[1]), read_redis_parameters(mem, p[2], p[3]))


REDIS_IMPORTS: dict[str, tuple[int, Callable[..., None]]] = {
    "publish": (7, _import("publish", _key_bytes, _store_unit, 1)),
    "set": (7, _import("set", _key_bytes, _store_unit, 1)),
    "get": (5, _import("get", _key, _store_payload, 4)),
    "incr": (5, _import("incr", _key, _store_s64, 8)),
    "del": (5, _import("delete", _keys, _store_s64, 8)),
    "sadd": (7, _import("sadd", _key_strings, _store_s64, 8)),
    "smembers": (5, _import("smembers", _key, _store_strings, 4)),
    "srem": (7, _import("srem", _key_strings, _store_s64, 8)),
    "execute": (7, _import("execute", _command, _store_results, 4)),
}
"""name -> (number of i32 params, implementation(mem, ctx, *params))."""
