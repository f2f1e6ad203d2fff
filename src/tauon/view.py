"""What the daemon shares with its observers (the admin endpoints, readiness): plain state, no web code,
so the daemon starts without importing Starlette unless `--admin` is given."""

from __future__ import annotations

from dataclasses import dataclass, field

import anyio

from tauon.control.supervisor import Supervisor
from tauon.metrics import Metrics


@dataclass
class DaemonView:
    """What the daemon shares with the admin endpoints (mutated by the daemon, read here)."""

    supervisor: Supervisor
    metrics: Metrics
    mode: str
    """'directory' or 'apps-file'."""
    source: str
    """The watched directory or the apps file."""
    scanned: anyio.Event = field(default_factory=anyio.Event)
    start_grace: float = float("inf")
    """Seconds an app still in its first pull or compile holds readiness back (--start-grace)."""
    reloading: bool = False
    stopping: bool = False
