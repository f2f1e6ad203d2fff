"""A component's files mount: where the files come from, and where the guest sees them.

One type for both sides of materialization: the locked app's `files` entry has a content reference as
its source (`Mount[ContentRef]`, app/lockparts.py); the plan and the host state have the host directory
the loader placed it in (`Mount[str]`), preopened read-only in the guest at `guest_path`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")


@dataclass(frozen=True)  # no slots: with Generic they break `Mount[str](...)` on Python 3.11
class Mount(Generic[S]):
    source: S
    """A content reference (as locked) or an absolute host directory path (once materialized)."""
    guest_path: str
    """The path the guest sees it at (the lock's `path`)."""
