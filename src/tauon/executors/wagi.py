"""The WAGI executor (spin-spec §4.5): a WASI preview1 command run once per request, CGI style.

Each request gets a fresh Store and instance (as in Spin), run in a worker thread under the app's
limiter, with a memory limit and an epoch deadline. The request body is stdin, the CGI variables are
the environment, stdout is the response and stderr goes to the app's log.
"""

from __future__ import annotations

import anyio
import wasmtime
from starlette.types import Receive, Send

from tauon.app.plan import ComponentPlan
from tauon.errors import LoadError
from tauon.executors.base import ExecutorSetup, GuestError, GuestExecutor, RoutedRequest, check_mounts
from tauon.executors.buffered import receive_body
from tauon.executors.cgi import CgiOutputError, build_argv, build_env, parse_output, response_headers
from tauon.executors.failures import classify_failure, last_line, memory_size
from tauon.executors.responses import send_response
from tauon.wasm.capture import OutputCapture
from tauon.wasm.engine import watched
from tauon.wasm.slots import SlotHold
from tauon.wasm.wasi import wasi_store

STDOUT_LIMIT = 64 * 1024 * 1024
"""Largest response (headers + body) a guest may write; beyond it the request fails."""
STDERR_LIMIT = 1024 * 1024
STDERR_MAX_LINES = 1000
"""Guest stderr is logged line by line up to this many lines per request."""
WASM_PAGE = 65536


class WagiExecutor(GuestExecutor):
    def __init__(self, setup: ExecutorSetup, *, component: ComponentPlan, module: wasmtime.Module,
                 argv_template: str) -> None:
        super().__init__(setup)
        self._component = component
        self._argv_template = argv_template
        self._ticks = setup.engine.deadline_ticks(setup.limits.request_timeout)
        field = f"components.{component.id}.source"
        if not any(e.name == "_start" and isinstance(e.type, wasmtime.FuncType) for e in module.exports):
            raise LoadError(
                f"component '{component.id}' does not export a _start function, so it cannot run as WAGI",
                field=field,
                hint="build it as a WASI command (a C/Rust program with main), not a reactor or library",
            )
        check_mounts(component)
        linker = wasmtime.Linker(setup.engine.engine)
        linker.define_wasi()
        try:
            # Resolves imports once; each request then only instantiates.
            self._pre = linker.instantiate_pre(module)
        except wasmtime.WasmtimeError as exc:
            raise LoadError(
                f"component '{component.id}' cannot be linked: {last_line(str(exc))}",
                field=field,
                hint="a WAGI module may import only wasi_snapshot_preview1 functions",
            ) from exc

    async def serve(self, request: RoutedRequest, receive: Receive, send: Send) -> None:
        body = await receive_body(request, receive, send, self._limits.max_request_body)
        if body is None:
            return
        argv = build_argv(self._argv_template, request.path, request.query)
        env = build_env(request, len(body), self._component.env)
        # A WAGI module has no host calls that block: nothing lends its slot.
        stdout = await anyio.to_thread.run_sync(self._in_slot, SlotHold(), self._run, argv, env, body,
                                              limiter=self._limiter)
        try:
            response = parse_output(stdout)
        except CgiOutputError as exc:
            raise GuestError(f"{self._label}: {exc}", kind="output") from None
        await send_response(send, response.status, response_headers(response), response.body)

    def close(self) -> None:
        # Nothing per-executor outlives a request except the pre-instance, freed with this object.
        pass

    def _run(self, argv: list[str], env: list[tuple[str, str]], body: bytes) -> bytes:
        """Worker thread: one fresh instance, run to completion; returns stdout or raises GuestError."""
        if not self._engine.ticking:
            raise RuntimeError("WasmEngine.start() was not called: guests would run without a deadline")
        with OutputCapture("stdout", STDOUT_LIMIT) as out, OutputCapture("stderr", STDERR_LIMIT) as err:
            store = wasi_store(self._engine.engine, env=env, mounts=self._component.mounts,
                               stdout_path=out.path, stderr_path=err.path,
                               memory_limit=self._limits.max_memory, deadline_ticks=self._ticks,
                               argv=argv, stdin=body)
            failure: GuestError | None = None
            instance: wasmtime.Instance | None = None
            try:
                with watched(self._engine, out, err):
                    instance = self._pre.instantiate(store)
                    start = instance.exports(store)["_start"]
                    assert isinstance(start, wasmtime.Func)
                    start(store)
            except wasmtime.ExitTrap as exc:
                if exc.code != 0:
                    failure = self._failure(exc, store, instance)
                exc.__traceback__ = None  # as below
            except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
                failure = self._failure(exc, store, instance)
                # The traceback's frames (wasmtime's enter_wasm generator holds the trap) form a cycle
                # that would keep the Store, its memory and capture files alive until a GC pass.
                exc.__traceback__ = None
            # Drop the store now: it holds wasmtime's own descriptors of the capture files.
            del store, instance
            self._forward_stderr(err)
            if failure is not None:
                raise failure
            if out.overflowed:
                raise GuestError(f"{self._label}: response larger than {STDOUT_LIMIT} bytes", kind="output")
            return out.read()

    def _failure(
        self, exc: Exception, store: wasmtime.Store, instance: wasmtime.Instance | None
    ) -> GuestError:
        memory_used = memory_size(store, instance)
        kind, text = classify_failure(exc, memory_used=memory_used, memory_limit=self._limits.max_memory)
        if kind == "timeout":
            text = f"interrupted after the request timeout of {self._limits.request_timeout:g} s"
        return GuestError(f"{self._label}: {text}", kind=kind)

    def _forward_stderr(self, err: OutputCapture) -> None:
        data = err.read()
        if not data:
            return
        lines = data.decode("utf-8", errors="replace").splitlines()
        for line in lines[:STDERR_MAX_LINES]:
            self._log.info("%s stderr: %s", self._label, line)
        if len(lines) > STDERR_MAX_LINES or err.overflowed:
            self._log.info(
                "%s stderr: (truncated: more than %d lines or %d bytes)",
                self._label,
                STDERR_MAX_LINES,
                STDERR_LIMIT,
            )
