"""What the Spin host interfaces share: the component's services and per-request handle quotas.

Everything per request lives on the HostState (its resource table and `extensions`), never in module
globals: requests of one component run concurrently on several threads.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from tauon.hostif.registry import HostTrap
from tauon.hostif.state import HostState
from tauon.services import ComponentServices

NO_SERVICES = "tauon has no variables, key-value or SQLite services configured for this component"
MAX_HANDLES = 256
"""Open handles of one kind (stores, connections, cas) per request, as Spin's resource tables."""
_QUOTAS = "spin-handle-quotas"
T = TypeVar("T")
C = TypeVar("C")


def services_of(state: HostState) -> ComponentServices | None:
    return state.config.services


class Handle:
    """A host object behind a guest handle; gives its quota slot back when the guest drops it
    (or when the request ends: the table calls `on_drop` for every live entry)."""

    def __init__(self, counts: dict[str, int], kind: str) -> None:
        self._counts = counts
        self._kind = kind
        self._live = True

    def on_drop(self) -> None:
        if self._live:
            self._live = False
            self._counts[self._kind] -= 1


class ConnectionHandle(Handle, Generic[C]):
    """A guest's connection to an outbound service: released once, when the guest drops it or the
    request ends. Each service subclasses it (so a handle of one cannot be passed as another's) and
    says how its connection is given up (closed, or returned to a pool)."""

    kind = "connection"

    def __init__(self, conn: C, counts: dict[str, int]) -> None:
        super().__init__(counts, self.kind)
        self.conn = conn

    def release(self) -> None:
        raise NotImplementedError

    def on_drop(self) -> None:
        if self._live:
            self.release()
        super().on_drop()


def reserve(state: HostState, kind: str, limit: int = MAX_HANDLES) -> dict[str, int] | None:
    """Take one `kind` slot of this request's quota: the counts to hand to the Handle, or None if full."""
    counts: dict[str, int] = state.extensions.setdefault(_QUOTAS, {})
    used = counts.get(kind, 0)
    if used >= limit:
        return None
    counts[kind] = used + 1
    return counts


def lookup(state: HostState, rep: int, kind: type[T]) -> T | None:
    """The live `kind` object behind `rep`, or None (a u32 handle of the v1 interfaces may be anything)."""
    try:
        return state.table.get(rep, kind)
    except HostTrap:
        return None


def message(exc: BaseException) -> str:
    """An exception's own text (service errors carry names and labels, never secret values)."""
    text = getattr(exc, "message", "") or str(exc)
    return str(text) if text else type(exc).__name__


Result = tuple[str, Any]
