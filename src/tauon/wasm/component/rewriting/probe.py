"""The allocator probe behind reads.py: one more condition of retyping reads, checked by running it.

Lowering latin1 text that is not ASCII, wasmtime allocates the UTF-8 length and then *shrinks* the
buffer with the guest's `realloc`, which the list path never does. Some allocators refuse that
(componentize-py's traps), so `realloc_shrinks` instantiates each core module that exports the
allocator wit-component lowers with, alone, with every import a trap, and shrinks an allocation; the
retyped reads are used only if that works. That runs guest code before the app serves, so it runs
under an epoch deadline and a memory cap (PROBE_SECONDS, PROBE_MEMORY), and tauon runs it only in its
compile child process (wasm/sandbox.py); an allocator that does not return in time is an error
(ProbeTimeout), since the app could not serve a request with it either.
"""

from __future__ import annotations

import threading

import wasmtime

from tauon.wasm.component.rewriting.binfmt import Section
from tauon.wasm.component.rewriting.reader import Unsupported, read_sections

_REALLOCS = ("cabi_import_realloc", "cabi_realloc")
"""The exports wit-component lowers imports with, in its order of preference."""

PROBE_SECONDS = 2.0
"""Wall-clock budget of the allocator calls of one core module (a few calls that return at once)."""
PROBE_MEMORY = 64 << 20
"""Linear memory a probed module may grow to."""


class ProbeTimeout(Exception):
    """An allocator under probe did not return within PROBE_SECONDS."""

    def __init__(self, export: str) -> None:
        super().__init__(f"probing its allocator ({export}) at compile time did not finish within "
                         f"{PROBE_SECONDS:g} s")
        self.export = export


def realloc_shrinks(data: bytes) -> bool:
    """True if every core module of the component that exports the import allocator can shrink an
    allocation it made, run on its own (no instance of the app is involved). Raises ProbeTimeout."""
    return _probe_all(data, _engine(), threading.Event())


class Probe:
    """`realloc_shrinks(data)` in a thread of its own, started before the caller needs the answer.

    cache.py starts it as soon as it has read a component and rewrites the component meanwhile:
    compiling the probed modules (most of a probe's time) releases the GIL, so the two overlap
    (python-sdk: 80 ms of probe beside 100 ms of rewriting). The answer is the same for the
    socket-retyped form, which edits import types and never a core module. Once cache.py compiles a
    form that did not need the answer, it stops the probe (so it does not compete with that compile);
    asked later after all (wasmtime refused that form), it probes again where it is asked."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._engine = _engine()
        self._stopped = threading.Event()
        self._outcome: bool | ProbeTimeout | None = None
        """None: stopped before it had an answer."""
        self._thread = threading.Thread(target=self._run, name="allocator-probe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        outcome = _answer(self._data, self._engine, self._stopped)
        if not self._stopped.is_set():
            self._outcome = outcome

    def result(self) -> bool:
        """Its answer, once it has one. Raises ProbeTimeout."""
        self._thread.join()
        if self._outcome is None:  # stopped first: probe here, now that it is wanted
            self._outcome = _answer(self._data, _engine(), threading.Event())
        if isinstance(self._outcome, ProbeTimeout):
            raise self._outcome
        return self._outcome

    def stop(self) -> None:
        """Stop it unless it has answered (an allocator that loops would spin until its deadline);
        returns at once, the probe ending at its next check or epoch deadline."""
        if self._thread.is_alive():
            self._stopped.set()
            self._engine.increment_epoch()  # interrupts a call under way

    def close(self) -> None:
        """Stop it and wait for its thread."""
        self.stop()
        self._thread.join()


def _engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    config.cranelift_opt_level = "none"  # run once, a few calls: compile fast
    config.epoch_interruption = True
    return wasmtime.Engine(config)


def _answer(data: bytes, engine: wasmtime.Engine, stopped: threading.Event) -> bool | ProbeTimeout:
    try:
        return _probe_all(data, engine, stopped)
    except ProbeTimeout as exc:
        return exc


def _probe_all(data: bytes, engine: wasmtime.Engine, stopped: threading.Event) -> bool:
    try:
        spans = [s for s in read_sections(data) if s.id == Section.CORE_MODULE]
    except (Unsupported, IndexError):
        return False
    probed = 0
    # Small ones (adapters) first: a refusal ends it early.
    for span in sorted(spans, key=lambda s: s.end - s.start):
        if not any(data.find(name.encode(), span.start, span.end) >= 0 for name in _REALLOCS):
            continue  # cannot export it: skip copying and compiling (most of the component's bytes)
        if stopped.is_set():
            return False
        outcome = _probe_module(engine, data[span.start:span.end], stopped)
        if outcome is False:
            return False
        probed += outcome is True
    return probed > 0


def _probe_module(engine: wasmtime.Engine, binary: bytes, stopped: threading.Event) -> bool | None:
    """Whether this module's allocator shrinks; None when it exports none."""
    try:
        module = wasmtime.Module(engine, binary)
    except wasmtime.WasmtimeError:
        return False
    name = next((n for n in _REALLOCS if n in {e.name for e in module.exports}), None)
    if name is None:
        return None
    store = wasmtime.Store(engine)
    store.set_limits(memory_size=PROBE_MEMORY)
    store.set_epoch_deadline(1)  # one tick of the timer below interrupts it
    timer = threading.Timer(PROBE_SECONDS, engine.increment_epoch)
    timer.daemon = True
    timer.start()
    try:
        linker = wasmtime.Linker(engine)
        _define_fresh_state(store, linker, module)
        linker.define_unknown_imports_as_traps(module)
        realloc = linker.instantiate(store, module).exports(store)[name]
        assert isinstance(realloc, wasmtime.Func)
        first = realloc(store, 0, 0, 2, 64)
        second = realloc(store, first, 64, 2, 32)
    except wasmtime.Trap as exc:
        if exc.trap_code == wasmtime.TrapCode.INTERRUPT and not stopped.is_set():
            raise ProbeTimeout(name) from None
        return False
    except (wasmtime.WasmtimeError, TypeError, AssertionError):
        return False
    finally:
        timer.cancel()
    return bool(first and second and second % 2 == 0)


def _define_fresh_state(store: wasmtime.Store, linker: wasmtime.Linker, module: wasmtime.Module) -> None:
    """Memories, tables and globals a module imports (an adapter imports the main module's): fresh
    ones of the declared type; globals start at zero."""
    for item in module.imports:
        ty = item.type
        value: wasmtime.Memory | wasmtime.Table | wasmtime.Global
        if isinstance(ty, wasmtime.MemoryType):
            value = wasmtime.Memory(store, ty)
        elif isinstance(ty, wasmtime.TableType):
            value = wasmtime.Table(store, ty, None)
        elif isinstance(ty, wasmtime.GlobalType):
            zero = {"i32": wasmtime.Val.i32(0), "i64": wasmtime.Val.i64(0), "f32": wasmtime.Val.f32(0.0),
                    "f64": wasmtime.Val.f64(0.0)}.get(str(ty.content))
            if zero is None:
                raise TypeError(f"global of type {ty.content}")
            value = wasmtime.Global(store, ty, zero)
        else:
            continue
        linker.define(store, item.module, item.name or "", value)


