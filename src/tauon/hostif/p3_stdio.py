"""wasi:cli 0.3 stdio as Spin 4 gives it to HTTP components: stdin is empty, and whatever the guest
writes to stdout and stderr is logged line by line to tauon's per-app log, tagged with the app and
component, exactly as the 0.2 streams are (state.stdout / state.stderr, with their per-request budget).

0.3's `write-via-stream` hands the host a readable end of the guest's bytes and returns a future for
the outcome: a pooled worker thread reads the stream until the guest ends it (or the request's
deadline passes), logging as it goes, then completes the future with `ok`.
"""

from __future__ import annotations

import threading

from tauon.hostif.cli import CommandIO
from tauon.hostif.p3_streams import U8, future_of, remaining, run_stream_worker, stream_of, unit_result
from tauon.hostif.registry import HostInterface, p3_name
from tauon.hostif.state import GuestLog, HostState
from tauon.wasm.canon.types import EnumType
from tauon.wasm.runtime.async_host import FutureReader, FutureWriter, StreamReader, future

ERROR_CODE = EnumType(("io", "illegal-byte-sequence", "pipe"))
"""wasi:cli/types@0.3 `error-code`."""
DONE = unit_result(ERROR_CODE)
_LOCK = "p3-stdio-lock"


def read_via_stream(state: HostState) -> tuple[StreamReader, FutureReader]:
    """`stdin.read-via-stream`: empty for HTTP components (a command's stdin if one runs)."""
    command = state.extensions.get("cli")
    data = command.stdin if isinstance(command, CommandIO) else b""
    return stream_of(U8, data), future_of(DONE, ("ok", None))


def _write_via_stream(state: HostState, data: StreamReader, log: GuestLog) -> FutureReader:
    done_reader, done_writer = future(DONE)
    lock: threading.Lock = state.extensions.setdefault(_LOCK, threading.Lock())
    if not run_stream_worker(state, _drain, data, log, lock, state.deadline, done_writer):
        data.close()  # too many streams at once in this request: refused, as a broken pipe
        done_writer.write(("err", "pipe"))
    return done_reader


def _drain(data: StreamReader, log: GuestLog, lock: threading.Lock, deadline: float,
           done: FutureWriter) -> None:
    try:
        while (chunk := data.read(timeout=remaining(deadline))) is not None:
            with lock:  # a guest may write several streams to one log
                log.write(chunk)
        done.write(("ok", None))
    except TimeoutError:  # the request is over: stop reading, as Spin drops the stream with the instance
        data.close()
        done.write(("err", "pipe"))


def _stdout(state: HostState, data: StreamReader) -> FutureReader:
    return _write_via_stream(state, data, state.stdout)


def _stderr(state: HostState, data: StreamReader) -> FutureReader:
    return _write_via_stream(state, data, state.stderr)


INTERFACES = [
    HostInterface(p3_name("wasi:cli/stdin"), {"read-via-stream": read_via_stream}),
    HostInterface(p3_name("wasi:cli/stdout"), {"write-via-stream": _stdout}),
    HostInterface(p3_name("wasi:cli/stderr"), {"write-via-stream": _stderr}),
]
