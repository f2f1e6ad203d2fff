"""CanonicalABI.md's `may_leave` for tauon's component runtime: while the host runs the guest's realloc
(lowering a string or list into it) or its post-return function, the instance may not call out of
itself, so an import or builtin it calls then traps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import wasmtime

from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.runtime import corefn


class Leave:
    """CanonicalABI.md `may_leave` of one instance: false while the host runs the guest's realloc (when
    lowering values into it) or post-return function, when calling an import or a builtin traps. Its
    own object so the realloc wrapper can hold it without holding the instance (no cycle)."""

    __slots__ = ("ok",)

    def __init__(self) -> None:
        self.ok = True

    def check(self, what: str) -> None:
        if not self.ok:
            raise CanonTrap(f"{what} called from the guest's realloc or post-return function, which may "
                            "not leave the component instance")

    @contextmanager
    def closed(self) -> Iterator[None]:
        self.ok = False
        try:
            yield
        finally:
            self.ok = True


class GuardedRealloc(corefn.GuestRealloc):
    """The guest's realloc, during which the instance may not leave."""

    __slots__ = ("_leave",)

    def __init__(self, ctx: int, func: wasmtime.Func, leave: Leave) -> None:
        super().__init__(ctx, func)
        self._leave = leave

    def __call__(self, old: int, old_size: int, align: int, size: int) -> int:
        leave = self._leave
        leave.ok = False
        try:
            return super().__call__(old, old_size, align, size)
        finally:
            leave.ok = True
