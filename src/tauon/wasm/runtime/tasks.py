"""Tasks of async exports: the callback form's event loop and the stackful form (CanonicalABI.md
"canon lift", Concurrency.md), for tauon's component runtime.

`AsyncGuestFunc.call` runs one exported `canon lift async` function to its end on the calling thread.
In the callback form it calls the core function, then, while the returned code is not EXIT, waits as
the code says (YIELD: nothing to wait for; WAIT: until a waitable of the named set has an event; POLL,
of earlier versions of the specification: an event if one is ready) and calls the callback with the
event. In the stackful form (no callback) the core function runs to its end on this thread, and
blocks it where it asks to: in `waitable-set.wait` or a synchronously lowered call of an async host
function. Either way a wait sleeps on the instance's
`Waker` (host threads wake it, as they do for the callback form's WAIT) until the call's deadline,
holding neither the GIL nor the request's run slot.

The task's result arrives through `task.return` (`on_return`, possibly long before the task ends: a
response is returned, then its body streamed). tauon runs one task per instance at a time: a second
call while one runs, or a call while the guest has backpressure on, fails.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tauon.wasm.canon import layout
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.handles import BorrowScope, HandleTable
from tauon.wasm.canon.lower import compile_lowerer
from tauon.wasm.canon.types import FuncType, TupleType
from tauon.wasm.component.guest import Trap, classify, summarize
from tauon.wasm.runtime import corefn
from tauon.wasm.runtime.async_host import Deferred
from tauon.wasm.runtime.instance import RuntimeComponent, RuntimeInstance, running
from tauon.wasm.runtime.model import UnsupportedComponent
from tauon.wasm.runtime.plan import Lifted
from tauon.wasm.runtime.streams import close_all, waker_of
from tauon.wasm.runtime.waitables import EventCode, GuestTimeout, WaitableSet, Waker
from tauon.wasm.slots import SlotHold

EXIT, YIELD, WAIT, POLL = 0, 1, 2, 3
CONTEXT_SLOTS = 2


@dataclass(eq=False)
class Task:
    """One call of an async export."""

    type: FuncType
    lifted: Lifted
    on_return: Callable[[Any], None]
    scope: BorrowScope
    returned: bool = False
    context: list[int] = field(default_factory=lambda: [0] * CONTEXT_SLOTS)

    @property
    def may_block(self) -> bool:
        """CanonicalABI.md `Task.may_block`: a task of an `async` function type may always block; a
        synchronous one only once it has returned (wasmtime 50 lifts only async types async, so
        every task here may)."""
        return self.type.is_async or self.returned


@dataclass(eq=False)
class AsyncState:
    """An instance's async state: its waker, the task running, backpressure, and the deadline of
    waits (a `time.monotonic()` value; None: none)."""

    waker: Waker
    task: Task | None = None
    backpressure: int = 0
    deadline: float | None = None


_states: weakref.WeakKeyDictionary[HandleTable, AsyncState] = weakref.WeakKeyDictionary()


def state_of(table: HandleTable) -> AsyncState:
    state = _states.get(table)
    if state is None:
        state = _states[table] = AsyncState(waker_of(table))
    return state


def current_task(table: HandleTable, what: str) -> Task:
    task = state_of(table).task
    if task is None:
        raise CanonTrap(f"{what} outside of an async export's task")
    return task


def check_may_block(table: HandleTable, what: str) -> AsyncState:
    """Trap unless the running task may block (CanonicalABI.md: `trap_if(not task.may_block())` in
    `waitable-set.wait`, synchronous copies and cancels, and a synchronous lower of an async function).
    A synchronous export's call has no task here: it may not block before it returns."""
    state = state_of(table)
    if state.task is None or not state.task.may_block:
        raise CanonTrap(f"{what}: cannot block a synchronous task before returning")
    return state


def wait_deferred(deferred: Deferred, table: HandleTable) -> Any:
    """Block the guest's thread until a host call completes (a synchronously lowered async function),
    until the task's deadline, lending the run slot meanwhile."""
    if not deferred.done:
        state = state_of(table)
        waker = state.waker
        deferred.on_done(waker.wake)
        while True:
            waker.clear()
            if deferred.done:
                break
            waker.sleep(state.deadline)
    return deferred.outcome()


def waitable_set(table: HandleTable, index: int) -> WaitableSet:
    entry = table.get(index)
    if not isinstance(entry, WaitableSet):
        raise CanonTrap(f"handle index {index} is a {type(entry).__name__}, expected a waitable set")
    return entry


class AsyncGuestFunc:
    """One exported async function (callback or stackful form), callable on any instance of its
    component."""

    def __init__(self, component: RuntimeComponent, interface: str | None, name: str) -> None:
        """Raises LookupError (no such export) or UnsupportedComponent."""
        lifted = component.plan.export_func(interface, name)
        self.label = f"{interface}#{name}" if interface else name
        opts = lifted.opts
        if not opts.is_async:
            raise UnsupportedComponent(f"the export {self.label} is not lifted async")
        self.lifted = lifted
        self.stackful = opts.callback is None
        ptypes = tuple(t for _, t in lifted.type.params)
        flat = layout.flatten_types(ptypes)
        self._spilled = len(flat) > layout.MAX_FLAT_PARAMS
        encoding = opts.string_encoding
        self._tuple = compile_lowerer(TupleType(ptypes), encoding)
        self._lowerers = [compile_lowerer(t, encoding) for t in ptypes]
        # The stackful core function returns nothing: its result goes through task.return.
        results: tuple[str, ...] = () if self.stackful else ("i32",)
        self._call = corefn.GuestCall(("i32",) if self._spilled else tuple(flat), results)
        self._callback = corefn.GuestCall(("i32", "i32", "i32"), ("i32",))

    def call(self, instance: RuntimeInstance, state: Any, args: tuple[Any, ...],
             on_return: Callable[[Any], None], deadline: float | None = None) -> None:
        """Run the task to its end. `on_return(value)` is called (on this thread) at `task.return`.
        Raises `Trap` (kind 'trap', 'timeout', ...) for a guest trap or a deadline passed."""
        instance.state = state
        astate = state_of(instance.handles)
        if astate.task is not None:
            raise Trap(f"{self.label}: the instance is already running a task", kind="trap")
        if astate.backpressure > 0:
            raise Trap(f"{self.label}: the instance has backpressure on", kind="trap")
        task = Task(self.lifted.type, self.lifted, on_return, BorrowScope())
        astate.task, astate.deadline = task, deadline
        slot = getattr(state, "slot", None)
        astate.waker.hold = slot if isinstance(slot, SlotHold) else None  # lent while the guest waits
        with running(instance):
            try:
                self._run(instance, task, astate, args)
            except corefn.CoreTrap as outer:
                exc = corefn.innermost(outer)
                message, host_error = str(exc), exc.host_error
                if isinstance(host_error, GuestTimeout):
                    raise Trap(f"{self.label}: {host_error}", kind="timeout") from host_error
                kind = "trap" if isinstance(host_error, CanonTrap) else classify(message, host_error)
                raise Trap(summarize(message), kind=kind, host_error=host_error) from host_error
            except CanonTrap as exc:
                raise Trap(f"{self.label}: {exc}", kind="trap") from exc
            except GuestTimeout as exc:
                raise Trap(f"{self.label}: {exc}", kind="timeout") from exc
            finally:
                astate.task, astate.waker.hold = None, None

    def _run(self, instance: RuntimeInstance, task: Task, astate: AsyncState, args: tuple[Any, ...]) -> None:
        cx = instance.component.call_context(instance, self.lifted.opts).with_scope(task.scope)
        if cx.memory is not None:
            cx.memory.refresh()
        if self._spilled:
            ptr = cx.allocate(self._tuple.align, self._tuple.size, "spilled parameters")
            self._tuple.store(cx, tuple(args), ptr)
            flat: list[Any] = [ptr]
        else:
            flat = []
            for lowerer, value in zip(self._lowerers, args, strict=True):
                lowerer.lower_flat(cx, value, flat)
        ctx = instance.ctx
        core = instance.core_func(self.lifted.core)
        if self.stackful:
            self._call.call(ctx, core, *flat)
        else:
            self._loop(instance, astate, self._call.call(ctx, core, *flat)[0])
        if not task.returned:
            raise CanonTrap(f"{self.label} exited without calling task.return")

    def _loop(self, instance: RuntimeInstance, astate: AsyncState, packed: int) -> None:
        """The callback form's event loop, from the code the core function returned."""
        ctx = instance.ctx
        callback = instance.core_func(self.lifted.opts.callback)  # type: ignore[arg-type]
        while True:
            code, index = packed & 0xF, packed >> 4
            if code == EXIT:
                return
            if code == YIELD:
                event: tuple[int, int, int] = (EventCode.NONE, 0, 0)
            elif code == WAIT:
                event = waitable_set(instance.handles, index).wait(astate.waker, astate.deadline)
            elif code == POLL:
                event = waitable_set(instance.handles, index).poll()
            else:
                raise CanonTrap(f"the callback of {self.label} returned the unknown code {code}")
            packed = self._callback.call(ctx, callback, *event)[0]


def release(instance: RuntimeInstance) -> None:
    """The instance is done: drop the stream and future ends it still holds, so host threads reading
    or writing them see the end, and break the async ABI's references back to the instance."""
    close_all(instance.handles)
    _states.pop(instance.handles, None)
