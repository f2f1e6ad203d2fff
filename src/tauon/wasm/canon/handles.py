"""Resource handle tables (CanonicalABI.md, "Table State", "Resource State", `canon resource.*`).

Each component instance has one `HandleTable`: index 0 is never used, freed slots are reused last in
first out, and it holds at most 2**28-1 entries. An entry is a `ResourceHandle` (the async ABI's
waitables, streams and futures will share the table later). A handle is `own` (dropping it runs the
resource's destructor) or a borrow (valid for one call, see `BorrowScope`).

Resources the host implements cross to host code as their `rep` (an int, the host's own index);
resources a component implements cross as `GuestResource(rtype, rep)`, so they cannot be confused
with a host rep.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.types import ResourceType

MAX_TABLE_LENGTH = (1 << 28) - 1

Destructor = Callable[[int], None]
"""Called with the rep of a resource whose last own handle the guest dropped."""


@dataclass(frozen=True, slots=True)
class GuestResource:
    """A resource a component implements, as the host sees it: its type and the component's rep."""

    rtype: ResourceType
    rep: int


@dataclass(eq=False, slots=True)
class ResourceHandle:
    rtype: ResourceType
    rep: int
    own: bool
    scope: BorrowScope | None = None
    """For a borrow: the call it was lent for (its count of live borrows goes down when dropped)."""
    lends: int = 0
    """How many calls in progress this handle is lent to (while > 0 it cannot be moved or dropped)."""


class BorrowScope:
    """The borrows of one call, in either direction.

    - Guest calls a host import: each `borrow<R>` argument lifted from the guest lends the guest's
      handle to the call (`lend`); `end()` gives them back.
    - Host calls a guest export: each `borrow<R>` argument lowered into the guest creates a borrow
      handle there (`borrows` counts the live ones); the guest must drop them all before the call
      ends, or `end()` traps, as the specification's `task.return` does.
    """

    __slots__ = ("borrows", "lenders")

    def __init__(self) -> None:
        self.lenders: list[ResourceHandle] = []
        self.borrows = 0

    def lend(self, handle: ResourceHandle) -> None:
        handle.lends += 1
        self.lenders.append(handle)

    def end(self) -> None:
        """Return lent handles; trap if borrow handles given to the callee were not all dropped."""
        for handle in self.lenders:
            handle.lends -= 1
        self.lenders.clear()
        if self.borrows:
            raise CanonTrap(f"{self.borrows} borrow handle(s) still remain at the end of the call "
                            "(a component must drop every borrow it was given before returning)")


def _describe(entry: object) -> str:
    if isinstance(entry, ResourceHandle):
        kind = "an own" if entry.own else "a borrow"
        return f"{kind} handle of resource {entry.rtype.name!r}"
    return f"a {type(entry).__name__}"


class HandleTable:
    """One component instance's handles. `defines`: the resource types this instance implements (a
    borrow of those is passed to it as the bare rep, not as a handle)."""

    def __init__(self, defines: Iterable[ResourceType] = ()) -> None:
        self._entries: list[object | None] = [None]
        self._free: list[int] = []
        self._defines = set(defines)
        self._destructors: dict[ResourceType, Destructor] = {}

    # -- the table

    def add(self, entry: object) -> int:
        if self._free:
            index = self._free.pop()
            self._entries[index] = entry
            return index
        index = len(self._entries)
        if index > MAX_TABLE_LENGTH:
            raise CanonTrap(f"handle table full ({MAX_TABLE_LENGTH} entries)")
        self._entries.append(entry)
        return index

    def get(self, index: int) -> object:
        entries = self._entries
        if not 0 < index < len(entries) or (entry := entries[index]) is None:
            raise CanonTrap(f"handle index {index} is not in use")
        return entry

    def remove(self, index: int) -> object:
        entry = self.get(index)
        self._entries[index] = None
        self._free.append(index)
        return entry

    def __len__(self) -> int:
        """The number of entries in use."""
        return len(self._entries) - 1 - len(self._free)

    def entries(self) -> Iterable[tuple[int, object]]:
        return [(i, e) for i, e in enumerate(self._entries) if e is not None]

    # -- resources

    def defines(self, rtype: ResourceType) -> bool:
        return rtype in self._defines

    def add_defined(self, rtype: ResourceType) -> None:
        self._defines.add(rtype)

    def set_destructor(self, rtype: ResourceType, destructor: Destructor) -> None:
        """What `resource.drop` of an own handle of `rtype` calls: the host's dtor for a host resource,
        or a callable running the component's `dtor` export. Without one, dropping releases nothing."""
        self._destructors[rtype] = destructor

    def handle(self, rtype: ResourceType, index: int) -> ResourceHandle:
        """The resource handle at `index`, trapping if it is something else or of another type."""
        entry = self.get(index)
        if not isinstance(entry, ResourceHandle) or entry.rtype is not rtype:
            raise CanonTrap(f"handle index {index} is {_describe(entry)}, expected a handle of "
                            f"resource {rtype.name!r}")
        return entry

    def lower_own(self, rtype: ResourceType, rep: int) -> int:
        """Give the component an own handle to (rtype, rep); returns its index."""
        return self.add(ResourceHandle(rtype, rep, True))

    def lower_borrow(self, rtype: ResourceType, rep: int, scope: BorrowScope) -> int:
        """Lend (rtype, rep) to the component for the call `scope`: the rep itself if the component
        implements rtype, else a new borrow handle it must drop before the call ends."""
        if rtype in self._defines:
            return rep
        scope.borrows += 1
        return self.add(ResourceHandle(rtype, rep, False, scope))

    def lift_own(self, rtype: ResourceType, index: int) -> int:
        """Take the own handle at `index` out of the table (ownership moves to the callee)."""
        handle = self.handle(rtype, index)
        if not handle.own:
            raise CanonTrap(f"handle index {index} is a borrow of resource {rtype.name!r}, where an own "
                            "handle is required")
        if handle.lends:
            raise CanonTrap(f"own handle index {index} of resource {rtype.name!r} is lent to a call in "
                            "progress and cannot be moved")
        self.remove(index)
        return handle.rep

    def lift_borrow(self, rtype: ResourceType, index: int, scope: BorrowScope) -> int:
        """Lend the handle at `index` (own or borrow) to the call `scope`; returns the rep."""
        handle = self.handle(rtype, index)
        scope.lend(handle)
        return handle.rep

    def resource_new(self, rtype: ResourceType, rep: int) -> int:
        """`canon resource.new`: a new own handle to a resource the component implements."""
        return self.add(ResourceHandle(rtype, rep & 0xFFFFFFFF, True))

    def resource_rep(self, rtype: ResourceType, index: int) -> int:
        """`canon resource.rep`."""
        return self.handle(rtype, index & 0xFFFFFFFF).rep

    def resource_drop(self, rtype: ResourceType, index: int) -> None:
        """`canon resource.drop`: remove the handle; an own handle's resource is destroyed (its
        destructor runs), a borrow handle ends its borrow."""
        index &= 0xFFFFFFFF  # a core i32, possibly signed
        handle = self.handle(rtype, index)
        if handle.lends:
            raise CanonTrap(f"handle index {index} ({_describe(handle)}) is lent to a call in progress "
                            "and cannot be dropped")
        self.remove(index)
        if handle.own:
            destructor = self._destructors.get(rtype)
            if destructor is not None:
                destructor(handle.rep)
        elif handle.scope is not None:
            handle.scope.borrows -= 1
