"""Host functions and host resources for component linkers, without the package's global state.

Each host function is registered with the C API through one shared ctypes trampoline; its converters
are compiled from the function type the component imports, once, when the linker is built. Per-call
state travels in a thread-local: a guest call binds the request's host state for the duration of the
call (host functions always run on the calling thread), and an exception raised by a host function is
kept in that same thread-local so the caller re-raises the original, never another thread's.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import wasmtime
from wasmtime.component import FuncType, LinkerInstance, ListType, ValType
from wasmtime.component import _types as wt

from tauon.wasm.component import _capi as c
from tauon.wasm.component.codec import Codec, Lift, Lower, ResourceIds, compile_type
from tauon.wasm.component.codec_flat import compile_flat

HostImpl = Callable[..., Any]
"""Called as impl(state, *args); returns the result value (None for no result)."""
Dtor = Callable[[Any, int], None]
"""Called as dtor(state, rep) when the guest drops its last handle to a host resource."""


# The one thread-local the C boundary forces: wasmtime calls every host function through the shared
# trampolines below with only a slot index and the store's context, and reaching the request's state
# through the store's data costs a C call and a slab lookup per host call (about as much as a whole
# small host call), so the guest call binds it here, on the thread its host functions run on.
class _Local(threading.local):
    state: Any = None
    error: BaseException | None = None


_local = _Local()


class NoHostState(RuntimeError):
    pass


class bound_state:  # lower-case: it reads as a function, `with bound_state(state):`
    """Make `state` the host state for wasm run by this thread inside the block (re-entrant). A class,
    not a @contextmanager generator: a request enters it three times, and the generator cost twice
    as much (1.7 against 0.7 us)."""

    __slots__ = ("_previous", "_state")

    def __init__(self, state: Any) -> None:
        self._state = state
        self._previous: Any = None

    def __enter__(self) -> None:
        self._previous = _local.state
        _local.state = self._state
        _local.error = None

    def __exit__(self, *exc: object) -> None:
        _local.state = self._previous


def take_host_error() -> BaseException | None:
    """The exception the last failing host function raised on this thread, if any (then cleared)."""
    error, _local.error = _local.error, None
    return error


@dataclass(slots=True)
class _Slot:
    name: str
    impl: Callable[..., Any]
    lifts: tuple[Lift, ...] | None = ()
    """None: the function ignores its arguments (a trap), so none are converted."""
    lower: Lower | None = None


class _Registry:
    """Slots referenced by the `data` pointer the C API hands back to the trampolines."""

    def __init__(self) -> None:
        self.slots: list[_Slot | None] = [None]  # index 0 is never used: data=0 arrives as None
        self._free: list[int] = []
        self._lock = threading.Lock()

    def add(self, slot: _Slot) -> int:
        with self._lock:
            if self._free:
                index = self._free.pop()
                self.slots[index] = slot
            else:
                index = len(self.slots)
                self.slots.append(slot)
            return index

    def release(self, index: int) -> None:
        with self._lock:
            self.slots[index] = None
            self._free.append(index)


_funcs = _Registry()
_dtors = _Registry()


def _fail(name: str, exc: BaseException) -> int:
    _local.error = exc
    text = f"{name}: {exc}" if str(exc) else f"{name}: {type(exc).__name__}"
    return int(c.error_new(text.encode("utf-8", "replace")))


_at = c.Val.from_address
_VAL = c.VAL_SIZE


def _call_host(data: int, ctx: int, _fty: int, args: int, nargs: int, results: int, nresults: int) -> int:
    slot = _funcs.slots[data]
    assert slot is not None
    try:
        state = _local.state
        if state is None:
            raise NoHostState("host function called outside a bound guest call")
        lifts = slot.lifts
        if nargs == 0 or lifts is None:
            out = slot.impl(state)
        elif nargs == 1:
            out = slot.impl(state, lifts[0](ctx, _at(args)))
        else:
            out = slot.impl(state, *[lifts[i](ctx, _at(args + i * _VAL)) for i in range(nargs)])
        if slot.lower is not None:
            slot.lower(ctx, out, _at(results))
        return 0
    except BaseException as exc:  # everything must become a trap: nothing may unwind through C
        return _fail(slot.name, exc)


def _drop_host(data: int, _ctx: int, rep: int) -> int:
    slot = _dtors.slots[data]
    assert slot is not None
    try:
        state = _local.state
        if state is not None:  # no state: the store is going away, nothing to release
            slot.impl(state, rep)
        return 0
    except BaseException as exc:
        return _fail(slot.name, exc)


def _release_func(data: int) -> None:
    _funcs.release(data)


def _release_dtor(data: int) -> None:
    _dtors.release(data)


class LoopBudgetSpent(Exception):
    """A guest run on the event loop had the CPU for long enough without finishing (`cpu_deadline`)."""


class _Budget(threading.local):
    since: tuple[float, float] | None = None
    """(thread CPU seconds, monotonic seconds) at the run's first deadline; None before it."""
    wall_limit = 0.0


_budget = _Budget()
CPU_SHARE = 0.5
"""Share of the wall-clock time since its first deadline a run must have had on the CPU to be
stopped at a later one: under it, the thread was mostly waiting for a CPU, not running the guest."""


def cpu_deadline(store: wasmtime.Store, wall_limit: float) -> None:
    """Make `store`'s epoch deadline (already set) count the CPU time its run gets rather than the
    wall clock's, for a run on this thread. At the first deadline the run goes on for another tick;
    at each later one it is stopped with LoopBudgetSpent if it had the CPU for `CPU_SHARE` of the time
    since the first, or once `wall_limit` seconds have passed since then; else it goes on again. A
    run stopped by the plain deadline on a busy machine was one that other processes had kept off the
    CPU, not one that computed for long (2-3 abandoned JS runs in 40 s with one CPU-bound process
    beside tauon, each sending the next 1,000 requests to threads). The thread's CPU clock is read
    only at deadlines: a read on every run cost a small guest 7 % of its request."""
    _budget.since = None
    _budget.wall_limit = wall_limit
    c.store_epoch_deadline_callback(ctypes.c_void_p.from_buffer(store.ptr()).value, _ON_DEADLINE, None, None)


def _on_deadline(_ctx: int, _data: int, delta: Any, kind: Any) -> int:
    try:
        cpu, now = time.thread_time(), time.monotonic()
        since = _budget.since
        if since is None:
            _budget.since = (cpu, now)
        else:
            elapsed = now - since[1]
            if cpu - since[0] >= CPU_SHARE * elapsed or elapsed >= _budget.wall_limit:
                return _fail("event loop deadline", LoopBudgetSpent(
                    f"the guest ran for {(cpu - since[0]) * 1000:.0f} ms of CPU in {elapsed * 1000:.0f} ms "
                    "past its first deadline on the event loop"))
        delta[0] = 1
        kind[0] = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE
        return 0
    except BaseException as exc:  # nothing may unwind through C
        return _fail("event loop deadline", exc)


# The C-callable trampolines; module globals, so they live as long as any linker that uses them.
_ON_DEADLINE = c.EpochCallback(_on_deadline)
_CALL_HOST = c.HostCallback(_call_host)
_DROP_HOST = c.DtorCallback(_drop_host)
_RELEASE_FUNC = c.Finalizer(_release_func)
_RELEASE_DTOR = c.Finalizer(_release_dtor)


def _ptr(li: LinkerInstance) -> int:
    return ctypes.c_void_p.from_buffer(li.ptr()).value or 0  # not ctypes.cast: see guest.context_address


def _compile(ty: ValType, resources: ResourceIds, latin1_bytes: bool, flat: bool,
             lift_flat: bool = False) -> Codec:
    generic = compile_type(ty, resources, latin1_bytes=latin1_bytes)
    if latin1_bytes:
        return generic
    if flat:
        return compile_flat(ty, generic) or generic
    if lift_flat and isinstance(ty, ListType) and not isinstance(ty.element, wt.U8):
        # A list of strings or tuples (fields.from-list's headers) costs codec.py a C call per string
        # and list; lifted flat, it is a memoryview read per field. Only such parameters: compiling
        # every function's converters flat too took converter compiling from 11 to 19 % of a warm
        # restart's samples (300 apps, py-spy), and every app builds its own linker.
        fast = compile_flat(ty, generic)
        if fast is not None:
            return Codec(fast.lift, generic.lower)
    return generic


def compile_signature(fty: FuncType, resources: ResourceIds, *, latin1_bytes: bool = False,
                      flat: bool = False
                      ) -> tuple[tuple[Lift, ...], Lower | None, tuple[Lower, ...], Lift | None]:
    """(param lifts, result lower, param lowers, result lift) for a function type. `latin1_bytes`:
    its strings stand for byte lists (rewriting/reads.py, routing.py). `flat`: values without
    resources cross in one C call each (codec_flat.py)."""
    params = [_compile(t, resources, latin1_bytes, flat, lift_flat=True) for _, t in fty.params]
    result_ty = fty.result
    result = _compile(result_ty, resources, latin1_bytes, flat) if result_ty is not None else None
    return (tuple(p.lift for p in params), result.lower if result else None,
            tuple(p.lower for p in params), result.lift if result else None)


def define_func(li: LinkerInstance, name: str, impl: HostImpl, fty: FuncType | None,
                resources: ResourceIds, *, label: str | None = None, latin1_bytes: bool = False,
                flat: bool = False) -> None:
    """Define `name` in `li` as `impl`, converting with `fty` (the type the component imports;
    `flat`: see compile_signature). With `fty` None, `impl(state)` is called without arguments and
    must raise (a trap)."""
    lifts: tuple[Lift, ...] | None = None
    lower: Lower | None = None
    if fty is not None:
        lifts, lower, _, _ = compile_signature(fty, resources, latin1_bytes=latin1_bytes, flat=flat)
    index = _funcs.add(_Slot(label or name, impl, lifts, lower))
    raw = name.encode()
    error = c.linker_instance_add_func(_ptr(li), raw, len(raw), _CALL_HOST, index, _RELEASE_FUNC)
    if error:
        _funcs.release(index)
        raise RuntimeError(f"defining {label or name}: {c.take_error(error)}")


def define_resource(li: LinkerInstance, name: str, host_id: int, dtor: Dtor,
                    *, label: str | None = None) -> None:
    """Define resource `name` in `li` as the host resource type `host_id`."""
    index = _dtors.add(_Slot(f"[resource-drop]{label or name}", dtor))
    raw = name.encode()
    rtype = c.resource_type_new_host(host_id)
    try:
        error = c.linker_instance_add_resource(_ptr(li), raw, len(raw), rtype, _DROP_HOST, index,
                                               _RELEASE_DTOR)
    finally:
        c.resource_type_delete(rtype)
    if error:
        _dtors.release(index)
        raise RuntimeError(f"defining resource {label or name}: {c.take_error(error)}")
