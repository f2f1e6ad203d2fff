"""The Spin 1.x executor (spin-spec §4.2, §4.6 case 3): a core module exporting `handle-http-request`.

Spin componentizes such a module with its adapter; tauon calls the core ABI directly instead, with
wasmtime's WASI preview1 underneath and the old-ABI imports served from tauon's services
(legacy_imports). As in Spin, each request gets a fresh Store and instance, run in a worker thread
under the app's limiter with a memory limit and an epoch deadline.
"""

from __future__ import annotations

import time

import anyio
import wasmtime
from starlette.types import Receive, Send

from tauon.app.plan import ComponentPlan
from tauon.errors import LoadError
from tauon.executors.allowed import allowed_hosts_of
from tauon.executors.base import ExecutorSetup, GuestError, GuestExecutor, RoutedRequest, check_mounts
from tauon.executors.buffered import receive_body
from tauon.executors.failures import classify_failure, last_line, memory_size
from tauon.executors.legacy_abi import AbiError, LegacyResponse, lift_response, lower_request, method_index
from tauon.executors.legacy_imports import LegacyImportTrap, RequestContext, WasmMemory, define_imports
from tauon.executors.responses import send_empty, send_response
from tauon.hostif.http_buffered import LegacyHttp
from tauon.hostif.http_pool import HttpPool
from tauon.hostif.netblock import blocked_reason
from tauon.services import AppServices
from tauon.wasm.capture import OutputCapture
from tauon.wasm.engine import watched
from tauon.wasm.slots import SlotHold
from tauon.wasm.wasi import wasi_store

EXPORT = "handle-http-request"
ALLOCATORS = ("canonical_abi_realloc", "cabi_realloc")
FREE = "canonical_abi_free"
POST_RETURN = f"cabi_post_{EXPORT}"
OUTPUT_LIMIT = 1024 * 1024
"""Bytes of guest stdout and of stderr kept (and logged) per request."""
OUTPUT_MAX_LINES = 1000
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def _func(module: wasmtime.Module, name: str) -> wasmtime.FuncType | None:
    for export in module.exports:
        if export.name == name and isinstance(export.type, wasmtime.FuncType):
            return export.type
    return None


def is_legacy_spin_module(module: wasmtime.Module) -> bool:
    """True for a Spin 1.x-style core module (it exports `handle-http-request`), `_start` or not."""
    return _func(module, EXPORT) is not None


def _signature(ty: wasmtime.FuncType) -> tuple[list[str], list[str]]:
    return [str(p) for p in ty.params], [str(r) for r in ty.results]


class SpinLegacyExecutor(GuestExecutor):
    def __init__(self, setup: ExecutorSetup, *, component: ComponentPlan, module: wasmtime.Module,
                 services: AppServices) -> None:
        super().__init__(setup)
        self._component = component
        self._ticks = setup.engine.deadline_ticks(setup.limits.request_timeout)
        self._services = services.component(component)
        field = f"components.{component.id}.source"
        self._check_exports(module, field)
        check_mounts(component)
        self._allowed = allowed_hosts_of(component, resolve=services.resolver.resolve)
        linker = wasmtime.Linker(setup.engine.engine)
        linker.define_wasi()
        define_imports(linker)
        try:
            self._pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise LoadError(
                f"component '{component.id}' cannot be linked: {last_line(str(exc))}",
                field=field,
                hint="a Spin 1.x module may import WASI preview1 and the Spin 1.x interfaces "
                "(spin-config, key-value, sqlite, wasi-outbound-http, outbound-redis/pg/mysql, llm)",
            ) from exc

    def _check_exports(self, module: wasmtime.Module, field: str) -> None:
        i32 = "i32"
        handler = _func(module, EXPORT)
        if handler is None or _signature(handler) != ([i32] * 10, [i32]):
            raise LoadError(
                f"component '{self.component_id}' exports no {EXPORT} taking 10 i32 and returning an i32",
                field=field,
                hint="build it with the Spin 1.x SDK (wit-bindgen 0.2 canonical ABI)",
            )
        allocator = next((name for name in ALLOCATORS if _func(module, name) is not None), None)
        if allocator is None or _signature(_func(module, allocator)) != ([i32] * 4, [i32]):  # type: ignore[arg-type]
            raise LoadError(
                f"component '{self.component_id}' exports no canonical_abi_realloc or cabi_realloc "
                "(old_ptr, old_size, align, new_size) -> ptr",
                field=field,
            )
        if not any(e.name == "memory" and isinstance(e.type, wasmtime.MemoryType) for e in module.exports):
            raise LoadError(f"component '{self.component_id}' exports no memory", field=field)
        self._allocator = allocator

    def _allows_unblocked(self, url: str, scheme: str = "https") -> bool:
        """For the Redis and RDBMS imports: allowed, and not only at addresses in block_networks."""
        if not self._allowed.allows(url, scheme):
            return False
        reason = blocked_reason(self._services.blocked_networks, url, scheme)
        if reason is not None:
            self._log.info("%s: outbound connection refused: %s", self._label, reason)
        return reason is None

    async def serve(self, request: RoutedRequest, receive: Receive, send: Send) -> None:
        method = method_index(request.method)
        if method is None:
            await send_empty(send, 405)
            return
        body = await receive_body(request, receive, send, self._limits.max_request_body)
        if body is None:
            return
        uri = request.path + (f"?{request.query}" if request.query else "")
        headers = [*request.headers, *((v.header, v.value) for v in request.spin_values)]
        hold = SlotHold()
        response = await anyio.to_thread.run_sync(
            self._in_slot, hold, self._run, method, uri, headers, body, hold, limiter=self._limiter
        )
        status, raw_headers, payload = self._response(response)
        await send_response(send, status, raw_headers, payload)

    def close(self) -> None:
        # The services belong to the generation (shared by its executors); it closes them.
        pass

    def _response(self, response: LegacyResponse) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if response.status < 100 or response.status > 600:
            raise GuestError(f"{self._label}: malformed HTTP status code {response.status}", kind="output")
        collapsed: dict[str, str] = {}
        for name, value in response.headers or ():
            if not name or not set(name) <= _TOKEN or any(c in value for c in "\r\n\0"):
                raise GuestError(f"{self._label}: invalid response header {name!r}", kind="output")
            collapsed[name.lower()] = value  # Spin inserts into a header map: the last value wins
        body = response.body or b""
        collapsed.pop("transfer-encoding", None)
        collapsed["content-length"] = str(len(body))
        try:
            raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in collapsed.items()]
        except UnicodeEncodeError:
            raise GuestError(f"{self._label}: response header value is not Latin-1", kind="output") from None
        return response.status, raw, body

    def _run(self, method: int, uri: str, headers: list[tuple[str, str]], body: bytes,
             hold: SlotHold) -> LegacyResponse:
        """Worker thread: one fresh instance, one call; returns the response or raises GuestError."""
        if not self._engine.ticking:
            raise RuntimeError("WasmEngine.start() was not called: guests would run without a deadline")
        deadline = time.monotonic() + self._limits.request_timeout
        context = RequestContext(self._services, self._label, self._log, self._allows_unblocked,
                                 deadline=deadline, slot=hold)
        allowed = self._allowed
        context.http = LegacyHttp(allowed.allows, lambda: allowed.allows_relative(["http", "https"]),
                                  deadline, blocked=self._services.blocked_networks,
                                  pool=HttpPool(enabled=None if self._services.http_pooling else False),
                                  tls=self._services.tls_contexts, limit=self._services.http_limit)
        with OutputCapture("stdout", OUTPUT_LIMIT) as out, OutputCapture("stderr", OUTPUT_LIMIT) as err:
            store = wasi_store(self._engine.engine, env=list(self._component.env.items()),
                               mounts=self._component.mounts, stdout_path=out.path,
                               stderr_path=err.path, memory_limit=self._limits.max_memory,
                               deadline_ticks=self._ticks, data=context)
            failure: GuestError | None = None
            instance: wasmtime.Instance | None = None
            response: LegacyResponse | None = None
            try:
                with watched(self._engine, out, err):
                    instance = self._pre.instantiate(store)
                    response = self._call(store, instance, method, uri, headers, body)
            except (wasmtime.Trap, wasmtime.WasmtimeError, AbiError, LegacyImportTrap) as exc:
                failure = self._failure(exc, store, instance, context)
                # The traceback's frames hold the Store (a cycle): drop it so memory is freed now.
                exc.__traceback__ = None
            finally:
                context.http.close()
            del store, instance
            self._forward(out, "stdout")
            self._forward(err, "stderr")
        if failure is not None:
            raise failure
        assert response is not None
        return response

    def _call(
        self,
        store: wasmtime.Store,
        instance: wasmtime.Instance,
        method: int,
        uri: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> LegacyResponse:
        exports = instance.exports(store)
        initialize = exports.get("_initialize")
        if isinstance(initialize, wasmtime.Func):
            initialize(store)  # reactor modules set up their runtime here
        memory, realloc, handler = exports["memory"], exports[self._allocator], exports[EXPORT]
        assert isinstance(memory, wasmtime.Memory)
        assert isinstance(realloc, wasmtime.Func) and isinstance(handler, wasmtime.Func)
        guest = WasmMemory(store, memory, realloc)
        ret = handler(store, *lower_request(guest, method, uri, headers, body))
        response = lift_response(guest, ret)
        post, free = exports.get(POST_RETURN), exports.get(FREE)
        if isinstance(post, wasmtime.Func):
            post(store, ret)
        elif isinstance(free, wasmtime.Func):
            for allocation in response.allocations:
                free(store, allocation.ptr, allocation.size, allocation.align)
        return response

    def _failure(
        self,
        exc: Exception,
        store: wasmtime.Store,
        instance: wasmtime.Instance | None,
        context: RequestContext,
    ) -> GuestError:
        if context.trap_reason is not None:  # a host function trapped: its reason, not wasmtime's text
            return GuestError(f"{self._label}: {context.trap_reason}", kind="trap")
        if isinstance(exc, AbiError | LegacyImportTrap):
            return GuestError(f"{self._label}: {exc}", kind="output")
        memory_used = memory_size(store, instance)
        kind, text = classify_failure(exc, memory_used=memory_used, memory_limit=self._limits.max_memory)
        if kind == "timeout":
            text = f"interrupted after the request timeout of {self._limits.request_timeout:g} s"
        return GuestError(f"{self._label}: {text}", kind=kind)

    def _forward(self, capture: OutputCapture, stream: str) -> None:
        data = capture.read()
        if not data:
            return
        lines = data.decode("utf-8", errors="replace").splitlines()
        for line in lines[:OUTPUT_MAX_LINES]:
            self._log.info("%s %s: %s", self._label, stream, line)
        if len(lines) > OUTPUT_MAX_LINES or capture.overflowed:
            self._log.info("%s %s: (truncated: more than %d lines or %d bytes)", self._label, stream,
                           OUTPUT_MAX_LINES, OUTPUT_LIMIT)
