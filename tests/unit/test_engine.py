"""WasmEngine: compiled-artifact cache, module/component detection, epoch deadlines."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import wasmtime

from tauon.errors import LoadError
from tauon.wasm.capture import CaptureWatchdog, OutputCapture
from tauon.wasm.engine import WasmEngine
from tauon.wasm.kind import classify_bytes

MODULE_WAT = '(module (func (export "answer") (result i32) i32.const 42))'
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def wasm(tmp_path: Path) -> Path:
    path = tmp_path / "answer.wasm"
    path.write_bytes(wasmtime.wat2wasm(MODULE_WAT))
    return path


def answer(engine: WasmEngine, module: wasmtime.Module) -> object:
    store = wasmtime.Store(engine.engine)
    store.set_epoch_deadline(1_000_000)  # epoch interruption is on: without a deadline it traps at once
    func = wasmtime.Instance(store, module, []).exports(store)["answer"]
    assert isinstance(func, wasmtime.Func)
    return func(store)


def artifacts(cache: Path) -> list[Path]:
    return sorted((cache / "modules").glob("*.cwasm"))


def test_first_compile_writes_cache_and_second_engine_loads_it(tmp_path: Path, wasm: Path) -> None:
    cache = tmp_path / "cache"
    first = WasmEngine(cache)
    assert answer(first, first.compile_module(wasm, DIGEST)) == 42
    [artifact] = artifacts(cache)
    stamp = artifact.stat().st_mtime_ns

    # A new engine (a restarted daemon) must not need the wasm at all: it loads the artifact.
    wasm.unlink()
    second = WasmEngine(cache)
    assert answer(second, second.compile_module(wasm, DIGEST)) == 42
    assert artifact.stat().st_mtime_ns == stamp


def test_same_digest_in_one_engine_shares_the_module(tmp_path: Path, wasm: Path) -> None:
    engine = WasmEngine(tmp_path / "cache")
    assert engine.compile_module(wasm, DIGEST) is engine.compile_module(wasm, DIGEST)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "flip"])
def test_corrupt_cache_entry_is_recompiled(
    tmp_path: Path, wasm: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    WasmEngine(cache).compile_module(wasm, DIGEST)
    [artifact] = artifacts(cache)
    blob = artifact.read_bytes()
    if damage == "garbage":
        artifact.write_bytes(b"not a compiled module at all")
    elif damage == "truncate":
        artifact.write_bytes(blob[: len(blob) // 2])
    else:
        middle = len(blob) // 2
        artifact.write_bytes(blob[:middle] + bytes([blob[middle] ^ 0xFF]) + blob[middle + 1 :])

    with caplog.at_level(logging.WARNING, logger="tauon.wasm.engine"):
        engine = WasmEngine(cache)
        assert answer(engine, engine.compile_module(wasm, DIGEST)) == 42
    assert "corrupt" in caplog.text
    assert artifact.read_bytes() != b"not a compiled module at all"
    assert len(artifact.read_bytes()) == len(blob)


def test_incompatible_cache_entry_is_recompiled(
    tmp_path: Path, wasm: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    engine = WasmEngine(cache)
    # An artifact that passes the checksum but was built by an engine with other settings.
    other = wasmtime.Engine(wasmtime.Config())  # no epoch interruption
    blob = bytes(wasmtime.Module(other, MODULE_WAT).serialize())
    artifact = cache / "modules" / f"{engine.cache_key(DIGEST)}.cwasm"
    artifact.parent.mkdir(parents=True)
    artifact.write_bytes(blob)
    artifact.with_name(artifact.name + ".sha256").write_text(hashlib.sha256(blob).hexdigest())
    with caplog.at_level(logging.WARNING, logger="tauon.wasm.engine"):
        assert answer(engine, engine.compile_module(wasm, DIGEST)) == 42
    assert "incompatible" in caplog.text


def test_cache_key_depends_on_digest_version_and_settings(tmp_path: Path) -> None:
    engine = WasmEngine(tmp_path)
    base = engine.cache_key(DIGEST)
    assert engine.cache_key("sha256:" + "cd" * 32) != base
    engine.settings["wasmtime"] = "0.0.1"
    assert engine.cache_key(DIGEST) != base
    engine.settings["wasmtime"] = WasmEngine(tmp_path).settings["wasmtime"]
    assert engine.cache_key(DIGEST) == base
    engine.settings["epoch_interruption"] = "false"
    assert engine.cache_key(DIGEST) != base


def test_invalid_wasm_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0\xff\xff")
    with pytest.raises(LoadError, match="not a valid WebAssembly module"):
        WasmEngine(tmp_path / "cache").compile_module(bad, DIGEST)


def test_unwritable_cache_still_compiles(tmp_path: Path, wasm: Path) -> None:
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache dir should be")
    engine = WasmEngine(blocker)
    assert answer(engine, engine.compile_module(wasm, DIGEST)) == 42


def test_classify_module_component_and_wat() -> None:
    assert classify_bytes(bytes(wasmtime.wat2wasm("(module)"))) == "module"
    assert classify_bytes(bytes(wasmtime.wat2wasm("(component)"))) == "component"
    assert classify_bytes(b";; comment\n  (; block ;) (component (core module))") == "component"
    assert classify_bytes(b"\n(module (func))") == "module"
    with pytest.raises(ValueError, match="not WebAssembly"):
        classify_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ValueError, match="truncated"):
        classify_bytes(b"\0asm\x01")


def test_classify_file_reports_the_path(tmp_path: Path) -> None:
    engine = WasmEngine(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(LoadError, match=r"notes\.txt"):
        engine.classify(text)
    comp = tmp_path / "c.wasm"
    comp.write_bytes(wasmtime.wat2wasm("(component)"))
    assert engine.classify(comp) == "component"


def _spin_until_deadline(engine: WasmEngine, seconds: float) -> None:
    """Run a wasm loop with an epoch deadline `seconds` ahead: it ends in the interrupt trap."""
    module = wasmtime.Module(engine.engine, '(module (func (export "spin") (loop (br 0))))')
    store = wasmtime.Store(engine.engine)
    store.set_epoch_deadline(engine.deadline_ticks(seconds))
    spin = wasmtime.Instance(store, module, []).exports(store)["spin"]
    assert isinstance(spin, wasmtime.Func)
    spin(store)


def test_deadline_interrupts_a_loop_within_margin(tmp_path: Path) -> None:
    engine = WasmEngine(tmp_path, epoch_interval=0.01)
    assert engine.deadline_ticks(0.2) == 21
    engine.start()
    try:
        started = time.monotonic()
        with pytest.raises(wasmtime.Trap) as trap:
            _spin_until_deadline(engine, 0.2)
        elapsed = time.monotonic() - started
    finally:
        engine.stop()
    assert trap.value.trap_code == wasmtime.TrapCode.INTERRUPT
    assert 0.15 < elapsed < 0.6
    assert not engine.ticking


def test_concurrent_compiles_of_one_digest_share_one_module(tmp_path: Path, wasm: Path) -> None:
    engine = WasmEngine(tmp_path / "cache")
    with ThreadPoolExecutor(4) as pool:
        modules = list(pool.map(lambda _: engine.compile_module(wasm, DIGEST), range(8)))
    assert all(module is modules[0] for module in modules)
    assert len(artifacts(tmp_path / "cache")) == 1


def test_watchdog_seals_an_oversized_capture() -> None:
    watchdog = CaptureWatchdog()
    with OutputCapture("test", limit=10) as capture, watchdog.watching(capture):
        with open(capture.path, "wb", buffering=0) as writer:  # a second descriptor, as wasmtime opens one
            writer.write(b"0123456789")
            watchdog.check()
            assert not capture.overflowed
            writer.write(b"abc")
            watchdog.check()
            assert capture.sealed and capture.overflowed
            with pytest.raises(PermissionError):
                writer.write(b"more")
        assert capture.read() == b"0123456789"


def test_tick_hooks_run_every_tick_and_a_failing_one_stops_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = WasmEngine(tmp_path, epoch_interval=0.01)
    calls: list[float] = []

    def failing() -> None:
        raise RuntimeError("hook bug")

    engine.on_tick(failing)
    engine.on_tick(lambda: calls.append(time.monotonic()))
    engine.on_tick(failing)  # idempotent: still one hook
    engine.start()
    try:
        with pytest.raises(wasmtime.Trap):  # the epoch still advances: the deadline is reached
            _spin_until_deadline(engine, 0.1)
        time.sleep(0.1)
    finally:
        engine.stop()
    assert len(calls) >= 10
    failures = [r for r in caplog.records if "epoch ticker hook" in r.getMessage()]
    assert failures and all(r.exc_info for r in failures)
    assert len(failures) <= len(calls) + 1  # one failing hook per tick, not two


def test_a_hook_taken_off_is_no_longer_called(tmp_path: Path) -> None:
    """What a running wasi:http guest's waker relies on: on_tick while it runs, off_tick after."""
    engine = WasmEngine(tmp_path / "cache", epoch_interval=0.001)
    called = threading.Event()
    calls: list[int] = []

    def hook() -> None:
        calls.append(1)
        called.set()

    engine.on_tick(hook)
    engine.start()
    try:
        assert called.wait(10)
        engine.off_tick(hook)
        seen = len(calls)
        other = threading.Event()
        engine.on_tick(other.set)
        for _ in range(3):  # three more ticks, each seen by a hook still on
            other.clear()
            assert other.wait(10)
        assert len(calls) <= seen + 1  # one call the ticker had already picked up, then none
        engine.off_tick(hook)  # taking it off twice is harmless
    finally:
        engine.stop()


def test_the_winch_tier_compiles_its_trampolines_unoptimized(tmp_path: Path) -> None:
    """Under Winch, Cranelift still compiles the trampolines between host and wasm; the tier has it
    skip optimizing them (faster to compile), and a compile child handed the tier's settings does
    the same, or the parent would find its artifact under another key."""
    engine = WasmEngine(tmp_path / "parent")
    winch = engine.for_tier("winch")
    assert winch.settings["cranelift_opt_level"] == "none" and "cranelift_opt_level" not in engine.settings
    child = WasmEngine(tmp_path / "child", key_settings=winch.settings)  # as compile_child.py makes it
    optimizing = {k: v for k, v in winch.settings.items() if k != "cranelift_opt_level"}
    optimized = WasmEngine(tmp_path / "optimized", key_settings=optimizing)
    assert child.cache_key(DIGEST) == winch.cache_key(DIGEST) != optimized.cache_key(DIGEST)
    wasm = wasmtime.wat2wasm('(module (func (export "f") (param i32 i64 f64) (result i32) local.get 0))')
    code = {name: wasmtime.Module(e.engine, wasm).serialize()
            for name, e in (("winch", winch), ("child", child), ("optimized", optimized))}
    assert code["winch"] == code["child"] != code["optimized"]


def test_winch_tier_has_its_own_key_and_engine_and_shares_the_ticker(tmp_path: Path, wasm: Path) -> None:
    """Winch's code loads only into a Winch engine, so it is cached under its own key; the sibling
    engine shares the run slots and its epoch advances with the parent's ticker."""
    engine = WasmEngine(tmp_path / "cache", epoch_interval=0.01)
    winch = engine.for_tier("winch")
    assert engine.for_tier("winch") is winch and engine.for_tier("cranelift") is engine
    assert (engine.tier, winch.tier) == ("cranelift", "winch")
    assert winch.slots is engine.slots and winch.pool.instances == 0
    assert winch.cache_key(DIGEST) != engine.cache_key(DIGEST)
    assert answer(winch, winch.compile_module(wasm, DIGEST)) == 42
    assert answer(engine, engine.compile_module(wasm, DIGEST)) == 42
    assert len(artifacts(tmp_path / "cache")) == 2
    with pytest.raises(wasmtime.WasmtimeError, match="Winch"):  # why the key must differ
        wasmtime.Module.deserialize_file(engine.engine, str(winch._paths(winch.cache_key(DIGEST))[0]))
    engine.start()
    try:
        assert winch.ticking
        started = time.monotonic()
        with pytest.raises(wasmtime.Trap):
            _spin_until_deadline(winch, 0.2)
        assert 0.15 < time.monotonic() - started < 0.6
    finally:
        engine.stop()
    assert not winch.ticking
    with pytest.raises(ValueError, match="unknown compiler tier"):
        engine.for_tier("singlepass")
