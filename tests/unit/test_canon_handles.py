"""Resource handle tables: own and borrow handles, reps, lends, borrow scopes, `resource.new/rep/drop`
with destructors, and every trap the specification defines for them."""

from __future__ import annotations

from typing import Any

import pytest

from support.canon import Heap
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.handles import BorrowScope, GuestResource, HandleTable, ResourceHandle
from tauon.wasm.canon.lift import compile_lifter
from tauon.wasm.canon.lower import compile_lowerer
from tauon.wasm.canon.types import BorrowType, OwnType, ResourceType

HOST = ResourceType("fields", host=True)
OTHER = ResourceType("output-stream", host=True)
GUEST = ResourceType("counter")


def test_indexes_start_at_one_and_freed_slots_are_reused_last_in_first_out() -> None:
    table = HandleTable()
    a, b, c = (table.lower_own(HOST, rep) for rep in (10, 11, 12))
    assert (a, b, c) == (1, 2, 3)
    table.resource_drop(HOST, a)
    table.resource_drop(HOST, c)
    assert table.lower_own(HOST, 13) == c
    assert table.lower_own(HOST, 14) == a
    assert len(table) == 3


@pytest.mark.parametrize("index", [0, 4, 99, 2])
def test_bad_indexes_trap(index: int) -> None:
    table = HandleTable()
    table.lower_own(HOST, 1)
    table.resource_drop(HOST, table.lower_own(HOST, 2))  # index 2 freed
    table.lower_own(HOST, 3)  # reuses 2
    table.resource_drop(HOST, 2)
    with pytest.raises(CanonTrap, match=f"handle index {index} is not in use"):
        table.resource_rep(HOST, index)


def test_wrong_resource_type_traps() -> None:
    table = HandleTable()
    index = table.lower_own(HOST, 7)
    with pytest.raises(CanonTrap, match="is an own handle of resource 'fields', expected a handle of "
                                        "resource 'output-stream'"):
        table.lift_own(OTHER, index)
    table.add(object())
    with pytest.raises(CanonTrap, match="is a object"):
        table.resource_rep(HOST, 2)


def test_lift_own_moves_the_handle_out() -> None:
    table = HandleTable()
    index = table.lower_own(HOST, 7)
    assert table.lift_own(HOST, index) == 7
    with pytest.raises(CanonTrap, match="not in use"):
        table.lift_own(HOST, index)


def test_an_import_call_lends_handles_until_it_ends() -> None:
    table = HandleTable()
    index = table.lower_own(HOST, 7)
    scope = BorrowScope()
    assert table.lift_borrow(HOST, index, scope) == 7
    with pytest.raises(CanonTrap, match="lent to a call in progress and cannot be moved"):
        table.lift_own(HOST, index)
    with pytest.raises(CanonTrap, match="lent to a call in progress and cannot be dropped"):
        table.resource_drop(HOST, index)
    scope.end()
    assert table.lift_own(HOST, index) == 7


def test_borrows_given_to_the_guest_must_be_dropped_before_the_call_ends() -> None:
    table = HandleTable()
    scope = BorrowScope()
    index = table.lower_borrow(HOST, 5, scope)
    handle = table.get(index)
    assert isinstance(handle, ResourceHandle) and not handle.own
    with pytest.raises(CanonTrap, match="where an own handle is required"):
        table.lift_own(HOST, index)
    with pytest.raises(CanonTrap, match="1 borrow handle\\(s\\) still remain at the end of the call"):
        scope.end()
    scope = BorrowScope()
    index = table.lower_borrow(HOST, 5, scope)
    table.resource_drop(HOST, index)
    scope.end()


def test_a_borrow_of_a_resource_the_instance_implements_is_its_rep() -> None:
    table = HandleTable(defines=[GUEST])
    scope = BorrowScope()
    assert table.lower_borrow(GUEST, 42, scope) == 42
    assert len(table) == 0 and scope.borrows == 0


def test_resource_drop_runs_the_destructor_for_own_handles_only() -> None:
    dropped: list[tuple[str, int]] = []
    table = HandleTable(defines=[GUEST])
    table.set_destructor(GUEST, lambda rep: dropped.append(("guest", rep)))
    table.set_destructor(HOST, lambda rep: dropped.append(("host", rep)))
    new = table.resource_new(GUEST, 100)
    assert table.resource_rep(GUEST, new) == 100
    table.resource_drop(GUEST, new)
    table.resource_drop(HOST, table.lower_own(HOST, 3))
    scope = BorrowScope()
    table.resource_drop(HOST, table.lower_borrow(HOST, 4, scope))
    assert dropped == [("guest", 100), ("host", 3)]
    table.resource_drop(OTHER, table.lower_own(OTHER, 9))  # no destructor: nothing to release


def test_handles_in_values_cross_as_reps_and_guest_resources() -> None:
    heap = Heap()
    table = HandleTable()
    scope = BorrowScope()
    cx = heap.context(table, scope)
    out: list[Any] = []
    compile_lowerer(OwnType(HOST)).lower_flat(cx, 77, out)
    compile_lowerer(OwnType(GUEST)).lower_flat(cx, GuestResource(GUEST, 5), out)
    assert compile_lifter(BorrowType(HOST)).lift_flat(cx, iter(out[:1])) == 77
    scope.end()
    assert compile_lifter(OwnType(HOST)).lift_flat(cx, iter(out[:1])) == 77
    assert compile_lifter(OwnType(GUEST)).lift_flat(cx, iter(out[1:])) == GuestResource(GUEST, 5)
    with pytest.raises(CanonTrap, match="expected a GuestResource of 'counter'"):
        compile_lowerer(OwnType(GUEST)).lower_flat(cx, 5, [])
    with pytest.raises(CanonTrap, match="expected the rep"):
        compile_lowerer(OwnType(HOST)).lower_flat(cx, GuestResource(GUEST, 5), [])
    with pytest.raises(CanonTrap, match="no borrow scope"):
        compile_lowerer(BorrowType(HOST)).lower_flat(heap.context(table), 1, [])


def test_built_ins_take_indexes_as_core_i32_values() -> None:
    table = HandleTable()
    with pytest.raises(CanonTrap, match="handle index 4294967295 is not in use"):
        table.resource_drop(HOST, -1)
    with pytest.raises(CanonTrap, match="handle index 4294967295 is not in use"):
        table.resource_rep(HOST, -1)
