"""wasi:io 0.2 (error, poll, streams): host streams and pollables.

Streams are Python objects behind the resource table. Readiness is always checked under the request's
Condition, which every producer notifies, so `poll` and the blocking calls wait without spinning.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from tauon.hostif.pipe import BytePipe, PipeError
from tauon.hostif.registry import HostInterface, HostTrap
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import err, ok
from tauon.wasm.component.rewriting.contract import BYTES_IMPORT, ascii_read

BLOCKING_WRITE_LIMIT = 4096
"""wasi:io's contract for blocking-write-and-flush: at most 4096 bytes per call."""
CLOSED = ("closed", None)
MAX_READ = 256 * 1024
"""Largest chunk one read returns (reads may return less than asked): keeps list lowering fast."""


class IoError:
    def __init__(self, message: str, fs_code: str | None = None, net_code: str | None = None) -> None:
        self.message = message
        self.fs_code = fs_code
        """The wasi:filesystem error-code when a file stream failed (filesystem-error-code)."""
        self.net_code = net_code
        """The wasi:sockets error-code when a socket stream failed (network-error-code)."""


class StreamFailed(Exception):
    def __init__(self, message: str, fs_code: str | None = None, net_code: str | None = None) -> None:
        super().__init__(message)
        self.fs_code = fs_code
        self.net_code = net_code


class InputStream:
    """Base: a source of bytes. `read` never blocks: b'' means nothing yet, None the end.

    Callers use `take` and `readable`, which also see `held`: bytes read from the source but handed
    back (the ASCII read below returns a prefix and keeps the rest for the next read)."""

    held: bytes = b""

    def read(self, n: int) -> bytes | None:
        return None

    def ready(self) -> bool:
        return True

    def take(self, n: int) -> bytes | None:
        if self.held:
            data, self.held = self.held[:n], self.held[n:]
            return data
        return self.read(n)

    def readable(self) -> bool:
        return bool(self.held) or self.ready()


class OutputStream:
    """Base: a sink of bytes. `capacity` is what may be written without blocking."""

    def capacity(self) -> int:
        return 1 << 20

    def write(self, data: bytes) -> None:
        pass

    def ready(self) -> bool:
        return self.capacity() > 0

    def flushed(self) -> bool:
        """Everything written has left tauon (a socket's writer thread may still hold bytes)."""
        return True


class PipeInput(InputStream):
    def __init__(self, pipe: BytePipe) -> None:
        self.pipe = pipe

    def read(self, n: int) -> bytes | None:
        try:
            return self.pipe.read(n)
        except PipeError as exc:
            raise StreamFailed(str(exc)) from exc

    def ready(self) -> bool:
        return self.pipe.readable()

    def on_drop(self) -> None:
        self.pipe.abandon()


class PipeOutput(OutputStream):
    def __init__(self, pipe: BytePipe) -> None:
        self.pipe = pipe

    def capacity(self) -> int:
        if self.pipe.reader_gone or self.pipe.closed:
            raise StreamFailed("the other end has gone away")
        return self.pipe.space()

    def write(self, data: bytes) -> None:
        try:
            self.pipe.write(data)
        except PipeError as exc:
            raise StreamFailed(str(exc)) from exc

    def ready(self) -> bool:
        return self.pipe.writable()


class LogOutput(OutputStream):
    """stdout / stderr: never blocks; lines go to the log."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink

    def write(self, data: bytes) -> None:
        self._sink(data)


class Pollable:
    def __init__(self, ready: Callable[[], bool], until: float | None = None) -> None:
        self.ready = ready
        self.until = until
        """For timers: the monotonic time at which it becomes ready (lets `poll` sleep exactly)."""


def _stream_error(state: HostState, exc: StreamFailed) -> tuple[str, Any]:
    return err(("last-operation-failed", state.table.push(IoError(str(exc), exc.fs_code, exc.net_code))))


def _wait(state: HostState, pollables: list[Pollable], what: str) -> None:
    untils = [p.until for p in pollables if p.until is not None]
    state.wait_until(lambda: any(p.ready() for p in pollables), what, min(untils) if untils else None)


# -- wasi:io/error ------------------------------------------------------------------------------

def error_to_debug_string(state: HostState, rep: int) -> str:
    return state.table.get(rep, IoError).message


# -- wasi:io/poll -------------------------------------------------------------------------------

def pollable_ready(state: HostState, rep: int) -> bool:
    with state.cond:
        return state.table.get(rep, Pollable).ready()


def pollable_block(state: HostState, rep: int) -> None:
    pollable = state.table.get(rep, Pollable)
    while not state.wait_until(pollable.ready, "pollable.block", pollable.until):
        pass


def poll(state: HostState, reps: list[int]) -> list[int]:
    if not reps:
        raise HostTrap("poll: empty list of pollables")
    pollables = [state.table.get(rep, Pollable) for rep in reps]
    while True:
        with state.cond:
            ready = [i for i, p in enumerate(pollables) if p.ready()]
        if ready:
            return ready
        _wait(state, pollables, "poll")


# -- wasi:io/streams ----------------------------------------------------------------------------

def input_read(state: HostState, rep: int, n: int) -> tuple[str, Any]:
    stream = state.table.get(rep, InputStream)
    try:
        data = stream.take(min(n, MAX_READ))
    except StreamFailed as exc:
        return _stream_error(state, exc)
    return err(CLOSED) if data is None else ok(data)


def _blocking(read: Callable[[HostState, int, int], tuple[str, Any]]
              ) -> Callable[[HostState, int, int], tuple[str, Any]]:
    """`read` that first waits until the stream has bytes or has ended (blocking-read)."""
    def blocking_read(state: HostState, rep: int, n: int) -> tuple[str, Any]:
        stream = state.table.get(rep, InputStream)
        if n == 0:
            return ok(b"")
        state.wait_until(stream.readable, "input-stream.blocking-read")
        return read(state, rep, n)

    return blocking_read


input_blocking_read = _blocking(input_read)


_NON_ASCII = re.compile(rb"[\x80-\xff]")
MIN_ASCII_RUN = 1024
"""Shortest ASCII run an ASCII read returns before other bytes: one more call costs about what a
KiB costs on the list path."""


def input_read_ascii(state: HostState, rep: int, n: int) -> tuple[str, Any]:
    """The read behind wasm/component/rewriting/routing.py's routed reads into a caller's buffer (the preview1
    adapter's): the ASCII prefix of what `read` would return, the only text whose lowering fits
    that buffer exactly (UTF-8, as many bytes as characters, no shrinking `realloc`). Where
    that prefix is empty, or at the end of the stream, `closed` tells the guest's trampoline to make
    the original list read, which then returns the bytes (or the end) itself."""
    stream = state.table.get(rep, InputStream)
    try:
        data = stream.take(min(n, MAX_READ))
    except StreamFailed as exc:
        return _stream_error(state, exc)
    if data is None:
        return err(CLOSED)
    if not data.isascii():
        found = _NON_ASCII.search(data)
        assert found is not None
        # A short ASCII run is not worth a call of its own: the list read takes the whole chunk.
        cut = found.start() if found.start() >= MIN_ASCII_RUN else 0
        stream.held = data[cut:] + stream.held
        data = data[:cut]
        if not data:
            return err(CLOSED)
    return ok(data)


input_blocking_read_ascii = _blocking(input_read_ascii)


def input_skip(state: HostState, rep: int, n: int) -> tuple[str, Any]:
    result = input_read(state, rep, n)
    return ok(len(result[1])) if result[0] == "ok" else result


def input_blocking_skip(state: HostState, rep: int, n: int) -> tuple[str, Any]:
    result = input_blocking_read(state, rep, n)
    return ok(len(result[1])) if result[0] == "ok" else result


def input_subscribe(state: HostState, rep: int) -> int:
    stream = state.table.get(rep, InputStream)
    return state.table.push(Pollable(stream.readable))


def output_check_write(state: HostState, rep: int) -> tuple[str, Any]:
    stream = state.table.get(rep, OutputStream)
    try:
        return ok(stream.capacity())
    except StreamFailed as exc:
        return _stream_error(state, exc)


def output_write(state: HostState, rep: int, data: bytes) -> tuple[str, Any]:
    stream = state.table.get(rep, OutputStream)
    try:
        if len(data) > stream.capacity():
            raise HostTrap("output-stream.write: more bytes than check-write permitted")
        stream.write(data)
    except StreamFailed as exc:
        return _stream_error(state, exc)
    return ok()


def output_blocking_write_and_flush(state: HostState, rep: int, data: bytes) -> tuple[str, Any]:
    if len(data) > BLOCKING_WRITE_LIMIT:
        raise HostTrap("output-stream.blocking-write-and-flush: more than 4096 bytes")
    stream = state.table.get(rep, OutputStream)
    try:
        while data:
            state.wait_until(stream.ready, "output-stream.blocking-write-and-flush")
            room = stream.capacity()
            stream.write(data[:room])
            data = data[room:]
        return output_blocking_flush(state, rep)
    except StreamFailed as exc:
        return _stream_error(state, exc)


def output_flush(state: HostState, rep: int) -> tuple[str, Any]:
    stream = state.table.get(rep, OutputStream)
    try:
        stream.capacity()  # reports a stream whose reader has gone
    except StreamFailed as exc:
        return _stream_error(state, exc)
    return ok()  # written bytes are already handed to the consumer


def output_blocking_flush(state: HostState, rep: int) -> tuple[str, Any]:
    stream = state.table.get(rep, OutputStream)
    try:
        stream.capacity()
        state.wait_until(stream.flushed, "output-stream.blocking-flush")
        stream.capacity()  # the flush itself may have failed (a socket reset while sending)
    except StreamFailed as exc:
        return _stream_error(state, exc)
    return ok()


def output_write_zeroes(state: HostState, rep: int, n: int) -> tuple[str, Any]:
    return output_write(state, rep, bytes(n))


def output_blocking_write_zeroes_and_flush(state: HostState, rep: int, n: int) -> tuple[str, Any]:
    return output_blocking_write_and_flush(state, rep, bytes(n))


def output_subscribe(state: HostState, rep: int) -> int:
    stream = state.table.get(rep, OutputStream)
    return state.table.push(Pollable(stream.ready))


def output_splice(state: HostState, rep: int, src: int, n: int) -> tuple[str, Any]:
    room = output_check_write(state, rep)
    if room[0] != "ok":
        return room
    data = input_read(state, src, min(n, room[1]))
    if data[0] != "ok":
        return data
    written = output_write(state, rep, data[1])
    return ok(len(data[1])) if written[0] == "ok" else written


def output_blocking_splice(state: HostState, rep: int, src: int, n: int) -> tuple[str, Any]:
    source = state.table.get(src, InputStream)
    sink = state.table.get(rep, OutputStream)
    state.wait_until(lambda: source.readable() and sink.ready(), "output-stream.blocking-splice")
    return output_splice(state, rep, src, n)


def now_pollable(state: HostState, until: float) -> int:
    return state.table.push(Pollable(lambda: time.monotonic() >= until, until))


INTERFACES = [
    HostInterface("wasi:io/error", {"[method]error.to-debug-string": error_to_debug_string}, ("error",)),
    HostInterface("wasi:io/poll", {
        "[method]pollable.ready": pollable_ready,
        "[method]pollable.block": pollable_block,
        "poll": poll,
    }, ("pollable",)),
    HostInterface("wasi:io/streams", {
        "[method]input-stream.read": input_read,
        "[method]input-stream.blocking-read": input_blocking_read,
        "[method]input-stream.skip": input_skip,
        "[method]input-stream.blocking-skip": input_blocking_skip,
        "[method]input-stream.subscribe": input_subscribe,
        "[method]output-stream.check-write": output_check_write,
        "[method]output-stream.write": output_write,
        "[method]output-stream.blocking-write-and-flush": output_blocking_write_and_flush,
        "[method]output-stream.flush": output_flush,
        "[method]output-stream.blocking-flush": output_blocking_flush,
        "[method]output-stream.write-zeroes": output_write_zeroes,
        "[method]output-stream.blocking-write-zeroes-and-flush": output_blocking_write_zeroes_and_flush,
        "[method]output-stream.subscribe": output_subscribe,
        "[method]output-stream.splice": output_splice,
        "[method]output-stream.blocking-splice": output_blocking_splice,
    }, ("input-stream", "output-stream")),
    # The same reads and writes with the bytes as a latin1 string, and reads of ASCII only for
    # guests whose allocator gives just the caller's buffer: wasm/component/rewriting/routing.py routes a
    # guest's reads and its 2-aligned writes here, so they cross the binding in one buffer. Its
    # resources are wasi's own.
    HostInterface(BYTES_IMPORT, {
        "[method]output-stream.write": output_write,
        "[method]output-stream.blocking-write-and-flush": output_blocking_write_and_flush,
        "[method]input-stream.read": input_read,
        "[method]input-stream.blocking-read": input_blocking_read,
        ascii_read("[method]input-stream.read"): input_read_ascii,
        ascii_read("[method]input-stream.blocking-read"): input_blocking_read_ascii,
    }),
]
