"""`canon lower async` of host functions, and the subtasks of calls that do not finish at once
(CanonicalABI.md "canon lower", "Subtask State").

The trampoline lifts the arguments (at most 4 flat values, else one pointer to them in memory) and
calls the host function. If it returns a value (or an already completed `Deferred`), the result is
stored through the return pointer and the guest gets RETURNED. If it returns a pending `Deferred`, a
`Subtask` enters the guest's handle table and the guest gets STARTED with its index; when the
Deferred completes (on any thread) the instance's waker fires, and the event loop delivers the
SUBTASK event, storing the result on the guest's thread.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from enum import IntEnum
from typing import Any

from tauon.wasm.canon import layout
from tauon.wasm.canon.calls import _has_borrow
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.handles import BorrowScope
from tauon.wasm.canon.lift import compile_lifter
from tauon.wasm.canon.lower import Lowerer, compile_lowerer
from tauon.wasm.canon.types import FuncType, TupleType
from tauon.wasm.runtime import corefn
from tauon.wasm.runtime.async_host import Deferred
from tauon.wasm.runtime.streams import waker_of
from tauon.wasm.runtime.waitables import Event, EventCode, Waitable

MAX_FLAT_ASYNC_PARAMS = 4
HostImpl = Callable[..., Any]


class SubtaskState(IntEnum):
    STARTING = 0
    STARTED = 1
    RETURNED = 2


class Subtask(Waitable):
    """A host call in progress for the guest."""

    __slots__ = ("cx", "deferred", "delivered", "label", "lowerer", "retptr", "scope")

    def __init__(self, deferred: Deferred, cx: CallContext, retptr: int, lowerer: Lowerer | None,
                 scope: BorrowScope | None, label: str) -> None:
        super().__init__()
        self.deferred = deferred
        self.cx: CallContext | None = cx
        self.retptr = retptr
        self.lowerer = lowerer
        self.scope = scope
        self.delivered = False
        self.label = label

    def ready(self) -> bool:
        return self.deferred.done and not self.delivered

    def take_event(self) -> Event:
        self.delivered = True
        cx, self.cx = self.cx, None  # it holds the handle table holding this subtask: no cycle kept
        assert cx is not None
        finish(cx, self.deferred.outcome(), self.lowerer, self.retptr, self.scope, self.label)
        return (EventCode.SUBTASK, self.index, SubtaskState.RETURNED)

    def release(self) -> None:
        self.cx = None

    def drop(self) -> None:
        if not self.delivered:
            raise CanonTrap(f"subtask.drop of the call to {self.label} before it returned")
        self.forget()


def finish(cx: CallContext, value: Any, lowerer: Lowerer | None, retptr: int, scope: BorrowScope | None,
           label: str) -> None:
    """Store a host call's result through the guest's return pointer and give back lent handles."""
    try:
        if lowerer is not None:
            if cx.memory is not None:
                cx.memory.refresh()
            lowerer.store(cx, value, retptr)
    except CanonTrap as exc:
        raise exc.within(f"{label}: result") from None
    finally:
        if scope is not None:
            scope.end()


def async_lower_call(ftype: FuncType, opts: Any, impl: HostImpl, encoding: Any, label: str,
                     current: Callable[[], Any]) -> tuple[tuple[str, ...], corefn.HostCall]:
    """The core parameter types and trampoline body of `canon lower async` of a host function."""
    flat = layout.flatten_types(tuple(t for _, t in ftype.params))
    spilled = len(flat) > MAX_FLAT_ASYNC_PARAMS
    params: tuple[str, ...] = ("i32",) if spilled else tuple(flat)
    if ftype.result is not None:
        params = (*params, "i32")
    tuple_lifter = compile_lifter(TupleType(tuple(t for _, t in ftype.params)), encoding) if spilled else None
    lifters = [compile_lifter(t, encoding) for _, t in ftype.params]
    lowerer = compile_lowerer(ftype.result, encoding) if ftype.result is not None else None
    borrows = any(_has_borrow(t) for _, t in ftype.params)
    unpack = corefn.raw_format(params).unpack_from
    frame = ctypes.c_char * (corefn.RAW_SIZE * max(len(params), 1))

    def run(_ctx: int, args: int) -> None:
        instance = current()
        instance.leave.check(label)
        cx = instance.component.call_context(instance, opts)
        raw = frame.from_address(args)
        flat_args = unpack(raw, 0)
        scope = BorrowScope() if borrows else None
        if scope is not None:
            cx = cx.with_scope(scope)
        try:
            if cx.memory is not None:
                cx.memory.refresh()
            if tuple_lifter is not None:
                ptr = flat_args[0]
                if ptr % tuple_lifter.align:
                    raise CanonTrap(f"parameters pointer 0x{ptr:x} is not aligned to {tuple_lifter.align}")
                cx.mem().check(ptr, tuple_lifter.size, "parameters pointer")
                values = list(tuple_lifter.load(cx, ptr))
            else:
                it = iter(flat_args)
                values = [lifter.lift_flat(cx, it) for lifter in lifters]
            retptr = flat_args[-1] if lowerer is not None else 0
            if lowerer is not None:
                if retptr % lowerer.align:
                    raise CanonTrap(f"return pointer 0x{retptr:x} is not aligned to {lowerer.align}")
                cx.mem().check(retptr, lowerer.size, "return pointer")
        except CanonTrap as exc:
            raise exc.within(label) from None
        result = impl(instance.state, *values)
        if isinstance(result, Deferred) and not result.done:
            subtask = Subtask(result, cx, retptr, lowerer, scope, label)
            subtask.index = instance.handles.add(subtask)
            result.on_done(waker_of(instance.handles).wake)
            ctypes.c_uint32.from_address(args).value = SubtaskState.STARTED | subtask.index << 4
            return
        if isinstance(result, Deferred):
            result = result.outcome()
        finish(cx, result, lowerer, retptr, scope, label)
        ctypes.c_uint32.from_address(args).value = SubtaskState.RETURNED

    return params, run


def deadline_after(seconds: float | None) -> float | None:
    return None if seconds is None else time.monotonic() + seconds
