"""Spin 1.x Redis handlers: a core module exporting `handle-redis-message` (wit-bindgen 0.2 ABI).

Spin 2+ componentizes such a module (spin-spec §4.6) and calls the adapted `fermyon:spin/inbound-redis`;
tauon calls the core ABI directly, as it does for `handle-http-request` (executors/spin_legacy.py, whose
linking, WASI store, old-ABI imports, output capture and failure reports this reuses).
ABI (Spin 1.x wit/ephemeral/spin-redis.wit): `handle-redis-message(payload_ptr, payload_len) -> ret`,
the payload allocated with the guest's realloc; at `ret`, byte 0 is the result tag (0 ok, 1 err) and
byte 1 the `error` enum (0 success, 1 error).
"""

from __future__ import annotations

import anyio
import wasmtime

from tauon.errors import LoadError
from tauon.executors.base import GuestError
from tauon.executors.legacy_abi import AbiError, lower_bytes
from tauon.executors.legacy_imports import LegacyImportTrap, RequestContext, WasmMemory
from tauon.executors.redis_component import check_result
from tauon.executors.spin_legacy import ALLOCATORS, OUTPUT_LIMIT, SpinLegacyExecutor, _func, _signature
from tauon.wasm.capture import OutputCapture
from tauon.wasm.engine import watched
from tauon.wasm.slots import SlotHold
from tauon.wasm.wasi import wasi_store

EXPORT = "handle-redis-message"
ERRORS = ("success", "error")


def is_legacy_redis_module(module: wasmtime.Module) -> bool:
    return _func(module, EXPORT) is not None


class RedisLegacyHandler(SpinLegacyExecutor):
    """Only `handle` is used (never `serve`): the Redis trigger calls it once per message."""

    def _check_exports(self, module: wasmtime.Module, field: str) -> None:
        i32 = "i32"
        handler = _func(module, EXPORT)
        if handler is None or _signature(handler) != ([i32, i32], [i32]):
            raise LoadError(
                f"component '{self.component_id}' exports no {EXPORT} taking 2 i32 and returning an i32",
                field=field, hint="build it with the Spin 1.x SDK (wit-bindgen 0.2 canonical ABI)")
        allocator = next((name for name in ALLOCATORS if _func(module, name) is not None), None)
        if allocator is None or _signature(_func(module, allocator)) != ([i32] * 4, [i32]):  # type: ignore[arg-type]
            raise LoadError(f"component '{self.component_id}' exports no canonical_abi_realloc or "
                            "cabi_realloc (old_ptr, old_size, align, new_size) -> ptr", field=field)
        if not any(e.name == "memory" and isinstance(e.type, wasmtime.MemoryType) for e in module.exports):
            raise LoadError(f"component '{self.component_id}' exports no memory", field=field)
        self._allocator = allocator

    async def handle(self, payload: bytes) -> None:
        hold = SlotHold()
        await anyio.to_thread.run_sync(self._in_slot, hold, self._run_message, payload, hold,
                                       limiter=self._limiter)

    def _run_message(self, payload: bytes, hold: SlotHold) -> None:
        """Worker thread: one fresh instance, one call; raises GuestError."""
        if not self._engine.ticking:
            raise RuntimeError("WasmEngine.start() was not called: guests would run without a deadline")
        context = RequestContext(self._services, self._label, self._log, self._allowed.allows, slot=hold)
        failure: GuestError | None = None
        with OutputCapture("stdout", OUTPUT_LIMIT) as out, OutputCapture("stderr", OUTPUT_LIMIT) as err:
            store = wasi_store(self._engine.engine, env=list(self._component.env.items()),
                               mounts=self._component.mounts, stdout_path=out.path,
                               stderr_path=err.path, memory_limit=self._limits.max_memory,
                               deadline_ticks=self._ticks, data=context)
            instance: wasmtime.Instance | None = None
            try:
                with watched(self._engine, out, err):
                    instance = self._pre.instantiate(store)
                    failure = self._call_message(store, instance, payload)
            except (wasmtime.Trap, wasmtime.WasmtimeError, AbiError, LegacyImportTrap) as exc:
                failure = self._failure(exc, store, instance, context)
                exc.__traceback__ = None  # its frames hold the Store: free the memory now
            del store, instance
            self._forward(out, "stdout")
            self._forward(err, "stderr")
        if failure is not None:
            raise failure

    def _call_message(self, store: wasmtime.Store, instance: wasmtime.Instance,
                      payload: bytes) -> GuestError | None:
        exports = instance.exports(store)
        initialize = exports.get("_initialize")
        if isinstance(initialize, wasmtime.Func):
            initialize(store)  # reactor modules set up their runtime here
        memory, realloc, handler = exports["memory"], exports[self._allocator], exports[EXPORT]
        assert isinstance(memory, wasmtime.Memory)
        assert isinstance(realloc, wasmtime.Func) and isinstance(handler, wasmtime.Func)
        guest = WasmMemory(store, memory, realloc)
        ret = handler(store, *lower_bytes(guest, payload))
        assert isinstance(ret, int)
        tag, code = guest.read(ret, 2)
        if tag > 1 or (tag == 1 and code >= len(ERRORS)):
            raise AbiError(f"invalid result<_, error> at {ret:#x}: tag {tag}, error {code}")
        try:
            check_result(self._label, ("err", ERRORS[code]) if tag == 1 else ("ok", None))
        except GuestError as exc:
            return exc
        return None
