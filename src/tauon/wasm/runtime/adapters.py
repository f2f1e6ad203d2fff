"""Call adapters per function type (CanonicalABI.md `canon lift` / `canon lower` flattening): the core
signature of a component function and the conversion of its parameters and result, in both directions.

`LowerAdapter`: a host function the guest calls (a `canon lower`): lift the guest's arguments, lower the
host's result (into a return area the guest passed, when it does not fit one flat value).
`LiftAdapter`: a guest export the host calls (a `canon lift`): lower the host's arguments (into memory
the guest allocates, beyond 16 flat values), lift the guest's result.
"""

from __future__ import annotations

from typing import Any

from tauon.wasm.canon.types import (
    BorrowType,
    FuncType,
    ListType,
    OptionType,
    RecordType,
    ResultType,
    TupleType,
    ValType,
    VariantType,
)
from tauon.wasm.runtime import corefn
from tauon.wasm.runtime.abi import BorrowScope, CallContext, CanonTrap
from tauon.wasm.runtime.abi_types import _record, compile_type

MAX_FLAT_PARAMS = 16
MAX_FLAT_RESULTS = 1


def _has_borrow(types: list[ValType]) -> bool:
    return any(_borrows(t) for t in types)


def _borrows(t: ValType | None) -> bool:
    if t is None:
        return False
    if isinstance(t, BorrowType):
        return True
    if isinstance(t, ListType | OptionType):
        return _borrows(t.element)
    if isinstance(t, RecordType):
        return any(_borrows(ft) for _, ft in t.fields)
    if isinstance(t, TupleType):
        return any(_borrows(et) for et in t.elements)
    if isinstance(t, VariantType):
        return any(_borrows(ct) for _, ct in t.cases)
    if isinstance(t, ResultType):
        return _borrows(t.ok) or _borrows(t.err)
    return False


class _Adapter:
    def __init__(self, fty: FuncType) -> None:
        param_types = [t for _, t in fty.params]
        self.params = [compile_type(t) for t in param_types]
        self.result = compile_type(fty.result) if fty.result is not None else None
        self.tuple = _record([(str(i), c) for i, c in enumerate(self.params)], as_tuple=True)
        flat = self.tuple.flat
        self.params_spilled = len(flat) > MAX_FLAT_PARAMS
        result_flat = self.result.flat if self.result is not None else ()
        self.result_spilled = len(result_flat) > MAX_FLAT_RESULTS
        self.flat_params = ("i32",) if self.params_spilled else flat
        self.flat_result = ("i32",) if self.result_spilled else result_flat
        self.borrows = _has_borrow(param_types)


class LowerAdapter(_Adapter):
    def __init__(self, fty: FuncType) -> None:
        super().__init__(fty)
        self.core_params = self.flat_params + (("i32",) if self.result_spilled else ())
        self.core_results = () if self.result_spilled else self.flat_result
        self.slots = max(len(self.core_params), len(self.core_results), 1)
        self.raw_params = corefn.raw_format(self.core_params)
        self.raw_results = corefn.raw_format(self.core_results)

    def lift_args(self, cx: CallContext, flat: tuple[Any, ...]) -> tuple[list[Any], BorrowScope | None]:
        if cx.memory is not None:
            cx.memory.refresh()
        scope = BorrowScope() if self.borrows else None
        cx.scope = scope
        if self.params_spilled:
            ptr = flat[0]
            if ptr % self.tuple.align:
                raise CanonTrap(f"parameters at 0x{ptr:x} are not aligned to {self.tuple.align}")
            return list(self.tuple.load(cx, ptr)), scope
        values, i = [], 0
        vals = list(flat)
        for conv in self.params:
            value, i = conv.lift_flat(cx, vals, i)
            values.append(value)
        return values, scope

    def lower_result(self, cx: CallContext, value: Any, flat: tuple[Any, ...]) -> tuple[Any, ...]:
        result = self.result
        if result is None:
            return ()
        cx.scope = None
        if not self.result_spilled:
            out: list[Any] = []
            result.lower_flat(cx, value, out)
            return tuple(out)
        ptr = flat[-1]
        if ptr % result.align:
            raise CanonTrap(f"the return area 0x{ptr:x} is not aligned to {result.align}")
        cx.mem().check(ptr, result.size, "the return area")
        result.store(cx, value, ptr)
        return ()


class LiftAdapter(_Adapter):
    def __init__(self, fty: FuncType) -> None:
        super().__init__(fty)
        self.core_params = self.flat_params
        self.core_results = self.flat_result
        self.call = corefn.GuestCall(self.core_params, self.core_results)

    def lower_args(self, cx: CallContext, args: tuple[Any, ...]) -> tuple[list[Any], BorrowScope | None]:
        if len(args) != len(self.params):
            raise TypeError(f"takes {len(self.params)} arguments, got {len(args)}")
        if cx.memory is not None:
            cx.memory.refresh()
        scope = BorrowScope() if self.borrows else None
        cx.scope = scope
        if self.params_spilled:
            ptr = cx.allocate(self.tuple.align, self.tuple.size, "the parameters")
            self.tuple.store(cx, args, ptr)
            return [ptr], scope
        out: list[Any] = []
        for conv, arg in zip(self.params, args, strict=True):
            conv.lower_flat(cx, arg, out)
        return out, scope

    def lift_result(self, cx: CallContext, results: tuple[Any, ...]) -> Any:
        result = self.result
        if result is None:
            return None
        if cx.memory is not None:
            cx.memory.refresh()
        cx.scope = None
        if not self.result_spilled:
            return result.lift_flat(cx, list(results), 0)[0]
        ptr = results[0] & 0xFFFFFFFF
        if ptr % result.align:
            raise CanonTrap(f"the result at 0x{ptr:x} is not aligned to {result.align}")
        return result.load(cx, ptr)


class Adapters:
    """Adapters per function type, compiled once and shared."""

    def __init__(self) -> None:
        self._lowers: dict[FuncType, LowerAdapter] = {}
        self._lifts: dict[FuncType, LiftAdapter] = {}

    def lower(self, fty: FuncType) -> LowerAdapter:
        adapter = self._lowers.get(fty)
        if adapter is None:
            adapter = self._lowers[fty] = LowerAdapter(fty)
        return adapter

    def lift(self, fty: FuncType) -> LiftAdapter:
        adapter = self._lifts.get(fty)
        if adapter is None:
            adapter = self._lifts[fty] = LiftAdapter(fty)
        return adapter
