"""The stackful form of component-model async in tauon's component runtime (`canon lift async` without a
callback), on a small hand-written component run by real wasmtime: an export that returns at once;
ones that block their thread in `waitable-set.wait` (on a subtask, on a stream the host writes), in a
synchronously lowered async host call, and in `thread.yield`; one that
runs on after `task.return`; the run slot lent while it waits, without spinning; deadlines that expire
while it is blocked; and the traps of the specification's rules, including those of a synchronous
export, which may not block before it returns.

The host side is a test `HostLinks` (Python functions, threads and `Deferred`s the test completes),
the boundary the runtime calls through.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.asynchost import ThreadedHost, load_wat
from tauon.wasm.component.guest import Trap
from tauon.wasm.engine import WasmEngine, limited_store
from tauon.wasm.runtime.async_host import Deferred, StreamReader, StreamWriter, stream
from tauon.wasm.runtime.guest import RuntimeGuestFunc, instantiate
from tauon.wasm.runtime.instance import HostImpl, RuntimeComponent, RuntimeInstance
from tauon.wasm.runtime.plan import HostFunc
from tauon.wasm.runtime.tasks import AsyncGuestFunc, release
from tauon.wasm.slots import RunSlots, SlotHold

COMPONENT = r"""(component
  (type $st (stream u8))
  (import "test:host/api" (instance $h
    (export "quick" (func async (param "n" u32) (result u32)))
    (export "slow" (func async (param "n" u32) (result u32)))
    (export "gate" (func async (result u32)))
    (export "source" (func (param "n" u32) (result (stream u8))))
    (export "silent" (func (result (stream u8))))
    (export "greet" (func (result string)))
  ))
  (core func $wsn0 (canon waitable-set.new))
  ;; its realloc calls a builtin once $evil is set, which the specification forbids (may_leave)
  (core module $libc
    (import "h" "wsn" (func $wsn (result i32)))
    (memory (export "memory") 2)
    (global $evil (export "evil") (mut i32) (i32.const 0))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32)
      (if (global.get $evil) (then (drop (call $wsn))))
      (i32.const 40000)))
  (core instance $libc (instantiate $libc (with "h" (instance (export "wsn" (func $wsn0))))))
  (alias core export $libc "memory" (core memory $mem))
  (alias core export $libc "realloc" (core func $realloc))
  (alias export $h "quick" (func $quick))
  (alias export $h "slow" (func $slow))
  (alias export $h "gate" (func $gate))
  (alias export $h "source" (func $source))
  (alias export $h "silent" (func $silent))
  (alias export $h "greet" (func $greet))
  (core func $greet_l (canon lower (func $greet) (memory $mem) (realloc $realloc)))
  (core func $quick_a (canon lower (func $quick) async (memory $mem)))
  (core func $slow_a (canon lower (func $slow) async (memory $mem)))
  (core func $slow_s (canon lower (func $slow)))
  (core func $gate_a (canon lower (func $gate) async (memory $mem)))
  (core func $gate_s (canon lower (func $gate)))
  (core func $source_l (canon lower (func $source)))
  (core func $silent_l (canon lower (func $silent)))
  (core func $tr (canon task.return (result u32)))
  (core func $tr64 (canon task.return (result u64)))
  (core func $sr_a (canon stream.read $st async (memory $mem)))
  (core func $sdr (canon stream.drop-readable $st))
  (core func $wsn (canon waitable-set.new))
  (core func $wsd (canon waitable-set.drop))
  (core func $wait (canon waitable-set.wait (memory $mem)))
  (core func $poll (canon waitable-set.poll (memory $mem)))
  (core func $wj (canon waitable.join))
  (core func $std (canon subtask.drop))
  (core func $yield (canon thread.yield))
  (core func $cg (canon context.get i32 0))
  (core func $cs (canon context.set i32 0))
  (core func $bpi (canon backpressure.inc))
  (core func $bpd (canon backpressure.dec))
  (core module $m
    (import "libc" "memory" (memory 2))
    (import "libc" "evil" (global $evil (mut i32)))
    (import "h" "greet" (func $greet (param i32)))
    (import "h" "quick-a" (func $quick_a (param i32 i32) (result i32)))
    (import "h" "slow-a" (func $slow_a (param i32 i32) (result i32)))
    (import "h" "slow-s" (func $slow_s (param i32) (result i32)))
    (import "h" "gate-a" (func $gate_a (param i32) (result i32)))
    (import "h" "gate-s" (func $gate_s (result i32)))
    (import "h" "source" (func $source (param i32) (result i32)))
    (import "h" "silent" (func $silent (result i32)))
    (import "h" "tr" (func $tr (param i32)))
    (import "h" "tr64" (func $tr64 (param i64)))
    (import "h" "sr-a" (func $sr_a (param i32 i32 i32) (result i32)))
    (import "h" "sdr" (func $sdr (param i32)))
    (import "h" "wsn" (func $wsn (result i32)))
    (import "h" "wsd" (func $wsd (param i32)))
    (import "h" "wait" (func $wait (param i32 i32) (result i32)))
    (import "h" "poll" (func $poll (param i32 i32) (result i32)))
    (import "h" "wj" (func $wj (param i32 i32)))
    (import "h" "std" (func $std (param i32)))
    (import "h" "yield" (func $yield (result i32)))
    (import "h" "cg" (func $cg (result i32)))
    (import "h" "cs" (func $cs (param i32)))
    (import "h" "bpi" (func $bpi))
    (import "h" "bpd" (func $bpd))

    ;; at-once: an async host call that returns at once, then task.return; no wait at all
    (func (export "at-once") (param $n i32)
      (if (i32.ne (call $quick_a (local.get $n) (i32.const 100)) (i32.const 2)) (then unreachable))
      (call $tr (i32.add (i32.load (i32.const 100)) (i32.const 1))))

    ;; wait-slow: a subtask the thread waits for in waitable-set.wait; the event lands at 16
    (func (export "wait-slow") (param $n i32) (local $r i32) (local $s i32)
      (local.set $r (call $slow_a (local.get $n) (i32.const 200)))
      (if (i32.ne (i32.and (local.get $r) (i32.const 15)) (i32.const 1)) (then unreachable))  ;; STARTED
      (local.set $s (call $wsn))
      (call $wj (i32.shr_u (local.get $r) (i32.const 4)) (local.get $s))
      (if (i32.ne (call $wait (local.get $s) (i32.const 16)) (i32.const 1)) (then unreachable))  ;; SUBTASK
      (if (i32.ne (i32.load (i32.const 16)) (i32.shr_u (local.get $r) (i32.const 4))) (then unreachable))
      (if (i32.ne (i32.load (i32.const 20)) (i32.const 2)) (then unreachable))  ;; RETURNED
      (call $std (i32.load (i32.const 16)))
      (call $wsd (local.get $s))
      (call $tr (i32.load (i32.const 200))))

    ;; sync-slow: the async host function lowered synchronously: the thread blocks in the call
    (func (export "sync-slow") (param $n i32)
      (call $tr (call $slow_s (local.get $n))))

    ;; wait-gate: poll finds nothing (the test completes the gate only once the thread sleeps), then
    ;; waitable-set.wait delivers the subtask's result
    (func (export "wait-gate") (param $n i32) (local $r i32) (local $s i32)
      (local.set $r (call $gate_a (i32.const 200)))
      (if (i32.ne (i32.and (local.get $r) (i32.const 15)) (i32.const 1)) (then unreachable))
      (local.set $s (call $wsn))
      (call $wj (i32.shr_u (local.get $r) (i32.const 4)) (local.get $s))
      (if (i32.ne (call $poll (local.get $s) (i32.const 16)) (i32.const 0)) (then unreachable))  ;; NONE
      (if (i32.ne (call $wait (local.get $s) (i32.const 16)) (i32.const 1)) (then unreachable))
      (call $std (i32.load (i32.const 16)))
      (call $tr (i32.load (i32.const 200))))

    ;; block-gate: blocks in the synchronously lowered gate until the test completes it
    (func (export "block-gate") (param $n i32)
      (call $tr (call $gate_s)))

    ;; count: read a host stream of n bytes, 1000 at a time, waiting in a set when a read is BLOCKED
    (func (export "count") (param $n i32) (local $end i32) (local $s i32) (local $r i32) (local $total i32)
      (local.set $end (call $source (local.get $n)))
      (local.set $s (call $wsn))
      (call $wj (local.get $end) (local.get $s))
      (block $done (loop $again
        (local.set $r (call $sr_a (local.get $end) (i32.const 1024) (i32.const 1000)))
        (if (i32.eq (local.get $r) (i32.const -1)) (then
          (if (i32.ne (call $wait (local.get $s) (i32.const 16)) (i32.const 2)) (then unreachable))
          (if (i32.ne (i32.load (i32.const 16)) (local.get $end)) (then unreachable))
          (local.set $r (i32.load (i32.const 20)))))
        (local.set $total (i32.add (local.get $total) (i32.shr_u (local.get $r) (i32.const 4))))
        (br_if $done (i32.eq (i32.and (local.get $r) (i32.const 15)) (i32.const 1)))  ;; DROPPED
        (br $again)))
      (call $wj (local.get $end) (i32.const 0))
      (call $sdr (local.get $end))
      (call $wsd (local.get $s))
      (call $tr (local.get $total)))

    ;; wait-silent: a read of a stream the host never writes, waited for in a set
    (func (export "wait-silent") (param $n i32) (local $end i32) (local $s i32)
      (local.set $end (call $silent))
      (if (i32.ne (call $sr_a (local.get $end) (i32.const 1024) (i32.const 10)) (i32.const -1))
        (then unreachable))
      (local.set $s (call $wsn))
      (call $wj (local.get $end) (local.get $s))
      (drop (call $wait (local.get $s) (i32.const 16)))
      (call $tr (i32.const 0)))

    ;; yields: n thread.yield calls (each NOT_CANCELLED); the context slot survives them
    (func (export "yields") (param $n i32)
      (call $cs (i32.const 7))
      (loop $again
        (if (local.get $n) (then
          (if (call $yield) (then unreachable))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $again))))
      (call $tr (i32.add (call $cg) (i32.const 0))))

    ;; return-then-block: the result goes out first, then the task blocks on until the gate opens
    (func (export "return-then-block") (param $n i32)
      (call $tr (local.get $n))
      (drop (call $gate_s)))

    ;; bp-on: leaves backpressure on
    (func (export "bp-on") (param $n i32)
      (call $bpi)
      (call $tr (i32.const 0)))

    ;; rule breakers
    (func (export "twice") (param $n i32) (call $tr (i32.const 1)) (call $tr (i32.const 2)))
    (func (export "never") (param $n i32))
    (func (export "trap") (param $n i32) unreachable)
    (func (export "bad-set") (param $n i32) (drop (call $wait (i32.const 99) (i32.const 16))))
    (func (export "poll-unaligned") (param $n i32) (drop (call $poll (call $wsn) (i32.const 17))))
    (func (export "wrong-type") (param $n i32) (call $tr64 (i64.const 1)))
    (func (export "bp-under") (param $n i32) (call $bpd))
    (func (export "return-waited") (param $n i32)  ;; blocks after returning (allowed), then returns again
      (call $tr (i32.const 1))
      (call $tr (call $slow_s (i32.const 1))))

    ;; synchronous exports, which may not block before they return
    (func (export "sync-wait") (param $n i32) (result i32) (call $wait (call $wsn) (i32.const 16)))
    (func (export "sync-call") (param $n i32) (result i32) (call $slow_s (local.get $n)))
    (func (export "sync-yield") (param $n i32) (result i32) (call $yield))

    ;; may_leave: the guest's realloc and post-return functions may not call the host
    (func (export "greet") (param $n i32)
      (call $greet (i32.const 300))
      (call $tr (i32.load (i32.const 304))))
    (func (export "evil-realloc") (param $n i32)
      (global.set $evil (i32.const 1))
      (call $greet (i32.const 300))
      (call $tr (i32.const 0)))
    (func (export "sync-post") (param $n i32) (result i32) (local.get $n))
    (func (export "evil-post") (param i32) (drop (call $wsn))))
  (core instance $i (instantiate $m (with "libc" (instance $libc)) (with "h" (instance
    (export "quick-a" (func $quick_a)) (export "slow-a" (func $slow_a)) (export "slow-s" (func $slow_s))
    (export "gate-a" (func $gate_a)) (export "gate-s" (func $gate_s)) (export "source" (func $source_l))
    (export "silent" (func $silent_l)) (export "tr" (func $tr)) (export "tr64" (func $tr64))
    (export "sr-a" (func $sr_a)) (export "sdr" (func $sdr))
    (export "wsn" (func $wsn)) (export "wsd" (func $wsd)) (export "wait" (func $wait))
    (export "poll" (func $poll)) (export "wj" (func $wj)) (export "std" (func $std))
    (export "yield" (func $yield)) (export "cg" (func $cg)) (export "cs" (func $cs))
    (export "bpi" (func $bpi)) (export "bpd" (func $bpd)) (export "greet" (func $greet_l))))))
  (type $f (func async (param "n" u32) (result u32)))
  (type $sync (func (param "n" u32) (result u32)))
  (func (export "at-once") (type $f) (canon lift (core func $i "at-once") async))
  (func (export "wait-slow") (type $f) (canon lift (core func $i "wait-slow") async))
  (func (export "sync-slow") (type $f) (canon lift (core func $i "sync-slow") async))
  (func (export "wait-gate") (type $f) (canon lift (core func $i "wait-gate") async))
  (func (export "block-gate") (type $f) (canon lift (core func $i "block-gate") async))
  (func (export "count") (type $f) (canon lift (core func $i "count") async))
  (func (export "wait-silent") (type $f) (canon lift (core func $i "wait-silent") async))
  (func (export "yields") (type $f) (canon lift (core func $i "yields") async))
  (func (export "return-then-block") (type $f) (canon lift (core func $i "return-then-block") async))
  (func (export "bp-on") (type $f) (canon lift (core func $i "bp-on") async))
  (func (export "twice") (type $f) (canon lift (core func $i "twice") async))
  (func (export "never") (type $f) (canon lift (core func $i "never") async))
  (func (export "trap") (type $f) (canon lift (core func $i "trap") async))
  (func (export "bad-set") (type $f) (canon lift (core func $i "bad-set") async))
  (func (export "poll-unaligned") (type $f) (canon lift (core func $i "poll-unaligned") async))
  (func (export "wrong-type") (type $f) (canon lift (core func $i "wrong-type") async))
  (func (export "bp-under") (type $f) (canon lift (core func $i "bp-under") async))
  (func (export "return-waited") (type $f) (canon lift (core func $i "return-waited") async))
  (func (export "sync-wait") (type $sync) (canon lift (core func $i "sync-wait")))
  (func (export "sync-call") (type $sync) (canon lift (core func $i "sync-call")))
  (func (export "sync-yield") (type $sync) (canon lift (core func $i "sync-yield")))
  (func (export "greet") (type $f) (canon lift (core func $i "greet") async))
  (func (export "evil-realloc") (type $f) (canon lift (core func $i "evil-realloc") async))
  (func (export "sync-post") (type $sync)
    (canon lift (core func $i "sync-post") (post-return (core func $i "evil-post"))))
)"""


class Host(ThreadedHost):
    """`test:host/api`: `quick` answers at once; `slow` completes on another thread after 50 ms;
    `gate` completes when the test opens it; `source` writes n bytes from a thread through a small
    pipe (the reader waits for most of them); `silent` is a stream nobody writes."""

    def __init__(self) -> None:
        super().__init__()
        self.gates: list[Deferred] = []
        self.gate_made = threading.Event()
        self.writers: list[StreamWriter] = []

    def impl(self, func: HostFunc) -> HostImpl:
        impls: dict[str, HostImpl] = {"quick": self._quick, "slow": self._slow,
                                      "gate": self._gate, "source": self._source, "silent": self._silent,
                                      "greet": lambda state: "hello"}
        return impls[func.func]

    def _gate(self, state: Any) -> Deferred:
        d = Deferred()
        self.gates.append(d)
        self.gate_made.set()
        return d

    def _silent(self, state: Any) -> StreamReader:
        reader, writer = stream(capacity=4096)
        self.writers.append(writer)
        return reader



class State:
    """The request state the runtime hands host functions; `slot` as HostState has it."""

    def __init__(self) -> None:
        self.slot = SlotHold()


@pytest.fixture
def host() -> Iterator[Host]:
    h = Host()
    yield h
    for d in h.gates:
        if not d.done:
            d.resolve(0)
    for w in h.writers:
        w.close()
    for t in h.threads:
        t.join(30)


@pytest.fixture
def component(engine: WasmEngine, tmp_path: Path, host: Host) -> RuntimeComponent:
    return load_wat(engine, tmp_path / "stackful.wasm", COMPONENT, host)


def new_instance(engine: WasmEngine, component: RuntimeComponent) -> RuntimeInstance:
    store = limited_store(engine.engine, memory_limit=64 << 20, deadline_ticks=1 << 30)
    return instantiate(component, store, state=State())


def call(component: RuntimeComponent, instance: RuntimeInstance, name: str, arg: int,
         returned: list[Any], timeout: float = 30) -> None:
    AsyncGuestFunc(component, None, name).call(instance, instance.state, (arg,), returned.append,
                                               deadline=time.monotonic() + timeout)


def run(engine: WasmEngine, component: RuntimeComponent, name: str, arg: int = 0,
        timeout: float = 30) -> list[Any]:
    instance = new_instance(engine, component)
    returned: list[Any] = []
    try:
        call(component, instance, name, arg, returned, timeout)
    finally:
        release(instance)
    return returned


class Background:
    """A call on its own thread, holding the one slot of `slots` as an executor's runner does."""

    def __init__(self, engine: WasmEngine, component: RuntimeComponent, name: str, arg: int = 0,
                 timeout: float = 30) -> None:
        self.instance = new_instance(engine, component)
        self.slots = RunSlots(1, patience=5)
        self.returned: list[Any] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(component, name, arg, timeout), daemon=True)
        self.thread.start()

    def _run(self, component: RuntimeComponent, name: str, arg: int, timeout: float) -> None:
        try:
            with self.slots.running(self.instance.state.slot):
                call(component, self.instance, name, arg, self.returned, timeout)
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            release(self.instance)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            assert self.thread.is_alive() or condition(), f"the call ended early: {self.error}"
            time.sleep(0.005)

    def join(self) -> None:
        self.thread.join(30)
        assert not self.thread.is_alive()


def test_a_stackful_export_that_returns_at_once(engine: WasmEngine, component: RuntimeComponent) -> None:
    assert run(engine, component, "at-once", 20) == [41]


def test_the_thread_waits_in_waitable_set_wait_for_a_subtask(engine: WasmEngine,
                                                           component: RuntimeComponent) -> None:
    assert run(engine, component, "wait-slow", 5) == [1005]


def test_a_synchronously_lowered_async_host_call_blocks_the_thread(engine: WasmEngine,
                                                                    component: RuntimeComponent) -> None:
    assert run(engine, component, "sync-slow", 6) == [1006]


@pytest.mark.parametrize("n", [0, 999, 100_000])
def test_the_thread_reads_a_stream_the_host_writes(engine: WasmEngine, component: RuntimeComponent,
                                                   n: int) -> None:
    assert run(engine, component, "count", n) == [n]


def test_thread_yield_returns_not_cancelled_and_the_context_survives(engine: WasmEngine,
                                                                     component: RuntimeComponent) -> None:
    assert run(engine, component, "yields", 1000) == [7]


def test_a_waiting_thread_lends_its_run_slot_and_does_not_spin(
        engine: WasmEngine, component: RuntimeComponent, host: Host) -> None:
    call_ = Background(engine, component, "wait-gate")
    call_.wait_for(lambda: call_.slots.busy == 0)  # poll saw nothing; the thread sleeps in wait
    cpu = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - cpu < 0.1  # nobody spins while the guest waits
    assert call_.thread.is_alive() and call_.returned == []
    host.gates[0].resolve(77)
    call_.join()
    assert call_.error is None and call_.returned == [77]
    assert call_.slots.busy == 0


def test_the_result_goes_out_at_task_return_while_the_task_runs_on(engine: WasmEngine,
                                                                  component: RuntimeComponent,
                                                                  host: Host) -> None:
    call_ = Background(engine, component, "return-then-block", 9)
    call_.wait_for(lambda: call_.returned == [9] and host.gate_made.is_set())
    assert call_.thread.is_alive()  # still blocked in the host call after returning
    host.gates[0].resolve(0)
    call_.join()
    assert call_.error is None


@pytest.mark.parametrize("name", ["block-gate", "wait-gate", "wait-silent"])
def test_a_deadline_that_expires_while_the_thread_is_blocked_is_a_timeout(
        engine: WasmEngine, component: RuntimeComponent, name: str) -> None:
    started = time.monotonic()
    with pytest.raises(Trap) as info:
        run(engine, component, name, timeout=0.3)
    assert info.value.kind == "timeout"
    assert 0.3 <= time.monotonic() - started < 10  # woken at the deadline, not left blocked


def test_a_second_call_while_a_stackful_task_is_blocked_is_refused(
        engine: WasmEngine, component: RuntimeComponent, host: Host) -> None:
    """The spec would start a second stackful task beside the blocked one; tauon runs one task per
    instance (README), so the call fails and the first task is unharmed."""
    call_ = Background(engine, component, "block-gate")
    call_.wait_for(lambda: call_.slots.busy == 0)
    with pytest.raises(Trap, match="already running a task"):
        call(component, call_.instance, "at-once", 1, [])
    host.gates[0].resolve(5)
    call_.join()
    assert call_.error is None and call_.returned == [5]


def test_backpressure_left_on_refuses_the_next_call(engine: WasmEngine, component: RuntimeComponent) -> None:
    instance = new_instance(engine, component)
    try:
        returned: list[Any] = []
        call(component, instance, "bp-on", 0, returned)
        assert returned == [0]
        with pytest.raises(Trap, match="backpressure on"):
            call(component, instance, "at-once", 1, returned)
    finally:
        release(instance)


@pytest.mark.parametrize(("name", "message"), [
    ("twice", "task.return called twice"),
    ("return-waited", "task.return called twice"),
    ("never", "exited without calling task.return"),
    ("trap", "unreachable"),
    ("bad-set", "handle index 99 is not in use"),
    ("poll-unaligned", "event pointer 0x11 is not aligned to 4"),
    ("wrong-type", "task.return of type"),
    ("bp-under", "backpressure counter underflow"),
])
def test_rule_breaking_stackful_guests_trap(engine: WasmEngine, component: RuntimeComponent, name: str,
                                            message: str) -> None:
    with pytest.raises(Trap, match=message) as info:
        run(engine, component, name, 1)
    assert info.value.kind == "trap"


@pytest.mark.parametrize(("name", "what"), [
    ("sync-wait", "waitable-set.wait"),
    ("sync-call", "test:host/api#slow"),
])
def test_a_synchronous_export_may_not_block_before_it_returns(engine: WasmEngine, component: RuntimeComponent,
                                                              name: str, what: str) -> None:
    instance = new_instance(engine, component)
    try:
        with pytest.raises(Trap, match="cannot block a synchronous task before returning") as info:
            RuntimeGuestFunc(component, None, name).call(instance.store, instance, instance.state, 1)
        assert what in str(info.value)
    finally:
        release(instance)


def test_thread_yield_in_a_synchronous_export_returns_at_once(engine: WasmEngine,
                                                             component: RuntimeComponent) -> None:
    instance = new_instance(engine, component)
    try:
        assert RuntimeGuestFunc(component, None, "sync-yield").call(instance.store, instance,
                                                                     instance.state, 1) == 0
    finally:
        release(instance)


def test_the_guest_realloc_runs_while_lowering_a_result(engine: WasmEngine,
                                                        component: RuntimeComponent) -> None:
    assert run(engine, component, "greet") == [5]  # the string's length, stored where realloc said


def test_a_realloc_that_calls_a_builtin_traps(engine: WasmEngine, component: RuntimeComponent) -> None:
    """CanonicalABI.md: `may_leave` is false while the host lowers values into the guest (its realloc
    runs) and during post-return; a builtin or import called then traps."""
    with pytest.raises(Trap, match=r"waitable-set\.new called from the guest's realloc") as info:
        run(engine, component, "evil-realloc")
    assert info.value.kind == "trap"


def test_a_post_return_that_calls_a_builtin_traps(engine: WasmEngine, component: RuntimeComponent) -> None:
    instance = new_instance(engine, component)
    try:
        with pytest.raises(Trap, match="may not leave the component instance"):
            RuntimeGuestFunc(component, None, "sync-post").call(instance.store, instance, instance.state, 1)
        assert instance.leave.ok  # restored for the instance's next call
    finally:
        release(instance)
