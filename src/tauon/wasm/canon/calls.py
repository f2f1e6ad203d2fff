"""Calls across the canonical ABI, compiled once per function type (synchronous functions only).

- `ImportCall` is `canon lower` of a host function the guest imports: the guest passes flat core
  values; `lift_params` turns them into Python arguments (reading them from memory behind one pointer
  when there are more than 16 flat values), `lower_result` writes the host's result back (as the one
  flat result, or through the return pointer the guest passed last). `invoke` does all of it around
  the host implementation and ends the call's borrow scope (lent handles come back).
- `ExportCall` is `canon lift` of a guest export the host calls: `lower_params` makes the flat
  arguments (spilling to memory the guest allocates when more than 16), `lift_result` reads the result
  (from the returned pointer when it is more than one flat value). `call` does all of it around the
  core function and checks that the guest dropped every borrow it was given. Post-return is the
  caller's: it gets the flat results back to pass on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tauon.wasm.canon import layout as L
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.handles import BorrowScope
from tauon.wasm.canon.lift import CoreValue, Lifter, compile_lifter
from tauon.wasm.canon.lower import Lowerer, compile_lowerer
from tauon.wasm.canon.types import (
    BorrowType,
    FuncType,
    ListType,
    OptionType,
    RecordType,
    ResultType,
    StringEncoding,
    TupleType,
    ValType,
    VariantType,
)


def _has_borrow(t: ValType | None) -> bool:
    """Whether a value of `t` can hold a borrow handle (then a call needs a borrow scope)."""
    if t is None or isinstance(t, BorrowType):
        return t is not None
    if isinstance(t, (ListType, OptionType)):
        return _has_borrow(t.element)
    if isinstance(t, ResultType):
        return _has_borrow(t.ok) or _has_borrow(t.err)
    if isinstance(t, RecordType):
        return any(_has_borrow(ft) for _, ft in t.fields)
    if isinstance(t, TupleType):
        return any(_has_borrow(et) for et in t.elements)
    if isinstance(t, VariantType):
        return any(_has_borrow(ct) for _, ct in t.cases)
    return False


def _spill_check(ptr: int, align: int, size: int, cx: CallContext, what: str) -> None:
    if ptr % align:
        raise CanonTrap(f"{what} pointer 0x{ptr:x} is not aligned to {align}")
    cx.mem().check(ptr, size, f"{what} pointer")


class _Signature:
    def __init__(self, ft: FuncType, encoding: StringEncoding, context: L.CallContextKind) -> None:
        self.type = ft
        self.encoding = encoding
        self.core = L.flatten_functype(ft, context)
        self.param_names = tuple(name for name, _ in ft.params)
        self.param_tuple = TupleType(tuple(t for _, t in ft.params))
        self.has_borrows = any(_has_borrow(t) for _, t in ft.params)


class ImportCall(_Signature):
    """`canon lower` of a host function of type `ft` (the guest calls the host)."""

    def __init__(self, ft: FuncType, encoding: StringEncoding = "utf8") -> None:
        super().__init__(ft, encoding, "lower")
        self._params: list[Lifter] = [compile_lifter(t, encoding) for _, t in ft.params]
        spilled = self.core.params_spilled
        self._spilled_params = compile_lifter(self.param_tuple, encoding) if spilled else None
        self._result: Lowerer | None = compile_lowerer(ft.result, encoding) if ft.result is not None else None

    def lift_params(self, cx: CallContext, flat_args: Sequence[CoreValue]) -> list[Any]:
        """The Python arguments the guest passed as `flat_args` (trapping on bad guest data)."""
        if cx.memory is not None:
            cx.memory.refresh()
        if self._spilled_params is not None:
            ptr = int(flat_args[0]) & 0xFFFFFFFF
            spilled = self._spilled_params
            _spill_check(ptr, spilled.align, spilled.size, cx, "spilled parameters")
            return list(spilled.load(cx, ptr))
        it = iter(flat_args)
        args: list[Any] = []
        try:
            for lifter in self._params:
                args.append(lifter.lift_flat(cx, it))
        except CanonTrap as exc:
            raise exc.within(f"parameter {self.param_names[len(args)]}") from None
        return args

    def lower_result(self, cx: CallContext, value: Any, flat_args: Sequence[CoreValue]) -> list[CoreValue]:
        """The flat results for the host's return value; with a spilled result, it is written through
        the return pointer (the last flat argument) and there are none."""
        result = self._result
        if result is None:
            return []
        try:
            if self.core.results_spilled:
                ptr = int(flat_args[-1]) & 0xFFFFFFFF
                _spill_check(ptr, result.align, result.size, cx, "return")
                result.store(cx, value, ptr)
                return []
            out: list[CoreValue] = []
            result.lower_flat(cx, value, out)
            return out
        except CanonTrap as exc:
            raise exc.within("result") from None

    def invoke(self, cx: CallContext, impl: Callable[..., Any],
               flat_args: Sequence[CoreValue]) -> list[CoreValue]:
        """Lift the arguments, call `impl(*args)`, lower its result, end the borrows; the flat results.
        Exceptions from `impl` propagate (the lent handles are still given back)."""
        scope = BorrowScope() if self.has_borrows else None
        if scope is not None:
            cx = cx.with_scope(scope)
        try:
            args = self.lift_params(cx, flat_args)
            value = impl(*args)
            return self.lower_result(cx, value, flat_args)
        finally:
            if scope is not None:
                scope.end()


class ExportCall(_Signature):
    """`canon lift` of a guest export of type `ft` (the host calls the guest)."""

    def __init__(self, ft: FuncType, encoding: StringEncoding = "utf8") -> None:
        super().__init__(ft, encoding, "lift")
        self._params: list[Lowerer] = [compile_lowerer(t, encoding) for _, t in ft.params]
        spilled = self.core.params_spilled
        self._spilled_params = compile_lowerer(self.param_tuple, encoding) if spilled else None
        self._result: Lifter | None = compile_lifter(ft.result, encoding) if ft.result is not None else None

    def lower_params(self, cx: CallContext, args: Sequence[Any]) -> list[CoreValue]:
        """The flat arguments for the Python `args` (borrows go into `cx.scope`)."""
        if len(args) != len(self._params):
            raise CanonTrap(f"expected {len(self._params)} arguments, got {len(args)}")
        if cx.memory is not None:
            cx.memory.refresh()
        if self._spilled_params is not None:
            ptr = cx.allocate(self._spilled_params.align, self._spilled_params.size, "spilled parameters")
            self._spilled_params.store(cx, tuple(args), ptr)
            return [ptr]
        out: list[CoreValue] = []
        i = 0
        try:
            for i in range(len(args)):
                self._params[i].lower_flat(cx, args[i], out)
        except CanonTrap as exc:
            raise exc.within(f"parameter {self.param_names[i]}") from None
        return out

    def lift_result(self, cx: CallContext, flat_results: Sequence[CoreValue]) -> Any:
        """The Python result from the core function's flat results (None for no result)."""
        result = self._result
        if result is None:
            return None
        if cx.memory is not None:
            cx.memory.refresh()
        try:
            if self.core.results_spilled:
                ptr = int(flat_results[0]) & 0xFFFFFFFF
                _spill_check(ptr, result.align, result.size, cx, "result")
                return result.load(cx, ptr)
            it: Iterator[CoreValue] = iter(flat_results)
            return result.lift_flat(cx, it)
        except CanonTrap as exc:
            raise exc.within("result") from None

    def call(self, cx: CallContext, core: Callable[[list[CoreValue]], Sequence[CoreValue]],
             args: Sequence[Any]) -> tuple[Any, list[CoreValue]]:
        """Lower `args`, run `core(flat_args) -> flat_results`, lift the result, then check that the
        guest dropped every borrow it got (else CanonTrap). Returns (result, flat results) so the
        caller can run post-return with them."""
        scope = BorrowScope()
        cx = cx.with_scope(scope)
        flat_results = list(core(self.lower_params(cx, args)))
        value = self.lift_result(cx, flat_results)
        scope.end()
        return value, flat_results
