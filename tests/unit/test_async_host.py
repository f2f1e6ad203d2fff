"""The host side of streams and futures (`tauon.wasm.runtime.async_host`) between host threads: the
same pipes the guest's stream builtins use, here with both ends on the host."""

from __future__ import annotations

import threading

import pytest

from tauon.wasm.canon.types import Prim
from tauon.wasm.runtime.async_host import Deferred, Dropped, future, stream


def test_bytes_stream_moves_everything_in_order_with_backpressure() -> None:
    reader, writer = stream(capacity=1000)
    payload = bytes(range(256)) * 40  # 10 KiB through a 1000-byte buffer: the writer must wait

    def produce() -> None:
        assert writer.write(payload, timeout=30) == len(payload)
        writer.close()

    t = threading.Thread(target=produce)
    t.start()
    pipe = reader.pipe
    with pipe.cond:  # the writer fills the buffer and waits for the reader
        pipe.wait_for(lambda: pipe.room() == 0, 30, "filling")
    got = reader.read_all(timeout=30)
    t.join(30)
    assert got == payload
    assert reader.read(timeout=1) is None


def test_value_stream_and_reader_gone() -> None:
    reader, writer = stream(Prim("string"), capacity=2)
    assert writer.write(["a", "b"], timeout=5) == 2
    assert reader.read(1, timeout=5) == ["a"]
    reader.close()
    assert writer.write(["c", "d", "e"], timeout=5) == 0
    assert writer.reader_gone


def test_write_times_out_when_nobody_reads() -> None:
    _reader, writer = stream(capacity=4)
    with pytest.raises(TimeoutError, match="writing a stream"):
        writer.write(b"123456", timeout=0.2)


def test_future_value_and_drop() -> None:
    reader, writer = future(Prim("u32"))
    assert writer.write(7)
    assert reader.read(timeout=5) == 7
    reader2, writer2 = future(None)
    writer2.close()
    with pytest.raises(Dropped):
        reader2.read(timeout=5)
    reader3, writer3 = future(Prim("u8"))
    reader3.close()
    assert writer3.write(1) is False


def test_deferred_completes_from_another_thread() -> None:
    d = Deferred()
    done = threading.Event()
    d.on_done(done.set)
    threading.Thread(target=d.resolve, args=(42,)).start()
    assert done.wait(10)
    assert d.outcome() == 42
    with pytest.raises(RuntimeError):
        d.resolve(1)
    failed = Deferred()
    failed.fail(ValueError("no"))
    calls: list[int] = []
    failed.on_done(lambda: calls.append(1))
    assert calls == [1]
    with pytest.raises(ValueError):
        failed.outcome()
