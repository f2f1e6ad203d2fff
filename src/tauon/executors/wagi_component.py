"""WAGI for components (spin-spec §4.5): a `wasi:cli/run` command run once per request, CGI style.

What Spin 3+ pushes for WAGI apps: the `_start` module wrapped with the preview1 command adapter. It
runs on tauon's Python WASI host: argv and the CGI environment from executors/cgi.py, the request body
as stdin, stdout captured (bounded) and parsed as a CGI response, stderr logged, the component's
mounts read-only. Exit codes are handled like the core-module WAGI executor: 0 is success, anything
else (or `run` returning an error) fails the request with a 500.
"""

from __future__ import annotations

import anyio
from starlette.types import Receive, Send
from wasmtime.component import Component

from tauon.executors.base import ExecutorSetup, GuestError, RoutedRequest
from tauon.executors.buffered import guest_error_kind, receive_body
from tauon.executors.cgi import CgiOutputError, build_argv, build_env, parse_output, response_headers
from tauon.executors.oneshot import ComponentExecutor, GuestRunner, Trap
from tauon.executors.responses import send_response
from tauon.hostif.cli import EXTENSION, CapturedOutput, CommandIO, GuestExit
from tauon.hostif.linker import LinkedComponent
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.slots import SlotHold

STDOUT_LIMIT = 64 * 1024 * 1024
"""Largest response (headers + body) a guest may write; beyond it the request fails."""


class WagiComponentExecutor(ComponentExecutor):
    def __init__(self, setup: ExecutorSetup, *, component: Component, export: str, linked: LinkedComponent,
                 config: HostConfig, component_env: dict[str, str], argv_template: str,
                 runner: GuestRunner | None = None) -> None:
        super().__init__(setup, component=component, linked=linked, config=config, runner=runner)
        self.export = export
        self._env = component_env
        self._argv_template = argv_template
        self._run = self._oneshot(export, "run")

    async def serve(self, request: RoutedRequest, receive: Receive, send: Send) -> None:
        body = await receive_body(request, receive, send, self._limits.max_request_body)
        if body is None:
            return
        command = CommandIO(
            arguments=build_argv(self._argv_template, request.path, request.query),
            environment=build_env(request, len(body), self._env),
            stdin=body,
            stdout=CapturedOutput(STDOUT_LIMIT),
        )
        hold = SlotHold()
        stdout = await anyio.to_thread.run_sync(self._in_slot, hold, self._execute, command, hold,
                                                limiter=self._limiter)
        try:
            response = parse_output(stdout)
        except CgiOutputError as exc:
            raise GuestError(f"{self._label}: {exc}", kind="output") from None
        await send_response(send, response.status, response_headers(response), response.body)

    def _execute(self, command: CommandIO, hold: SlotHold) -> bytes:
        """Worker thread: run the command to completion; returns its stdout or raises GuestError."""
        state = HostState(self._config, timeout=self._limits.request_timeout,
                          extensions={EXTENSION: command}, slot=hold)
        code = 0
        try:
            result = self._run.call(state)
            if result[0] != "ok":
                code = 1  # wasi:cli/run returned err: what a non-zero exit status turns into
        except Trap as exc:
            if isinstance(exc.host_error, GuestExit):
                code = exc.host_error.code
            elif exc.kind == "timeout":
                raise GuestError(f"{self._label}: interrupted after the request timeout of "
                                 f"{self._limits.request_timeout:g} s", kind="timeout") from None
            else:
                raise GuestError(f"{self._label}: {exc}", kind=guest_error_kind(exc.kind)) from None
        if command.stdout.overflowed:
            raise GuestError(f"{self._label}: response larger than {STDOUT_LIMIT} bytes", kind="output")
        if code != 0:
            raise GuestError(f"{self._label}: exited with status {code}", kind="exit")
        return bytes(command.stdout.data)
