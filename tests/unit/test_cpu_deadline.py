"""The epoch deadline of a guest run on the event loop counts the CPU time the run gets
(tauon.wasm.component.host.cpu_deadline): real wasmtime stores, a real epoch ticker, a core module
that either computes or waits in a host call (standing for a thread the machine keeps off the CPU)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import wasmtime

from tauon.wasm.component.host import LoopBudgetSpent, cpu_deadline, take_host_error

WAT = """
(module
  (import "host" "pause" (func $pause))
  (func (export "wait") (param $n i32)
    (loop $again
      (call $pause)
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $again (i32.gt_s (local.get $n) (i32.const 0)))))
  (func (export "spin") (loop $forever (br $forever))))
"""
TICK = 0.01


@pytest.fixture(scope="module")
def engine() -> Iterator[wasmtime.Engine]:
    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(TICK):
            engine.increment_epoch()

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    yield engine
    stop.set()
    ticker.join()


def run(engine: wasmtime.Engine, export: str, *args: int, wall_limit: float = 0.1) -> float:
    """Call `export` in a fresh store with a 2-tick deadline under `cpu_deadline`; seconds taken."""
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(2)
    cpu_deadline(store, wall_limit)
    pause = wasmtime.Func(store, wasmtime.FuncType([], []), lambda: time.sleep(0.001))
    instance = wasmtime.Instance(store, wasmtime.Module(engine, WAT), [pause])
    func = instance.exports(store)[export]
    assert isinstance(func, wasmtime.Func)
    started = time.monotonic()
    take_host_error()
    try:
        func(store, *args)
    finally:
        elapsed = time.monotonic() - started
    return elapsed


def test_a_run_kept_off_the_cpu_goes_on_past_its_deadline(engine: wasmtime.Engine) -> None:
    """60 ms of waiting: a plain 2-tick deadline stops it within 20 ms."""
    assert run(engine, "wait", 60) >= 0.06


def test_a_run_that_computes_is_stopped_at_a_later_deadline(engine: wasmtime.Engine) -> None:
    with pytest.raises(wasmtime.WasmtimeError, match="event loop deadline"):
        run(engine, "spin")
    assert isinstance(take_host_error(), LoopBudgetSpent)


def test_a_run_kept_off_the_cpu_for_too_long_is_stopped_anyway(engine: wasmtime.Engine) -> None:
    started = time.monotonic()
    with pytest.raises(wasmtime.WasmtimeError, match="event loop deadline"):
        run(engine, "wait", 1000, wall_limit=0.03)
    assert time.monotonic() - started < 0.5  # 1,000 pauses would take over a second
    assert isinstance(take_host_error(), LoopBudgetSpent)
