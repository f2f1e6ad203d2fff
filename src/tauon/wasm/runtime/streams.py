"""Stream and future ends held by a guest (CanonicalABI.md "Stream State", "Future State", `canon
stream.*` / `future.*`), over the bounded pipes of `pipes.py`.

A guest's `stream.read` / `stream.write` copies between its linear memory and the pipe's buffer at
once when it can (bytes of a `stream<u8>` as one slice, other element types through the values
layer); otherwise the copy stays pending (BLOCKED to an async caller) and completes on the guest's
thread when the event is delivered. Passing a `stream<T>` / `future<T>` value across the ABI moves a
readable end between the guest's handle table and the host (`lift_end`, `lower_end`).
"""

from __future__ import annotations

import weakref
from enum import IntEnum
from typing import Any, cast

from tauon.wasm.canon import layout
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.handles import HandleTable
from tauon.wasm.canon.lift import compile_lifter
from tauon.wasm.canon.lower import compile_lowerer
from tauon.wasm.canon.types import FutureType, StreamType
from tauon.wasm.runtime.async_host import FutureReader, StreamReader
from tauon.wasm.runtime.pipes import Pipe
from tauon.wasm.runtime.waitables import Event, EventCode, Waitable, WaitableSet, Waker

MAX_LENGTH = (1 << 28) - 1


class CopyResult(IntEnum):
    COMPLETED = 0
    DROPPED = 1
    CANCELLED = 2


IDLE, COPYING, DONE = "idle", "copying", "done"

_wakers: weakref.WeakKeyDictionary[HandleTable, Waker] = weakref.WeakKeyDictionary()


def waker_of(table: HandleTable) -> Waker:
    """The event-loop waker of the instance owning `table` (one per instance)."""
    waker = _wakers.get(table)
    if waker is None:
        waker = _wakers[table] = Waker()
    return waker


class GuestEnd(Waitable):
    """One end of a stream or future in a guest's handle table."""

    __slots__ = ("cx", "encoding", "n", "pipe", "ptr", "readable", "state", "waker")

    def __init__(self, pipe: Pipe, readable: bool, waker: Waker) -> None:
        super().__init__()
        self.pipe = pipe
        self.readable = readable
        self.state = IDLE
        self.waker = waker
        self.cx: CallContext | None = None
        self.encoding: Any = "utf8"
        self.ptr = 0
        self.n = 0
        with pipe.cond:
            pipe.wakers.append(waker)

    def describe(self) -> str:
        return f"the {'readable' if self.readable else 'writable'} end of a {self.pipe.type_name()}"

    def check(self, kind: str, readable: bool, t: StreamType | FutureType, index: int) -> None:
        if self.pipe.kind != kind or self.readable != readable or self.pipe.elem != t.element:
            want = f"the {'readable' if readable else 'writable'} end of a {kind}<{t.element}>"
            raise CanonTrap(f"handle index {index} is {self.describe()}, expected {want}")

    # -- copying

    def start(self, cx: CallContext, ptr: int, n: int, encoding: Any = "utf8") -> int | None:
        """Begin a copy of `n` elements at `ptr`; the packed result now, or None if it must wait."""
        if self.state != IDLE:
            what = "finished" if self.state == DONE else "already copying"
            raise CanonTrap(f"{self.describe()} is {what}")
        if n > MAX_LENGTH:
            raise CanonTrap(f"a copy of {n} elements (at most {MAX_LENGTH})")
        elem = self.pipe.elem
        if cx.memory is not None:
            cx.memory.refresh()  # the guest may have grown its memory since its last host call
        if elem is not None and n > 0:
            align, size = layout.alignment(elem), layout.elem_size(elem)
            if ptr % align:
                raise CanonTrap(f"buffer pointer 0x{ptr:x} is not aligned to {align}")
            cx.mem().check(ptr, n * size, "stream buffer")
        self.cx, self.ptr, self.n, self.encoding = cx, ptr, n, encoding
        self.state = COPYING
        return self.attempt()

    def attempt(self) -> int | None:
        """Try the pending copy (on the guest's thread); the packed result or None."""
        if self.cx is not None and self.cx.memory is not None:
            self.cx.memory.refresh()  # memory may have grown (and moved) while the copy waited
        return self.finished(self._attempt())

    def _attempt(self) -> int | None:
        raise NotImplementedError

    def ready(self) -> bool:
        if self.state != COPYING:
            return False
        pipe = self.pipe
        if self.readable:
            return bool(pipe.data) or pipe.writer_gone
        return pipe.reader_gone or pipe.room() > 0 or self.n == 0

    def take_event(self) -> Event:
        result = self.attempt()
        assert result is not None
        return (self.event_code(), self.index, result)

    def finished(self, result: int | None) -> int | None:
        """After an attempt: a completed copy lets go of its call context (which holds the handle
        table holding this end: no reference cycle outlives the copy)."""
        if result is not None:
            self.cx = None
        return result

    def event_code(self) -> int:
        raise NotImplementedError

    def cancel(self) -> int | None:
        """`cancel-read` / `cancel-write`: a completed copy's result if it can still complete now, else
        CANCELLED (nothing was copied: tauon's copies are all-or-nothing per attempt)."""
        if self.state != COPYING:
            raise CanonTrap(f"cancelling a copy on {self.describe()}, which is not copying")
        result = self.attempt()
        if result is not None:
            return result
        self.state, self.cx = IDLE, None
        return int(CopyResult.CANCELLED)

    def drop(self) -> None:
        if self.state == COPYING:
            raise CanonTrap(f"dropping {self.describe()} while a copy is in progress")
        self.close()

    def close(self) -> None:
        """Release this end (the guest dropped it, or its instance is going away)."""
        pipe = self.pipe
        with pipe.cond:
            if self.waker in pipe.wakers:
                pipe.wakers.remove(self.waker)
        if self.readable:
            pipe.close_reader()
        else:
            pipe.close_writer()
        self.forget()
        self.cx = None


class GuestStreamEnd(GuestEnd):
    __slots__ = ()

    def event_code(self) -> int:
        return EventCode.STREAM_READ if self.readable else EventCode.STREAM_WRITE

    def _attempt(self) -> int | None:
        pipe, cx = self.pipe, self.cx
        assert cx is not None
        with pipe.cond:
            if self.readable:
                moved = self._read(pipe, cx) if pipe.data else None
                if moved is None and pipe.writer_gone:
                    self.state = DONE
                    return int(CopyResult.DROPPED)
            else:
                if pipe.reader_gone:
                    self.state = DONE
                    return int(CopyResult.DROPPED)
                moved = self._write(pipe, cx) if pipe.room() > 0 or self.n == 0 else None
            if moved is None:
                return None
            pipe.notify()
        self.state = IDLE
        return int(CopyResult.COMPLETED) | moved << 4

    def _read(self, pipe: Pipe, cx: CallContext) -> int:
        k = min(self.n, len(pipe.data))
        if k == 0:
            return 0
        if pipe.is_bytes:
            with memoryview(pipe.data) as view:  # type: ignore[arg-type]
                cx.mem().write(self.ptr, view[:k])
        elif pipe.elem is not None:
            lowerer = compile_lowerer(pipe.elem, self.encoding)
            for i, value in enumerate(pipe.data[:k]):
                lowerer.store(cx, value, self.ptr + i * lowerer.size)
        del pipe.data[:k]
        return k

    def _write(self, pipe: Pipe, cx: CallContext) -> int:
        k = min(self.n, pipe.room())
        if k <= 0:
            return 0
        if pipe.is_bytes:
            pipe.data.extend(cx.mem().read(self.ptr, k))
        elif pipe.elem is not None:
            lifter = compile_lifter(pipe.elem, self.encoding)
            pipe.data.extend(lifter.load(cx, self.ptr + i * lifter.size) for i in range(k))
        else:
            cast(list[Any], pipe.data).extend([None] * k)
        return k


class GuestFutureEnd(GuestEnd):
    __slots__ = ()

    def event_code(self) -> int:
        return EventCode.FUTURE_READ if self.readable else EventCode.FUTURE_WRITE

    def _attempt(self) -> int | None:
        pipe, cx = self.pipe, self.cx
        assert cx is not None
        with pipe.cond:
            if self.readable:
                if pipe.data:
                    value = pipe.data.pop()
                    if pipe.adapt is not None:
                        value = pipe.adapt(value)
                    if pipe.elem is not None:
                        compile_lowerer(pipe.elem, self.encoding).store(cx, value, self.ptr)
                    result = CopyResult.COMPLETED
                elif pipe.writer_gone:
                    result = CopyResult.DROPPED
                else:
                    return None
            else:
                if pipe.reader_gone:
                    result = CopyResult.DROPPED
                else:
                    value = compile_lifter(pipe.elem, self.encoding).load(cx, self.ptr) \
                        if pipe.elem is not None else None
                    if pipe.adapt is not None:
                        value = pipe.adapt(value)
                    cast(list[Any], pipe.data).append(value)
                    result = CopyResult.COMPLETED
                pipe.has_value = True
            pipe.notify()
        self.state = DONE
        return int(result)

    def ready(self) -> bool:
        if self.state != COPYING:
            return False
        if self.readable:
            return bool(self.pipe.data) or self.pipe.writer_gone
        return True

    def drop(self) -> None:
        if not self.readable and self.state != DONE:
            raise CanonTrap(f"dropping {self.describe()} before a value was written to it")
        super().drop()


def new_pair(table: HandleTable, t: StreamType | FutureType) -> int:
    """`stream.new` / `future.new`: both ends in the guest's table, packed as readable | writable << 32."""
    kind = "stream" if isinstance(t, StreamType) else "future"
    pipe = Pipe(kind, t.element)
    cls = GuestStreamEnd if kind == "stream" else GuestFutureEnd
    waker = waker_of(table)
    ends = [cls(pipe, True, waker), cls(pipe, False, waker)]
    indices = []
    for end in ends:
        end.index = table.add(end)
        indices.append(end.index)
    return indices[0] | indices[1] << 32


def end_at(table: HandleTable, index: int, kind: str, readable: bool,
           t: StreamType | FutureType) -> GuestEnd:
    entry = table.get(index)
    if not isinstance(entry, GuestEnd):
        raise CanonTrap(f"handle index {index} is a {type(entry).__name__}, expected the "
                        f"{'readable' if readable else 'writable'} end of a {kind}")
    entry.check(kind, readable, t, index)
    return entry


def lift_end(table: HandleTable, t: StreamType | FutureType, index: int) -> Any:
    """A `stream<T>` / `future<T>` value the guest passes: its readable end moves to the host."""
    kind = "stream" if isinstance(t, StreamType) else "future"
    end = end_at(table, index, kind, True, t)
    if end.state != IDLE:
        raise CanonTrap(f"handle index {index} ({end.describe()}) cannot be passed on: it is "
                        f"{'copying' if end.state == COPYING else 'finished'}")
    table.remove(index)
    with end.pipe.cond:
        if end.waker in end.pipe.wakers:
            end.pipe.wakers.remove(end.waker)
    end.forget()
    return StreamReader(end.pipe) if kind == "stream" else FutureReader(end.pipe)


def lower_end(table: HandleTable, t: StreamType | FutureType, value: Any) -> int:
    """A `stream<T>` / `future<T>` value given to the guest (a host reader): a new readable end."""
    if isinstance(t, StreamType):
        if not isinstance(value, StreamReader):
            raise CanonTrap(f"expected a StreamReader for a stream<{t.element}>, got {type(value).__name__}")
        cls: type[GuestEnd] = GuestStreamEnd
    else:
        if not isinstance(value, FutureReader):
            raise CanonTrap(f"expected a FutureReader for a future<{t.element}>, got {type(value).__name__}")
        cls = GuestFutureEnd
    pipe = value.pipe
    pipe.adopt(t.element)
    if pipe.elem != t.element:
        raise CanonTrap(f"a {pipe.type_name()} given where a {t} is expected")
    end = cls(pipe, True, waker_of(table))
    end.index = table.add(end)
    return end.index


def holds_async_ends(table: HandleTable) -> bool:
    """Whether the instance still holds a stream or future end, a subtask or another waitable (an
    empty waitable set does not count)."""
    return any(isinstance(entry, GuestEnd | Waitable) for _, entry in table.entries())


def close_all(table: HandleTable) -> None:
    """The instance is going away: release every end it still holds (host readers see the end of
    their streams, host writers see their reader gone), and break the references between waitables,
    their sets and the table, so the instance (and its Store's pool slot) is freed by reference
    counting rather than left to the cyclic collector."""
    for _, entry in table.entries():
        if isinstance(entry, GuestEnd):
            entry.close()
        elif isinstance(entry, Waitable):
            entry.forget()
            entry.release()
        elif isinstance(entry, WaitableSet):
            entry.elems.clear()
    _wakers.pop(table, None)
