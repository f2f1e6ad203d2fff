"""Property tests of the canonical ABI (hypothesis, bounded so the unit suite stays fast):
lower-then-lift round trips give back the value, in memory, in flat form and through the call adapters;
lifting random guest memory or random flat values returns a value or raises CanonTrap, never anything
else."""

from __future__ import annotations

import contextlib
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.canon import Heap, memory_context
from support.canon_strategies import HOST_RESOURCE, flat_values_for, val_types, values_of
from tauon.wasm.canon.calls import ExportCall, ImportCall
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.handles import BorrowScope, HandleTable
from tauon.wasm.canon.layout import flatten_type
from tauon.wasm.canon.lift import compile_lifter
from tauon.wasm.canon.lower import compile_lowerer
from tauon.wasm.canon.types import FuncType, StringEncoding, ValType

BOUNDED = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(BOUNDED, max_examples=50)  # whole signatures: each example is a dozen values
ENCODINGS = st.sampled_from(["utf8", "utf16", "latin1+utf16"])


def typed_value(resources: bool = False) -> st.SearchStrategy[tuple[ValType, Any]]:
    return val_types(resources).flatmap(lambda t: st.tuples(st.just(t), values_of(t)))


def _context(heap: Heap) -> CallContext:
    return heap.context(HandleTable(), BorrowScope())


def _core_type_of(value: Any, core: str) -> bool:
    if core in ("i32", "i64"):
        return isinstance(value, int) and 0 <= value < (1 << (32 if core == "i32" else 64))
    return isinstance(value, float)


@BOUNDED
@given(typed_value(resources=True), ENCODINGS)
def test_memory_round_trip(tv: tuple[ValType, Any], encoding: StringEncoding) -> None:
    t, value = tv
    heap = Heap()
    cx = _context(heap)
    lowerer, lifter = compile_lowerer(t, encoding), compile_lifter(t, encoding)
    ptr = cx.allocate(lowerer.align, lowerer.size, "test")
    lowerer.store(cx, value, ptr)
    assert lifter.load(cx, ptr) == value


@BOUNDED
@given(typed_value(resources=True), ENCODINGS)
def test_flat_round_trip_with_well_typed_core_values(tv: tuple[ValType, Any],
                                                     encoding: StringEncoding) -> None:
    t, value = tv
    cx = _context(Heap())
    out: list[Any] = []
    compile_lowerer(t, encoding).lower_flat(cx, value, out)
    cores = flatten_type(t)
    assert len(out) == len(cores)
    assert all(_core_type_of(v, core) for v, core in zip(out, cores, strict=True)), (out, cores)
    assert compile_lifter(t, encoding).lift_flat(cx, iter(out)) == value


@FEWER
@given(st.lists(typed_value(), min_size=0, max_size=20), typed_value(), ENCODINGS)
def test_call_adapters_round_trip(params: list[tuple[ValType, Any]], result: tuple[ValType, Any],
                                  encoding: StringEncoding) -> None:
    """The host lowers arguments for an export; a guest passing the same flat values to an import
    lifts them back; the import's result lowered for the guest lifts back as the export's result."""
    ft = FuncType(tuple((f"p{i}", t) for i, (t, _) in enumerate(params)), result[0])
    args = [v for _, v in params]
    export, import_ = ExportCall(ft, encoding), ImportCall(ft, encoding)
    heap = Heap()
    cx = _context(heap)
    flat_args = export.lower_params(cx, args)
    assert len(flat_args) == len(export.core.params)
    assert import_.lift_params(cx, flat_args) == args
    if import_.core.results_spilled:
        retptr = cx.allocate(8, 4096, "return area")
        assert import_.lower_result(cx, result[1], [*flat_args, retptr]) == []
        assert export.lift_result(cx, [retptr]) == result[1]
    else:
        flat_results = import_.lower_result(cx, result[1], flat_args)
        assert len(flat_results) == len(export.core.results)
        assert export.lift_result(cx, flat_results) == result[1]


def _fuzz_table() -> HandleTable:
    table = HandleTable()
    for rep in range(4):
        table.lower_own(HOST_RESOURCE, rep)
    table.lower_borrow(HOST_RESOURCE, 9, BorrowScope())
    table.add(object())
    return table


@BOUNDED
@given(val_types(resources=True), st.binary(min_size=0, max_size=256), st.integers(0, 300), ENCODINGS)
def test_lifting_random_memory_returns_a_value_or_traps(t: ValType, data: bytes, ptr: int,
                                                        encoding: StringEncoding) -> None:
    lifter = compile_lifter(t, encoding)
    ptr -= ptr % lifter.align
    cx = memory_context(data, _fuzz_table(), BorrowScope())
    with contextlib.suppress(CanonTrap):  # any other exception fails the test
        lifter.load(cx, ptr)


@BOUNDED
@given(val_types(resources=True).flatmap(lambda t: st.tuples(st.just(t), flat_values_for(t))),
       st.binary(min_size=0, max_size=256), ENCODINGS)
def test_lifting_random_flat_values_returns_a_value_or_traps(tf: tuple[ValType, list[Any]], data: bytes,
                                                             encoding: StringEncoding) -> None:
    t, flat = tf
    cx = memory_context(data, _fuzz_table(), BorrowScope())
    with contextlib.suppress(CanonTrap):  # any other exception fails the test
        compile_lifter(t, encoding).lift_flat(cx, iter(flat))
