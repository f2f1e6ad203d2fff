"""Redis message handlers (Spin's crates/trigger-redis): one fresh instance per message.

`RedisComponentHandler` calls a component's `fermyon:spin/inbound-redis#handle-message(payload) ->
result<_, error>`; `executors/redis_legacy.py` calls a Spin 1.x core module's `handle-redis-message`.
Both run the guest in a worker thread under the app's concurrency limiter, memory cap and time limit
(`request_timeout` bounds one message), and raise GuestError when the guest traps or returns an error.
"""

from __future__ import annotations

from typing import Any, Protocol

import anyio
from wasmtime.component import Component

from tauon.executors.base import ExecutorSetup, GuestError
from tauon.executors.buffered import guest_error_kind
from tauon.executors.oneshot import ComponentExecutor, GuestRunner, Trap
from tauon.hostif.linker import LinkedComponent
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.slots import SlotHold

EXPORT = "fermyon:spin/inbound-redis"
FUNCTION = "handle-message"
ASYNC_EXPORT = "spin:redis/inbound-redis"
"""Spin 3's async (WASIp3) Redis export, which the wasmtime Python binding cannot call."""


class RedisHandler(Protocol):
    component_id: str

    async def handle(self, payload: bytes) -> None:
        """Run the guest for one message. Raises GuestError when it fails."""
        ...

    def close(self) -> None: ...


def check_result(label: str, result: Any) -> None:
    """`result<_, error>`: Ok, or Err(success) (Spin 1.x SDKs return that for success, and Spin 1.x
    treated it so), is handled; Err(error) is a failure."""
    if isinstance(result, tuple) and result[0] == "err" and result[1] != "success":
        raise GuestError(f"{label}: the Redis handler returned an error ({result[1]})", kind="output")


class RedisComponentHandler(ComponentExecutor):
    def __init__(self, setup: ExecutorSetup, *, component: Component, linked: LinkedComponent,
                 config: HostConfig, runner: GuestRunner | None = None) -> None:
        super().__init__(setup, component=component, linked=linked, config=config, runner=runner)
        self._handle = self._oneshot(EXPORT, FUNCTION)

    async def handle(self, payload: bytes) -> None:
        hold = SlotHold()
        await anyio.to_thread.run_sync(self._in_slot, hold, self._execute, payload, hold,
                                       limiter=self._limiter)

    def _execute(self, payload: bytes, hold: SlotHold) -> None:
        state = HostState(self._config, timeout=self._limits.request_timeout, slot=hold)
        try:
            result = self._handle.call(state, payload)
        except Trap as exc:
            if exc.kind == "timeout":
                raise GuestError(f"{self._label}: interrupted after the request timeout of "
                                 f"{self._limits.request_timeout:g} s", kind="timeout") from None
            raise GuestError(f"{self._label}: {exc}", kind=guest_error_kind(exc.kind)) from None
        check_result(self._label, result)
