"""The canonical builtins of component-model async as core functions (CanonicalABI.md `canon task.return`,
`context.*`, `backpressure.*`, `waitable-set.*`, `waitable.join`, `subtask.drop`, `stream.*`,
`future.*`, `thread.yield`): their core signatures and trampoline bodies, compiled once per
component. Every index and pointer the guest passes is checked; a violation is a `CanonTrap`.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from typing import Any

from tauon.wasm.canon import layout
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.handles import HandleTable
from tauon.wasm.canon.lift import compile_lifter
from tauon.wasm.canon.types import FutureType, StreamType, TupleType
from tauon.wasm.runtime import corefn
from tauon.wasm.runtime.plan import AsyncBuiltin, Opts
from tauon.wasm.runtime.streams import GuestEnd, end_at, new_pair
from tauon.wasm.runtime.subtasks import Subtask
from tauon.wasm.runtime.tasks import CONTEXT_SLOTS, check_may_block, current_task, state_of, waitable_set
from tauon.wasm.runtime.waitables import BLOCKED, GuestTimeout, Waitable, WaitableSet

Body = Callable[[Any, list[int]], int | None]
"""(instance, i32/i64 args) -> the one result, or None."""

_SIGS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "context.get": ((), ("i32",)), "context.set": (("i32",), ()),
    "backpressure.inc": ((), ()), "backpressure.dec": ((), ()), "thread.yield": ((), ("i32",)),
    "subtask.drop": (("i32",), ()), "waitable-set.new": ((), ("i32",)),
    "waitable-set.wait": (("i32", "i32"), ("i32",)), "waitable-set.poll": (("i32", "i32"), ("i32",)),
    "waitable-set.drop": (("i32",), ()), "waitable.join": (("i32", "i32"), ()),
    "stream.new": ((), ("i64",)), "future.new": ((), ("i64",)),
    "stream.read": (("i32", "i32", "i32"), ("i32",)), "stream.write": (("i32", "i32", "i32"), ("i32",)),
    "future.read": (("i32", "i32"), ("i32",)), "future.write": (("i32", "i32"), ("i32",)),
}


_MAY_RUN_WHILE_STAYING = frozenset({"context.get", "context.set", "backpressure.inc", "backpressure.dec"})
"""The builtins CanonicalABI.md lets run while the instance may not leave (no `trap_if(not may_leave)`)."""


def signature(b: AsyncBuiltin) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if b.op == "task.return":
        flat = layout.flatten_type(b.type) if b.type is not None else ()
        return (("i32",) if len(flat) > layout.MAX_FLAT_PARAMS else tuple(flat)), ()
    if b.op.endswith(("cancel-read", "cancel-write")):
        return ("i32",), ("i32",)
    if b.op.endswith(("drop-readable", "drop-writable")):
        return ("i32",), ()
    return _SIGS[b.op]


def compile_builtin(b: AsyncBuiltin, current: Callable[[], Any]) -> tuple[tuple[str, ...], tuple[str, ...],
                                                                        corefn.HostCall]:
    """The core signature and trampoline body of one async builtin."""
    params, results = signature(b)
    body = _body(b)
    guarded = b.op not in _MAY_RUN_WHILE_STAYING
    unpack = corefn.raw_format(params).unpack_from
    frame = ctypes.c_char * (corefn.RAW_SIZE * max(len(params), len(results), 1))
    out = corefn.raw_format(results).pack_into if results else None

    def run(_ctx: int, args: int) -> None:
        raw = frame.from_address(args)
        instance = current()
        if guarded:
            instance.leave.check(b.op)
        result = body(instance, list(unpack(raw, 0)))
        if out is not None:
            out(raw, 0, result)

    return params, results, run


def _body(b: AsyncBuiltin) -> Body:
    op = b.op
    if op == "task.return":
        return _task_return(b)
    if op in ("context.get", "context.set"):
        return _context(op, b.slot)
    if op.startswith(("stream.", "future.")):
        return _copy_op(b)
    simple = _SIMPLE.get(op)
    if simple is not None:
        return simple
    if op in ("waitable-set.wait", "waitable-set.poll"):
        return _wait(op, Opts("utf8", b.memory, None, None))
    raise CanonTrap(f"the builtin {op} is not supported")


def _task_return(b: AsyncBuiltin) -> Body:
    flat = layout.flatten_type(b.type) if b.type is not None else ()
    spilled = len(flat) > layout.MAX_FLAT_PARAMS
    opts = b.opts
    assert opts is not None

    def run(instance: Any, args: list[int]) -> None:
        task = current_task(instance.handles, "task.return")
        if task.returned:
            raise CanonTrap("task.return called twice")
        if b.type != task.type.result:
            raise CanonTrap(f"task.return of type {b.type} for a function returning {task.type.result}")
        lo = task.lifted.opts
        if (opts.string_encoding, opts.memory) != (lo.string_encoding, lo.memory):
            raise CanonTrap("task.return's canonical options differ from the export's")
        if task.scope.borrows:
            raise CanonTrap(f"task.return with {task.scope.borrows} borrow handle(s) not dropped")
        value = None
        if b.type is not None:
            cx = instance.component.call_context(instance, opts).with_scope(task.scope)
            if cx.memory is not None:
                cx.memory.refresh()
            lifter = compile_lifter(b.type, opts.string_encoding)
            if spilled:
                ptr = args[0]
                if ptr % lifter.align:
                    raise CanonTrap(f"task.return pointer 0x{ptr:x} is not aligned to {lifter.align}")
                cx.mem().check(ptr, lifter.size, "task.return pointer")
                value = lifter.load(cx, ptr)
            else:
                value = lifter.lift_flat(cx, iter(args))
        task.returned = True
        task.on_return(value)

    return run


def _context(op: str, slot: int) -> Body:
    if slot >= CONTEXT_SLOTS:
        raise CanonTrap(f"{op} of context slot {slot} (there are {CONTEXT_SLOTS})")
    if op == "context.get":
        return lambda instance, _args: current_task(instance.handles, op).context[slot]

    def set_(instance: Any, args: list[int]) -> None:
        current_task(instance.handles, op).context[slot] = args[0]
    return set_


def _backpressure(delta: int) -> Body:
    def run(instance: Any, _args: list[int]) -> None:
        state = state_of(instance.handles)
        state.backpressure += delta
        if not 0 <= state.backpressure < 1 << 16:
            raise CanonTrap(f"backpressure counter {'over' if delta > 0 else 'under'}flow")
    return run


def _waitable(table: HandleTable, index: int) -> Waitable:
    entry = table.get(index)
    if not isinstance(entry, Waitable):
        raise CanonTrap(f"handle index {index} is a {type(entry).__name__}, not a waitable")
    return entry


def _join(instance: Any, args: list[int]) -> None:
    table = instance.handles
    w = _waitable(table, args[0])
    w.join(waitable_set(table, args[1]) if args[1] else None)


def _set_new(instance: Any, _args: list[int]) -> int:
    wset = WaitableSet()
    return int(instance.handles.add(wset))


def _set_drop(instance: Any, args: list[int]) -> None:
    table = instance.handles
    waitable_set(table, args[0]).drop()
    table.remove(args[0])


def _subtask_drop(instance: Any, args: list[int]) -> None:
    table = instance.handles
    entry = table.get(args[0])
    if not isinstance(entry, Subtask):
        raise CanonTrap(f"handle index {args[0]} is a {type(entry).__name__}, expected a subtask")
    entry.drop()
    table.remove(args[0])


def _yield(instance: Any, _args: list[int]) -> int:
    """`thread.yield`: the instance runs one task, so nothing of it can run instead; the thread gives
    the CPU to the host's threads once and goes on (NOT_CANCELLED: tauon never cancels a task). A
    task that may not block returns at once, as the specification says; one past its deadline fails."""
    state = state_of(instance.handles)
    if state.task is None or not state.task.may_block:
        return 0
    if state.deadline is not None and time.monotonic() >= state.deadline:
        raise GuestTimeout("the guest yielded past its deadline")
    time.sleep(0)
    return 0


_SIMPLE: dict[str, Body] = {
    "backpressure.inc": _backpressure(1), "backpressure.dec": _backpressure(-1),
    "thread.yield": _yield, "waitable.join": _join, "waitable-set.new": _set_new,
    "waitable-set.drop": _set_drop, "subtask.drop": _subtask_drop,
}


def _wait(op: str, opts: Opts) -> Body:
    """`waitable-set.wait` blocks the guest's thread (the stackful form's wait) until a member of the
    set has an event; `waitable-set.poll` takes one if there is one."""
    blocking = op.endswith("wait")

    def run(instance: Any, args: list[int]) -> int:
        table = instance.handles
        if blocking:
            state = check_may_block(table, op)
        wset = waitable_set(table, args[0])
        code, p1, p2 = wset.wait(state.waker, state.deadline) if blocking else wset.poll()
        memory = instance.component.call_context(instance, opts).mem()
        ptr = args[1]
        if ptr % 4:
            raise CanonTrap(f"{op} event pointer 0x{ptr:x} is not aligned to 4")
        memory.refresh()
        memory.check(ptr, 8, f"{op} event pointer")
        memory.store_u32(ptr, p1)
        memory.store_u32(ptr + 4, p2)
        return code

    return run


def _copy_op(b: AsyncBuiltin) -> Body:
    kind, _, action = b.op.partition(".")
    t: StreamType | FutureType = b.type
    if action == "new":
        return lambda instance, _args: new_pair(instance.handles, t)
    readable = action in ("read", "cancel-read", "drop-readable")
    if action in ("read", "write"):
        return _copy(kind, readable, t, b.opts)
    if action.startswith("cancel"):
        def cancel(instance: Any, args: list[int]) -> int:
            if not b.flag:  # a synchronous cancel may block (tauon's never does: the rule still holds)
                check_may_block(instance.handles, b.op)
            result = end_at(instance.handles, args[0], kind, readable, t).cancel()
            return BLOCKED if result is None else result
        return cancel

    def drop(instance: Any, args: list[int]) -> None:
        table = instance.handles
        end_at(table, args[0], kind, readable, t).drop()
        table.remove(args[0])
    return drop


def _copy(kind: str, readable: bool, t: StreamType | FutureType, opts: Opts | None) -> Body:
    assert opts is not None
    if t.element is not None:
        compile_lifter(TupleType((t.element,)))  # refuse element types the values layer cannot move

    def run(instance: Any, args: list[int]) -> int:
        table = instance.handles
        if not opts.is_async:
            check_may_block(table, f"a synchronous {kind}.{'read' if readable else 'write'}")
        end = end_at(table, args[0], kind, readable, t)
        if end.wset is not None and not opts.is_async:
            raise CanonTrap(f"a synchronous {kind} copy on {end.describe()}, which is in a waitable set")
        cx: CallContext = instance.component.call_context(instance, opts)
        n = args[2] if kind == "stream" else 1
        result = end.start(cx, args[1], n, opts.string_encoding)
        if result is None and not opts.is_async:
            result = _block(end, state_of(table))
        return BLOCKED if result is None else result

    return run


def _block(end: GuestEnd, state: Any) -> int:
    """A synchronous copy that cannot complete yet blocks the guest until it can. (wasmtime validates
    synchronous copies only with its "more async builtins" feature, which tauon's engine, like Spin's,
    leaves off.)"""
    while True:
        state.waker.clear()
        if end.ready():
            result = end.attempt()
            if result is not None:
                return result
        state.waker.sleep(state.deadline)
