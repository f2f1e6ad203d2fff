"""Spin 4's spin:sqlite/sqlite@3.1.0: the synchronous 3.0 functions (same databases, ACL, errors and
per-handle last-insert-rowid / changes as `spin_sqlite.V3_FUNCS`) plus their component-model async
variants (crates/factor-sqlite/src/host.rs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_sqlite import V3_FUNCS

V3_1_FUNCS: dict[str, Callable[..., Any]] = dict(V3_FUNCS)

INTERFACES = [HostInterface("spin:sqlite/sqlite@3.1.0", V3_1_FUNCS, ("connection",))]
