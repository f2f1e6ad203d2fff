"""The boundary between the HTTP front (switchboard) and the code that runs a guest.

One executor per handler ABI (WAGI now; wasi:http and fermyon:spin/inbound-http next), as in Spin. An
executor gets the request already routed, with Spin's default values computed, plus the raw ASGI
`receive`/`send`, so each ABI can stream bodies as far as it is able. If it raises before sending the
response start, the switchboard answers 500 with an empty body (Spin's behaviour) and logs the error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from starlette.types import Receive, Send

from tauon.app.plan import ComponentPlan
from tauon.app.routes import RouteMatch
from tauon.errors import LoadError
from tauon.model.spinvalue import SpinValue


@dataclass(frozen=True, slots=True)
class IncomingRequest:
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


class Executor(Protocol):
    component_id: str

    async def serve(self, request: IncomingRequest, receive: Receive, send: Send) -> None:
        """Run the guest for one request and send the full ASGI response."""
        ...

    def close(self) -> None:
        """Release resources once the generation is retired (no request is running)."""
        ...


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
