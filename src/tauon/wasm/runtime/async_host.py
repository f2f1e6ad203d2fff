"""The host side of the component-model async ABI in tauon's component runtime: how host functions
take part in async calls, and how host code uses streams and futures.

Async-lowered imports
---------------------
A host function is the same `impl(state, *args)` whether the guest lowers it synchronously or with
`canon lower async` (the guest picks; `async func` imports usually come async-lowered):

- The simple case: it finishes at once and returns its result. An async-lowered call then completes
  eagerly (the guest sees RETURNED, no subtask is created).
- The blocking case: it returns a `Deferred` and completes it later, from any thread, with
  `deferred.resolve(value)` (or `deferred.fail(exc)`, which traps the guest as an exception from the
  host function would). An async-lowered call becomes a subtask the guest waits on; its result is
  lowered into guest memory on the guest's thread when the guest receives the event. A synchronously
  lowered call blocks the guest until it is resolved.

  Run the blocking work on your own thread (or a pool) and resolve from there; never block inside
  `impl` itself if you return a Deferred.

Streams and futures
-------------------
Values of `stream<T>` and `future<T>` cross the canonical ABI as host objects:

- A guest passes a readable end to the host (a `stream<u8>` argument, e.g. a response body): the host
  function receives a `StreamReader` (or `FutureReader`). `reader.read(n, timeout)` blocks until
  elements are there and returns up to `n` of them (`bytes` for `stream<u8>`, a list of Python values
  otherwise), or None once the guest dropped its writable end and everything was read.
  `FutureReader.read(timeout)` returns the value, or raises `Dropped` if the writer went without
  writing. `close()` drops the host's end (the guest's next write reports DROPPED).
- The host gives a guest a readable end (a `stream<u8>` result, e.g. a request body): create a pair
  with `stream(elem)` / `future(elem)`, return the reader from the host function (or pass it as an
  argument of an export call) and keep the writer. `writer.write(data, timeout)` blocks while the
  buffer between the ends is full (backpressure) and returns how many elements went in (fewer only
  if the guest dropped its readable end); `FutureWriter.write(value)` returns False if the reader
  is gone. Always `close()` a writer when done: the guest's read then reports DROPPED (end of stream).

Element types are `tauon.wasm.canon.types` values (`U8` below for bodies); a type of `None` is the
payload-less `stream` / `future`; `UNTYPED` (the default of `future()`) takes the type of the guest end
it is handed to. All of these objects are thread-safe. When the guest instance goes
away, every end it still held is dropped, so blocked host readers and writers return.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from tauon.wasm.canon.types import Prim, ValType
from tauon.wasm.runtime.pipes import DEFAULT_CAPACITY, UNTYPED, Pipe

U8 = Prim("u8")


class Dropped(Exception):
    """The other end of a future was dropped without a value."""


class Deferred:
    """The result of a host call that completes later (see the module docstring)."""

    __slots__ = ("_done", "_error", "_lock", "_on_done", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._on_done: Callable[[], None] | None = None

    def resolve(self, value: Any = None) -> None:
        self._finish(value, None)

    def fail(self, error: BaseException) -> None:
        self._finish(None, error)

    def _finish(self, value: Any, error: BaseException | None) -> None:
        with self._lock:
            if self._done:
                raise RuntimeError("a Deferred was completed twice")
            self._done, self._value, self._error = True, value, error
            on_done = self._on_done
        if on_done is not None:
            on_done()

    @property
    def done(self) -> bool:
        return self._done

    def outcome(self) -> Any:
        """The value (raises the failure). Only once `done`."""
        assert self._done
        if self._error is not None:
            raise self._error
        return self._value

    def on_done(self, callback: Callable[[], None]) -> None:
        """(The engine's) run `callback` once completed: now if it already is, else from the thread
        that completes it."""
        with self._lock:
            if not self._done:
                self._on_done = callback
                return
        callback()


class StreamReader:
    """The readable end of a stream, held by the host."""

    __slots__ = ("pipe",)

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    def read(self, n: int = DEFAULT_CAPACITY, timeout: float | None = None) -> Any:
        """Up to `n` (> 0) elements once some are there; None at the end of the stream."""
        pipe = self.pipe
        with pipe.cond:
            pipe.wait_for(lambda: bool(pipe.data) or pipe.writer_gone or pipe.reader_gone, timeout,
                          f"reading a {pipe.type_name()}")
            if not pipe.data:
                return None
            data = pipe.data
            taken = bytes(data[:n]) if pipe.is_bytes else list(data[:n])
            del data[:n]
            pipe.notify()
            return taken

    def read_all(self, limit: int | None = None, timeout: float | None = None) -> Any:
        """Everything up to the end of the stream (ValueError past `limit` elements)."""
        parts: list[Any] = []
        total = 0
        while (chunk := self.read(timeout=timeout)) is not None:
            total += len(chunk)
            if limit is not None and total > limit:
                self.close()
                raise ValueError(f"the stream carries more than {limit} elements")
            parts.append(chunk)
        if self.pipe.is_bytes:
            return b"".join(parts)
        return [v for part in parts for v in part]

    def close(self) -> None:
        self.pipe.close_reader()


class StreamWriter:
    """The writable end of a stream, held by the host."""

    __slots__ = ("pipe",)

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    def write(self, data: Any, timeout: float | None = None) -> int:
        """Write all of `data` (bytes-like for `stream<u8>`, else a sequence of values), waiting while
        the buffer is full; returns how many elements went in (fewer if the reader went away)."""
        pipe = self.pipe
        view = memoryview(data).cast("B") if pipe.is_bytes else list(data)
        written = 0
        while written < len(view):
            with pipe.cond:
                if pipe.writer_gone:
                    raise RuntimeError("write to a stream writer that was closed")
                pipe.wait_for(lambda: pipe.room() > 0 or pipe.reader_gone, timeout,
                              f"writing a {pipe.type_name()}")
                if pipe.reader_gone:
                    return written
                chunk = view[written:written + pipe.room()]
                pipe.data.extend(chunk)
                written += len(chunk)
                pipe.notify()
        return written

    @property
    def reader_gone(self) -> bool:
        return self.pipe.reader_gone

    def close(self) -> None:
        self.pipe.close_writer()


class FutureReader:
    """The readable end of a future, held by the host."""

    __slots__ = ("pipe",)

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    def read(self, timeout: float | None = None) -> Any:
        """The value, once written; `Dropped` if the writer went without writing."""
        pipe = self.pipe
        with pipe.cond:
            pipe.wait_for(lambda: bool(pipe.data) or pipe.writer_gone or pipe.reader_gone, timeout,
                          f"reading a {pipe.type_name()}")
            if not pipe.data:
                raise Dropped(f"the writer of a {pipe.type_name()} was dropped without a value")
            value = pipe.data.pop()
            pipe.reader_gone = True  # a future is read once
            pipe.notify()
            return value

    def ready(self) -> bool:
        return bool(self.pipe.data) or self.pipe.writer_gone

    def close(self) -> None:
        self.pipe.close_reader()


class FutureWriter:
    """The writable end of a future, held by the host."""

    __slots__ = ("pipe",)

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe

    def write(self, value: Any) -> bool:
        """Set the value (once); False if the reader is already gone."""
        pipe = self.pipe
        with pipe.cond:
            if pipe.has_value or pipe.writer_gone:
                raise RuntimeError("a future was written twice")
            pipe.has_value = True
            if pipe.reader_gone:
                pipe.writer_gone = True
                return False
            pipe.data.append(value)
            pipe.writer_gone = True
            pipe.notify()
            return True

    def close(self) -> None:
        self.pipe.close_writer()


def stream(elem: ValType | None = U8, capacity: int = DEFAULT_CAPACITY) -> tuple[StreamReader, StreamWriter]:
    """A new stream of `elem` elements: (reader, writer), both held by the host until one is handed
    to a guest (return the reader from a host function, or pass it to an export)."""
    pipe = Pipe("stream", elem, capacity)
    return StreamReader(pipe), StreamWriter(pipe)


def future(elem: ValType | None = UNTYPED) -> tuple[FutureReader, FutureWriter]:
    """A new future of `elem`: (reader, writer). By default (UNTYPED) it takes the type of the guest
    end it is handed to, so host code need not spell out types like `result<_, error-code>`; write
    a value of that type."""
    pipe = Pipe("future", elem)
    return FutureReader(pipe), FutureWriter(pipe)
