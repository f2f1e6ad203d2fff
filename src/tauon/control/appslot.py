"""An app file's slot in the supervisor (its state and its site: the listener and generation serving
it), how its start is announced, and how an unexpected failure is told to the operator."""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import anyio

from tauon.app.plan import GenerationPlan
from tauon.app.redis_triggers import redact_url
from tauon.app.routes import describe_routes
from tauon.control.spec import AppSpec
from tauon.log import clip
from tauon.server.generation import Generation
from tauon.server.site import Site

log = logging.getLogger("tauon")


def nothing() -> None:
    pass


@dataclass
class AppSlot:
    spec: AppSpec
    site: Site
    """What serves the app in this process: its listener, switchboard, Redis subscriptions, generation."""
    state: str = "pending"
    error: str | None = None
    added: float = field(default_factory=time.monotonic)
    """When the app file was first seen (its start grace for readiness runs from here)."""
    since: float = field(default_factory=time.time)
    """When `state` last changed (a retry that fails the same way keeps it)."""
    serving_hash: str | None = None
    generations: int = 0
    settled: anyio.Event = field(default_factory=anyio.Event)
    """Set once the first attempt has either served or failed (readiness)."""
    attempt_done: anyio.Event = field(default_factory=anyio.Event)
    """Set once the current run's first attempt has served or failed (reload settled)."""
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    removed: bool = False
    on_change: Callable[[], None] = nothing
    replaced: GenerationPlan | None = None
    """The plan of the generation the current one replaced: its cached content is kept too."""
    tls_problem: str | None = None
    """A certificate rotation that failed while the previous certificate keeps serving."""

    @property
    def generation(self) -> Generation | None:
        return self.site.generation

    def set_tls_problem(self, problem: str | None) -> None:
        if problem != self.tls_problem:
            self.tls_problem = problem
            self.on_change()

    def set_state(self, state: str, error: str | None = None) -> None:
        if state != self.state:
            self.since = time.time()
        changed = (state, error) != (self.state, self.error)
        self.state, self.error = state, error
        if changed:
            self.on_change()


def describe_failure(app_id: str, exc: Exception) -> str:
    """An error that is not a TauonError, as an operator can act on it; a traceback only for bugs."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno == errno.ENOSPC:
            return (f"{app_id}: no space left on device{where} (free space there, or move --cache-dir / "
                    "--state-root to a larger file system)")
        return f"{app_id}: {exc.strerror}{where} (check that tauon may use that path)"
    if isinstance(exc, RecursionError):
        return f"{app_id}: the app's data is nested too deeply to process (check the image's locked app)"
    log.exception("%s: unexpected failure", app_id)
    return f"{app_id}: unexpected failure: {exc!r}"


def _tier_note(gen: Generation, replaced: Generation | None) -> str:
    if gen.plan.tier == "winch":
        return " (Winch's code; Cranelift compiles in the background)"
    if replaced is not None and replaced.plan.tier == "winch":
        return " (Cranelift's code)"
    return ""


def banner(spec: AppSpec, gen: Generation, *, replaced: Generation | None) -> str:
    """What an app start prints, as Spin prints it: the serving URL, the routes, Redis channels."""
    verb = f"updated to generation {gen.number}" if replaced is not None else "serving"
    lines = [f"{spec.id}: {verb}: {clip(gen.plan.name)} {gen.plan.digest[:19]}{_tier_note(gen, replaced)}"]
    if gen.plan.listens and spec.address is not None:
        url = spec.address.url("https" if spec.tls is not None else "http")
        lines += [f"Serving {url}", "Available Routes:"]
        lines += [f"  {line}" for line in describe_routes(
            gen.router, url, label=lambda t: t.trigger.component or t.trigger.id)]
    if gen.redis is not None:  # as Spin prints its Redis trigger's subscriptions
        for redis_url, channels in gen.redis.subscriptions.items():
            shown = redact_url(redis_url)
            lines.append(f"Active Channels on {shown}:")
            lines += [f"\t{shown}/{channel}: [{','.join(components)}]"
                      for channel, components in channels.items()]
    return "\n".join(lines)
