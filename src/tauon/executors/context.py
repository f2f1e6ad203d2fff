"""What `tauon.executors.build` needs from the site building a generation."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from tauon.hostif.state import ChainTarget
    from tauon.services import AppServices
    from tauon.wasm.engine import WasmEngine


@dataclass(frozen=True, slots=True)
class BuildContext:
    """The same for all triggers of one generation."""

    engine: WasmEngine
    limiter: anyio.CapacityLimiter
    """The generation's concurrency limiter, shared by its HTTP executors and Redis handlers."""
    logger: logging.Logger
    """The app's logger (`tauon.app.<app id>`)."""
    services: Callable[[], AppServices]
    """The generation's services, opened on first call (an app of static responses never opens them)."""
    chain: ChainTarget | None = None
    """The generation's service chain (`<component>.spin.internal`); None: no chaining."""
