"""Per-component host configuration and per-request host state."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tauon import tracing
from tauon.hostif.registry import HostTrap
from tauon.hostif.table import ResourceTable
from tauon.model.mount import Mount
from tauon.wasm.slots import SlotHold

if TYPE_CHECKING:
    from tauon.app.allowed_hosts import AllowedHosts
    from tauon.hostif.http_pool import HttpPool
    from tauon.services import ComponentServices

LOG_LIMIT = 1024 * 1024
"""Bytes of guest stdout + stderr logged per request; the rest is dropped (with one notice)."""
LINE_COST = 64
"""What one log line costs beyond its text (its prefix: time, level, app, component): counted against
LOG_LIMIT, so a guest printing empty lines cannot log without bound."""


PER_REQUEST_BUDGETS: set[str] = set()
"""Keys of `HostState.extensions` that count what one request has used up (header bytes created,
sockets opened): reset when a kept instance starts another request (`renew`). Host interfaces add
theirs at import."""


class DeadlineExceeded(HostTrap):
    """The request's time ran out while the guest was blocked in a host call."""


class WouldBlock(HostTrap):
    """A host call of a guest running on the event loop would have to wait: the run is abandoned and
    the request served again on a guest thread (executors/inline.py)."""


@dataclass(frozen=True, slots=True)
class HostConfig:
    """What a component may see and do; shared by all its requests (immutable)."""

    label: str
    """'<app>/<component>', used in log lines."""
    logger: logging.Logger
    env: tuple[tuple[str, str], ...] = ()
    mounts: tuple[Mount[str], ...] = ()
    allowed_hosts: AllowedHosts | None = None
    """None: no outbound networking at all."""
    outbound_timeout: float = 30.0
    """The longest an outbound call may wait: the app's request timeout (its deadline bounds it too)."""
    services: ComponentServices | None = None
    """Variables, key-value stores and databases (Spin interfaces); None: calls fail with 'other'."""
    chain: ChainTarget | None = None
    """The app's components for service chaining (`<id>.spin.internal`); None: not available."""
    self_origin: tuple[str, int] | None = None
    """Where self-requests (relative URLs, `self.alt`) go: the app's own listener."""
    self_scheme: str = "http"
    """How self-requests reach it, whatever scheme the guest gave: `https` on a TLS listener (Spin's
    self-request origin takes the listener's scheme)."""
    http_pool: HttpPool | None = None
    """Keep-alive outbound HTTP connections of this component (None: a new connection per request)."""

    def close(self) -> None:
        """The generation is retired: release what outlives requests (pooled connections)."""
        if self.http_pool is not None:
            self.http_pool.close()


class ChainTarget(Protocol):
    def knows(self, component_id: str) -> bool: ...

    def start(self, component_id: str, request: Any, future: Any, state: HostState) -> None: ...


class OutputBudget:
    """The guest output one request may still log (stdout and stderr together, LOG_LIMIT)."""

    __slots__ = ("config", "held", "logged")

    def __init__(self, config: HostConfig) -> None:
        self.config = config
        self.logged = 0
        self.held: list[tuple[int, str, tuple[Any, ...]]] | None = None
        """Log records held back while the guest runs on the event loop (None: log at once): a run
        abandoned there is run again, and its lines must appear once."""

    def log(self, level: int, message: str, *args: Any) -> None:
        if self.held is None:
            self.config.logger.log(level, message, *args)
        else:
            self.held.append((level, message, args))

    def release(self) -> None:
        """Log what was held back, and log at once from now on."""
        held, self.held = self.held, None
        for level, message, args in held or ():
            self.config.logger.log(level, message, *args)


class GuestLog:
    """A guest output stream (stdout/stderr) logged line by line, tagged with app and component.

    It holds the request's OutputBudget, not its HostState: a reference back to the state would be a
    cycle per request, garbage only the cyclic collector frees (see HostState)."""

    def __init__(self, budget: OutputBudget, name: str) -> None:
        self._budget = budget
        self._name = name
        self._partial = bytearray()

    def write(self, data: bytes) -> None:
        self._partial += data
        if b"\n" not in data:
            if len(self._partial) > 16 * 1024:  # a line without end: log it in pieces
                self._emit(bytes(self._partial))
                self._partial.clear()
            return
        *lines, rest = self._partial.split(b"\n")
        self._partial = bytearray(rest)
        for line in lines:
            self._emit(line)

    def flush_partial(self) -> None:
        if self._partial:
            self._emit(bytes(self._partial))
            self._partial.clear()

    def _emit(self, line: bytes | bytearray) -> None:
        budget = self._budget
        if budget.logged > LOG_LIMIT:
            return
        budget.logged += len(line) + LINE_COST
        config = budget.config
        if budget.logged > LOG_LIMIT:
            budget.log(logging.WARNING, "%s: guest output over %d bytes for this request; dropping "
                       "the rest", config.label, LOG_LIMIT)
            return
        budget.log(logging.INFO, "%s %s: %s", config.label, self._name, line.decode("utf-8", "replace"))


class HostState:
    """Everything the host functions of one request share. Used by the guest's thread only, except
    `cond`, which other threads (event loop, HTTP clients) use to wake a guest blocked in a host call.

    Nothing it holds points back to it: freed by reference counting when the request ends, a state
    never waits for the cyclic garbage collector (whose full passes over a daemon's heap stall every
    request in the process; see tauon.gctune)."""

    def __init__(self, config: HostConfig, *, timeout: float,
                 extensions: dict[str, Any] | None = None, slot: SlotHold | None = None) -> None:
        self.config = config
        self.slot = SlotHold() if slot is None else slot
        """The run slot this request's guest holds (wasm/slots.py): the executor's runner fills it,
        host calls that block lend it."""
        self.table = ResourceTable()
        self.cond = threading.Condition()
        self.deadline = time.monotonic() + timeout
        budget = OutputBudget(config)
        self.budget = budget
        self.stdout = GuestLog(budget, "stdout")
        self.stderr = GuestLog(budget, "stderr")
        self.extensions: dict[str, Any] = extensions or {}
        """Per-executor state, e.g. 'http' for the incoming request of a wasi:http call."""
        self.exit_code: int | None = None
        self.trace: Any = None if tracing.ACTIVE is None else tracing.current_context()
        """The trace context of the guest's execution span (None: tracing is off), captured where
        the executor creates this state, for the spans host calls open on the guest's thread."""
        self.inline = False
        """The guest runs on the event loop: a host call that would wait raises WouldBlock."""
        self.before_block: Callable[[], None] | None = None
        """Called on the guest's thread just before a host call blocks (wasi_http: send what the
        guest has produced so far, since it will not return soon)."""

    def wait_until(self, ready: Callable[[], bool], what: str, until: float | None = None) -> bool:
        """Block until `ready()` (checked under `cond`) or `until` (monotonic) passes: returns whether
        it became ready. Raises DeadlineExceeded at the request deadline."""
        with self.cond:
            if ready():  # the common case: no wait, so no run-slot hand-off either
                return True
        if self.inline:
            raise WouldBlock(f"{what} would wait on the event loop")
        if self.before_block is not None:
            self.before_block()
        with self.slot.blocked(), self.cond:
            while not ready():
                now = time.monotonic()
                if until is not None and now >= until:
                    return False
                if now >= self.deadline:
                    raise DeadlineExceeded(f"request timed out while the guest was blocked in {what}")
                limit = self.deadline if until is None else min(until, self.deadline)
                self.cond.wait(limit - now)
            return True

    def renew(self, timeout: float) -> None:
        """Its instance is kept for another request (executors/reuse.py): a new deadline, output
        budget and trace context; the resources the guest still holds stay, as its instance does."""
        self.deadline = time.monotonic() + timeout
        for key in PER_REQUEST_BUDGETS:
            self.extensions.pop(key, None)
        self.budget.logged = 0
        self.budget.held = None
        self.exit_code = None
        self.trace = None if tracing.ACTIVE is None else tracing.current_context()
        self.inline = False
        self.before_block = None

    def end_request(self) -> None:
        """A request on a kept instance is over: log its unterminated output lines (`finish` comes
        when the instance goes)."""
        self.stdout.flush_partial()
        self.stderr.flush_partial()

    def finish(self) -> None:
        """End of request: release resources and log unterminated output lines."""
        self.table.close_all()
        self.stdout.flush_partial()
        self.stderr.flush_partial()
