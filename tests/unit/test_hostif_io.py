"""wasi:io and wasi:http/types host functions on a real HostState (no wasm needed)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from tauon.hostif import http, io
from tauon.hostif.pipe import BytePipe
from tauon.hostif.registry import HostTrap
from tauon.hostif.state import DeadlineExceeded, HostConfig, HostState


def state(timeout: float = 5.0) -> HostState:
    return HostState(HostConfig(label="a/c", logger=logging.getLogger("t")), timeout=timeout)


def test_pipe_streams_and_ends() -> None:
    s = state()
    pipe = BytePipe(s.cond, limit=4)
    rep = s.table.push(io.PipeInput(pipe))
    assert io.input_read(s, rep, 10) == ("ok", b"")
    pipe.write(b"abcdef")
    assert not pipe.writable()
    assert io.input_read(s, rep, 4) == ("ok", b"abcd")
    pipe.close()
    assert io.input_blocking_read(s, rep, 10) == ("ok", b"ef")
    assert io.input_read(s, rep, 10) == ("err", ("closed", None))


def test_ascii_reads_return_ascii_runs_and_hand_the_rest_to_the_list_read() -> None:
    # The routed read (wasm/component/rewriting/routing.py): `closed` sends the guest to the list read, which
    # must then see exactly the bytes the ASCII read held back, in order.
    s = state()
    pipe = BytePipe(s.cond, limit=1 << 20)
    rep = s.table.push(io.PipeInput(pipe))
    assert io.input_read_ascii(s, rep, 10) == ("ok", b"")  # nothing yet: as read says
    run = b"a" * io.MIN_ASCII_RUN
    pipe.write(run + b"\xffz" + b"b" * 10 + b"\x80" + b"c" * 2000)
    assert io.input_read_ascii(s, rep, 1 << 16) == ("ok", run)
    # A short ASCII run before other bytes is not returned alone: the list read takes the chunk.
    assert io.input_read_ascii(s, rep, 1 << 16) == ("err", ("closed", None))
    assert io.input_read(s, rep, 5) == ("ok", b"\xffzbbb")
    assert io.input_read_ascii(s, rep, 1 << 16) == ("err", ("closed", None))
    assert io.input_read(s, rep, 1 << 16) == ("ok", b"b" * 7 + b"\x80" + b"c" * 2000)
    # Held bytes count as readable: a guest that polls before its next read is not left waiting.
    stream = s.table.get(rep, io.InputStream)
    pipe.write(b"\x81" + b"d" * 3)
    assert io.input_read_ascii(s, rep, 1 << 16) == ("err", ("closed", None))
    assert stream.held == b"\x81ddd" and stream.readable()
    assert io.input_blocking_read(s, rep, 2) == ("ok", b"\x81d")
    pipe.close()
    assert io.input_blocking_read_ascii(s, rep, 10) == ("ok", b"dd")
    assert io.input_blocking_read_ascii(s, rep, 10) == ("err", ("closed", None))  # the end: the list
    assert io.input_read(s, rep, 10) == ("err", ("closed", None))                # read says so too


def test_failed_pipe_reports_last_operation_failed() -> None:
    s = state()
    pipe = BytePipe(s.cond)
    rep = s.table.push(io.PipeInput(pipe))
    pipe.close(error="client went away")
    tag, (case, err_rep) = io.input_read(s, rep, 1)
    assert (tag, case) == ("err", "last-operation-failed")
    assert io.error_to_debug_string(s, err_rep) == "client went away"


def test_blocking_read_wakes_when_another_thread_writes() -> None:
    s = state()
    pipe = BytePipe(s.cond)
    rep = s.table.push(io.PipeInput(pipe))
    threading.Timer(0.05, pipe.write, args=(b"late",)).start()
    assert io.input_blocking_read(s, rep, 10) == ("ok", b"late")


def test_blocking_is_bounded_by_the_request_deadline() -> None:
    s = state(timeout=0.1)
    rep = s.table.push(io.PipeInput(BytePipe(s.cond)))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"blocked in input-stream\.blocking-read"):
        io.input_blocking_read(s, rep, 10)
    assert time.monotonic() - started < 1


def test_blocking_write_limit_and_write_beyond_permit_trap() -> None:
    s = state()
    rep = s.table.push(io.PipeOutput(BytePipe(s.cond, limit=8)))
    with pytest.raises(HostTrap, match="4096"):
        io.output_blocking_write_and_flush(s, rep, b"x" * 4097)
    assert io.output_check_write(s, rep) == ("ok", 8)
    with pytest.raises(HostTrap, match="check-write"):
        io.output_write(s, rep, b"x" * 9)


def test_poll_returns_ready_indexes_and_timers_fire() -> None:
    s = state()
    pipe = BytePipe(s.cond)
    never = s.table.push(io.Pollable(lambda: False))
    data = s.table.push(io.Pollable(pipe.readable))
    timer = io.now_pollable(s, time.monotonic() + 0.05)
    assert io.poll(s, [never, data, timer]) == [2]
    pipe.write(b"x")
    assert io.poll(s, [never, data]) == [1]


def test_fields_validate_and_forbid() -> None:
    s = state()
    assert http.fields_from_list(s, [("Host", b"x")]) == ("err", "forbidden")
    assert http.fields_from_list(s, [("bad name", b"x")]) == ("err", "invalid-syntax")
    assert http.fields_from_list(s, [("x", b"a\r\nb")]) == ("err", "invalid-syntax")
    tag, rep = http.fields_from_list(s, [("X-A", b"1"), ("x-a", b"2")])
    assert tag == "ok" and http.fields_get(s, rep, "X-a") == [b"1", b"2"]
    assert http.fields_set(s, rep, "x-a", [b"3"]) == ("ok", None)
    assert http.fields_entries(s, rep) == [("x-a", b"3")]
    child = s.table.push(http.Fields([], immutable=True))
    assert http.fields_append(s, child, "x", b"y") == ("err", "immutable")
