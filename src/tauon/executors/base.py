"""The boundary between the HTTP front (switchboard, service chaining) and the code that runs a guest.

One executor per handler ABI, as in Spin: wasi:http (executors/wasi_http.py), fermyon:spin/inbound-http
(spin_inbound.py), WAGI for core modules and wasi:cli/run components (wagi.py, wagi_component.py) and
Spin 1.x core modules (spin_legacy.py); `tauon.executors.build` picks and builds one per trigger. An
executor gets the request already routed (`RoutedRequest`, with Spin's values computed) plus the raw
ASGI `receive`/`send`, so each ABI can stream bodies as far as it is able. If it raises GuestError
before sending the response start, the caller answers as `responses.failure_status` says (an empty
500, or 503 when every instance slot was busy) and logs the error.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
from starlette.types import Receive, Send

from tauon.app.plan import ComponentPlan, Limits
from tauon.app.routes import RouteMatch
from tauon.errors import LoadError
from tauon.model.spinvalue import SpinValue

if TYPE_CHECKING:
    from tauon.wasm.engine import WasmEngine


@dataclass(frozen=True, slots=True)
class RoutedRequest:
    """A client request (or a chained one) after routing, as every executor receives it."""

    method: str
    path: str
    """Raw (percent-encoded) path, no query."""
    query: str
    """Raw query string without the '?'."""
    headers: tuple[tuple[str, str], ...]
    """Client headers, lower-case names, in order, `connection` already stripped."""
    spin_values: tuple[SpinValue, ...]
    scheme: str
    authority: str
    client: tuple[str, int]
    http_version: str
    match: RouteMatch[Any]
    trailers: list[tuple[bytes, bytes]] | None = None
    """The request's trailer fields (lower-case names), filled once its chunked body has ended
    (server/trailers.py); None: a chained request, which has none."""
    accepts_trailers: bool = False
    """The client sent `TE: trailers`, and the server will send response trailers declared in
    `Trailer` (server/trailers.py)."""


class Executor(Protocol):
    component_id: str

    async def serve(self, request: RoutedRequest, receive: Receive, send: Send) -> None:
        """Run the guest for one request and send the full ASGI response."""
        ...

    def close(self) -> None:
        """Release resources once the generation is retired (no request is running)."""
        ...


@dataclass(frozen=True, slots=True)
class ExecutorSetup:
    """What every executor is built with (executors/builder.py): whose guest it runs, and the app's
    engine, limits, concurrency limiter and logger."""

    app_id: str
    component_id: str
    engine: WasmEngine
    limits: Limits
    limiter: anyio.CapacityLimiter
    """The generation's: every request or message of the app runs under it."""
    logger: logging.Logger


class GuestExecutor:
    """The state every executor keeps from its ExecutorSetup; each ABI's executor adds its own."""

    def __init__(self, setup: ExecutorSetup) -> None:
        self.component_id = setup.component_id
        self._label = f"{setup.app_id}/{setup.component_id}"
        self._engine = setup.engine
        self._limits = setup.limits
        self._limiter = setup.limiter
        self._log = setup.logger
        self._in_slot = setup.engine.slots.runner()
        """Runs a guest call in one of the engine's instance slots (or raises GuestError 'busy')."""


class GuestError(Exception):
    """The guest failed (trap, timeout, out of memory, bad output): the request gets a 500."""

    def __init__(self, message: str, *, kind: str = "trap") -> None:
        super().__init__(message)
        self.kind = kind


def check_mounts(component: ComponentPlan) -> None:
    """Every executor's load-time check: the component's files directories exist (they are mounted
    read-only into each request's instance)."""
    for mount in component.mounts:
        if not Path(mount.source).is_dir():
            raise LoadError(f"component '{component.id}': files directory {mount.source} does not exist",
                            field=f"components.{component.id}.files")
