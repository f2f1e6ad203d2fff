"""Host functions a Spin 1.x core module imports (old module names, spin-spec §4.2).

Implemented on tauon's services: `spin-config.get-config`, `key-value.*`, `sqlite.*`, `outbound-redis.*`
(legacy_redis.py), `outbound-pg.*` / `outbound-mysql.*` (legacy_rdbms.py) and outbound HTTP
(`wasi-outbound-http.request`, legacy_http.py). LLM, which tauon does not provide, answers with the
interface's own error result, so a guest sees a failed call it can handle, never a link error.
Flattenings are those of Spin's adapter (`wasi_snapshot_preview1.spin.wasm` exports).

Per-request state (open handles) lives in a `RequestContext` that is the request's Store data
(`wasi_store(..., data=context)`); a host function finds it through its Caller. wasmtime-py passes a
host function's exception through a process-global, so host functions do not raise for expected
failures; for a guest ABI violation they record the reason in the context first, which the executor
reads instead of trusting the exception that surfaces.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import _value

from tauon.executors import legacy_http
from tauon.executors.legacy_abi import (
    AbiError,
    GuestMemory,
    lower_string_list,
    read_bytes,
    read_sqlite_values,
    read_string,
    store_bytes,
    store_err_case,
    store_ok,
    store_query_result,
    store_string,
    write_u8,
    write_u32,
)
from tauon.executors.legacy_rdbms import HOST_FUNCS as RDBMS_FUNCS
from tauon.executors.legacy_redis import REDIS_IMPORTS
from tauon.hostif import http_buffered
from tauon.hostif.spin_unconfigured import LLM_UNSUPPORTED
from tauon.services import ComponentServices
from tauon.services.keyvalue import KeyValueError, KeyValueStore
from tauon.services.sqlite import Database, SqliteError
from tauon.services.variables import InvalidName, Undefined, VariableError
from tauon.wasm.slots import SlotHold

MAX_HANDLES = 256
"""Open key-value stores / database connections per request (beyond: store-table-full / io error)."""

_KV_CASES = {
    "store-table-full": 0, "no-such-store": 1, "access-denied": 2, "invalid-store": 3, "no-such-key": 4
}
_KV_IO = 5
_SQL_CASES = {"no-such-database": 0, "access-denied": 1, "invalid-connection": 2, "database-full": 3}
_SQL_IO = 4


class LegacyImportTrap(Exception):
    """Raised by a Spin 1.x import (core ABI) to trap the guest; the reason is also kept in the
    RequestContext. (Component host functions raise hostif.registry.HostTrap.)"""


@dataclass
class RequestContext:
    services: ComponentServices
    label: str
    logger: logging.Logger
    allows_url: Callable[..., bool]
    """AllowedHosts.allows: (url, default scheme = https) -> allowed by allowed_outbound_hosts."""
    deadline: float = field(default_factory=lambda: time.monotonic() + 30.0)
    """The request's deadline (monotonic): outbound calls (Redis, databases) wait no longer."""
    stores: dict[int, KeyValueStore] = field(default_factory=dict)
    databases: dict[int, Database] = field(default_factory=dict)
    next_handle: int = 0
    trap_reason: str | None = None
    http: http_buffered.LegacyHttp | None = None
    """Outbound HTTP for this request (None: denied ones are `destination-not-allowed`, the others
    `runtime-error`)."""
    slot: SlotHold = field(default_factory=SlotHold)
    """The run slot this request's guest holds (wasm/slots.py), lent while a host call blocks."""

    def allows_redis(self, address: str) -> bool:
        """`allows_url` with Spin's default scheme for Redis addresses."""
        return self.allows_url(address if "://" in address else f"redis://{address}")

    def add(self, table: dict[int, Any], value: Any) -> int | None:
        if len(table) >= MAX_HANDLES:
            return None
        handle, self.next_handle = self.next_handle, self.next_handle + 1
        table[handle] = value
        return handle


def _caller_context(caller: wasmtime.Caller) -> RequestContext | None:
    """The RequestContext its store was created with. wasmtime-py's Caller does not expose the
    store's data, so this reads it as `Store.data()` does (the same two private calls)."""
    index: Any = ffi.wasmtime_context_get_data(caller._context())  # an int (c_void_p) or None
    context = _value._unintern(index) if index else None
    return context if isinstance(context, RequestContext) else None


class WasmMemory:
    """GuestMemory over a wasmtime memory and the guest's realloc (a Store or a Caller as context)."""

    def __init__(self, store: Any, memory: wasmtime.Memory, realloc: wasmtime.Func) -> None:
        self._store = store
        self._memory = memory
        self._realloc = realloc

    def read(self, ptr: int, length: int) -> bytes:
        self._check(ptr, length)
        return bytes(self._memory.read(self._store, ptr, ptr + length))

    def write(self, ptr: int, data: bytes) -> None:
        self._check(ptr, len(data))
        self._memory.write(self._store, data, ptr)

    def alloc(self, size: int, align: int) -> int:
        ptr = self._realloc(self._store, 0, 0, align, size)
        if not isinstance(ptr, int) or (size and (ptr == 0 or ptr % align)):
            raise AbiError(f"guest realloc({size}, align {align}) returned {ptr!r}")
        return ptr

    def _check(self, ptr: int, length: int) -> None:
        if ptr < 0 or length < 0 or ptr + length > self._memory.data_len(self._store):
            raise AbiError(f"guest memory access out of bounds: {length} bytes at {ptr:#x}")


def caller_memory(caller: wasmtime.Caller) -> WasmMemory:
    memory = caller.get("memory")
    realloc = caller.get("canonical_abi_realloc") or caller.get("cabi_realloc")
    if not isinstance(memory, wasmtime.Memory) or not isinstance(realloc, wasmtime.Func):
        raise AbiError("the module exports no memory or no canonical_abi_realloc/cabi_realloc")
    return WasmMemory(caller, memory, realloc)


HostFn = Callable[..., None]


def _host(name: str, fn: Callable[..., None]) -> HostFn:
    """Wrap an import: ABI violations become a trap whose reason names the function."""

    def wrapper(caller: wasmtime.Caller, *args: Any) -> None:
        context = _caller_context(caller)
        try:
            if context is None:
                raise LegacyImportTrap("host function called outside a request")
            fn(caller_memory(caller), context, *args)
        except (AbiError, LegacyImportTrap) as exc:
            reason = f"{name}: {exc}"
            if context is not None and context.trap_reason is None:
                context.trap_reason = reason
            raise LegacyImportTrap(reason) from None

    return wrapper


# -- spin-config ------------------------------------------------------------------------------------


def _get_config(mem: GuestMemory, ctx: RequestContext, key_ptr: int, key_len: int, ret: int) -> None:
    key = read_string(mem, key_ptr, key_len)
    try:
        value = ctx.services.variables.get(key)
    except VariableError as exc:
        # Spin's v1 mapping: invalid-name -> invalid-key, undefined -> provider, the rest -> other.
        case = 1 if isinstance(exc, InvalidName) else 0 if isinstance(exc, Undefined) else 3
        store_err_case(mem, ret, 4, case, str(exc))
        return
    store_ok(mem, ret)
    store_string(mem, ret + 4, value)


# -- key-value --------------------------------------------------------------------------------------


def _kv_error(mem: GuestMemory, ret: int, exc: KeyValueError) -> None:
    case = _KV_CASES.get(exc.kind)
    if case is None:
        store_err_case(mem, ret, 4, _KV_IO, exc.message or exc.kind)
    else:
        store_err_case(mem, ret, 4, case)


def _kv_store(mem: GuestMemory, ctx: RequestContext, handle: int, ret: int) -> KeyValueStore | None:
    store = ctx.stores.get(handle)
    if store is None:
        store_err_case(mem, ret, 4, _KV_CASES["invalid-store"])
    return store


def _kv_open(mem: GuestMemory, ctx: RequestContext, name_ptr: int, name_len: int, ret: int) -> None:
    label = read_string(mem, name_ptr, name_len)
    try:
        store = ctx.services.open_store(label)
    except KeyValueError as exc:
        _kv_error(mem, ret, exc)
        return
    handle = ctx.add(ctx.stores, store)
    if handle is None:
        store_err_case(mem, ret, 4, _KV_CASES["store-table-full"])
        return
    store_ok(mem, ret)
    write_u32(mem, ret + 4, handle)


KvOp = Callable[[GuestMemory, int, KeyValueStore, str, tuple[int, ...]], None]


def _kv_op(op: KvOp) -> Callable[..., None]:
    """The shape shared by get/set/delete/exists: (handle, key_ptr, key_len, *extra, ret)."""

    def run(mem: GuestMemory, ctx: RequestContext, handle: int, kp: int, kl: int, *rest: int) -> None:
        *extra, ret = rest
        key = read_string(mem, kp, kl)
        store = _kv_store(mem, ctx, handle, ret)
        if store is None:
            return
        try:
            op(mem, ret, store, key, tuple(extra))
        except KeyValueError as exc:
            _kv_error(mem, ret, exc)

    return run


def _get(mem: GuestMemory, ret: int, store: KeyValueStore, key: str, _: tuple[int, ...]) -> None:
    value = store.get(key)
    if value is None:
        store_err_case(mem, ret, 4, _KV_CASES["no-such-key"])  # v1 reports a missing key as an error
        return
    store_ok(mem, ret)
    store_bytes(mem, ret + 4, value)


def _set(mem: GuestMemory, ret: int, store: KeyValueStore, key: str, extra: tuple[int, ...]) -> None:
    value_ptr, value_len = extra
    store.set(key, read_bytes(mem, value_ptr, value_len))
    store_ok(mem, ret)


def _delete(mem: GuestMemory, ret: int, store: KeyValueStore, key: str, _: tuple[int, ...]) -> None:
    store.delete(key)
    store_ok(mem, ret)


def _exists(mem: GuestMemory, ret: int, store: KeyValueStore, key: str, _: tuple[int, ...]) -> None:
    found = store.exists(key)
    store_ok(mem, ret)
    write_u8(mem, ret + 4, int(found))


def _get_keys(mem: GuestMemory, ctx: RequestContext, handle: int, ret: int) -> None:
    store = _kv_store(mem, ctx, handle, ret)
    if store is None:
        return
    try:
        keys = store.get_keys()
    except KeyValueError as exc:
        _kv_error(mem, ret, exc)
        return
    ptr, count = lower_string_list(mem, keys)
    store_ok(mem, ret)
    mem.write(ret + 4, struct.pack("<II", ptr, count))


def _kv_close(mem: GuestMemory, ctx: RequestContext, handle: int) -> None:
    ctx.stores.pop(handle, None)


# -- sqlite -----------------------------------------------------------------------------------------


def _sql_error(mem: GuestMemory, ret: int, exc: SqliteError) -> None:
    case = _SQL_CASES.get(exc.kind)
    if case is None:
        store_err_case(mem, ret, 4, _SQL_IO, exc.message or exc.kind)
    else:
        store_err_case(mem, ret, 4, case)


def _sql_open(mem: GuestMemory, ctx: RequestContext, name_ptr: int, name_len: int, ret: int) -> None:
    label = read_string(mem, name_ptr, name_len)
    try:
        db = ctx.services.open_database(label)
    except SqliteError as exc:
        _sql_error(mem, ret, exc)
        return
    handle = ctx.add(ctx.databases, db)
    if handle is None:
        store_err_case(mem, ret, 4, _SQL_IO, "too many connections opened")
        return
    store_ok(mem, ret)
    write_u32(mem, ret + 4, handle)


def _sql_execute(
    mem: GuestMemory, ctx: RequestContext, handle: int, sp: int, sl: int, pp: int, pl: int, ret: int
) -> None:
    sql = read_string(mem, sp, sl)
    params = read_sqlite_values(mem, pp, pl)
    db = ctx.databases.get(handle)
    if db is None:
        store_err_case(mem, ret, 4, _SQL_CASES["invalid-connection"])
        return
    try:
        result = db.execute(sql, params)
    except SqliteError as exc:
        _sql_error(mem, ret, exc)
        return
    store_ok(mem, ret)
    store_query_result(mem, ret + 4, result.columns, result.rows)


def _sql_close(mem: GuestMemory, ctx: RequestContext, handle: int) -> None:
    ctx.databases.pop(handle, None)


# -- interfaces tauon does not provide --------------------------------------------------------------


def _outbound_http(mem: GuestMemory, ctx: RequestContext, *args: int) -> None:
    if ctx.http is None:  # no client for this request: Spin's errors without sending
        uri = read_string(mem, args[1], args[2])
        allowed = uri.startswith("/") or ctx.allows_url(uri)
        store_err_case(mem, args[-1], 4,
                       http_buffered.RUNTIME_ERROR if allowed else http_buffered.DESTINATION_NOT_ALLOWED)
        return
    legacy_http.request(mem, ctx.http, lambda text: ctx.logger.info("%s: %s", ctx.label, text), args,
                        ctx.slot)


def _unsupported(offset: int, case: int, message: str | None) -> Callable[..., None]:
    def fail(mem: GuestMemory, ctx: RequestContext, *args: int) -> None:
        store_err_case(mem, args[-1], offset, case, message)

    return fail


def _llm(model_ptr_index: int) -> Callable[..., None]:
    def fail(mem: GuestMemory, ctx: RequestContext, *args: int) -> None:
        model = read_string(mem, args[model_ptr_index], args[model_ptr_index + 1])
        if model not in ctx.services.ai_models:
            message = (
                f"The component does not have access to use '{model}'. To give the component access, "
                f"add '{model}' to the 'ai_models' key for the component in your spin.toml manifest"
            )
            store_err_case(mem, args[-1], 4, 2, message)  # invalid-input
        else:
            store_err_case(mem, args[-1], 4, 1, LLM_UNSUPPORTED)  # runtime-error

    return fail


_I = wasmtime.ValType.i32()
_F = wasmtime.ValType.f32()

IMPORTS: dict[tuple[str, str], tuple[list[wasmtime.ValType], Callable[..., None]]] = {
    ("spin-config", "get-config"): ([_I] * 3, _get_config),
    ("key-value", "open"): ([_I] * 3, _kv_open),
    ("key-value", "get"): ([_I] * 4, _kv_op(_get)),
    ("key-value", "set"): ([_I] * 6, _kv_op(_set)),
    ("key-value", "delete"): ([_I] * 4, _kv_op(_delete)),
    ("key-value", "exists"): ([_I] * 4, _kv_op(_exists)),
    ("key-value", "get-keys"): ([_I] * 2, _get_keys),
    ("key-value", "close"): ([_I], _kv_close),
    ("sqlite", "open"): ([_I] * 3, _sql_open),
    ("sqlite", "execute"): ([_I] * 6, _sql_execute),
    ("sqlite", "close"): ([_I], _sql_close),
    ("wasi-outbound-http", "request"): ([_I] * 11, _outbound_http),
    **{name: ([_I] * 7, fn) for name, fn in RDBMS_FUNCS.items()},
    ("llm", "infer"): ([_I] * 6 + [_F, _I, _F, _I, _F, _I], _llm(0)),
    ("llm", "generate-embeddings"): ([_I] * 5, _llm(0)),
    **{("outbound-redis", name): ([_I] * params, fn) for name, (params, fn) in REDIS_IMPORTS.items()},
}


def define_imports(linker: wasmtime.Linker) -> None:
    """Define every old-ABI import on `linker` (a guest links only the ones it imports)."""
    for (module, name), (params, fn) in IMPORTS.items():
        linker.define_func(
            module, name, wasmtime.FuncType(params, []), _host(f"{module}.{name}", fn), access_caller=True
        )
