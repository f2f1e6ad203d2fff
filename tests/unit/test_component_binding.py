"""tauon's component binding: the version pin, value conversion, and thread safety under load."""

from __future__ import annotations

import asyncio
import ctypes
import hashlib
import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from support.direct import serve_direct
from tauon.app.plan import ComponentPlan, Limits
from tauon.errors import LoadError
from tauon.executors.base import Executor, GuestError
from tauon.executors.builder import build_component_executor
from tauon.wasm.component import _capi, codec, codec_basic
from tauon.wasm.component.guest import classify, summarize
from tauon.wasm.engine import WasmEngine

ROOT = Path(__file__).resolve().parents[2]


def test_binding_is_pinned_to_the_installed_wasmtime() -> None:
    # The binding calls wasmtime's C API with its own signatures and the package's ctypes structures.
    # If this fails after an upgrade, re-check src/tauon/wasm/component/ and move the pin.
    assert _capi.installed_version() == _capi.SUPPORTED_WASMTIME == "50.0.1"
    _capi.check_version()


def roundtrip(c: codec.Codec, value: Any) -> Any:
    v = _capi.Val()
    c.lower(0, value, v)
    try:
        return c.lift(0, v)
    finally:
        _capi.val_delete(ctypes.byref(v))


@pytest.mark.parametrize("size", [0, 1, 4097, 65536, codec_basic.SCRATCH_LIMIT + 1])
def test_bytes_roundtrip_in_bulk(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    assert roundtrip(codec_basic.byte_list(), data) == data
    assert roundtrip(codec_basic.byte_list(), bytearray(data)) == data


def test_composite_values_roundtrip() -> None:
    string = codec_basic.string()
    variant = codec._variant([("closed", None), ("failed", string)])
    assert roundtrip(variant, "closed") == ("closed", None)
    assert roundtrip(variant, ("failed", "héllo")) == ("failed", "héllo")
    result = codec._result(codec_basic.byte_list(), variant)
    assert roundtrip(result, ("ok", b"abc")) == ("ok", b"abc")
    assert roundtrip(result, ("err", "closed")) == ("err", ("closed", None))
    option = codec._option(string)
    assert roundtrip(option, None) is None
    assert roundtrip(option, "x") == "x"
    record = codec._record([("seconds", codec_basic.scalar(_capi.KIND_U64, "u64")),
                            ("nanoseconds", codec_basic.scalar(_capi.KIND_U32, "u32"))])
    assert roundtrip(record, (5, 7)) == {"seconds": 5, "nanoseconds": 7}
    assert roundtrip(codec._list(string), ["a", "b"]) == ["a", "b"]
    assert roundtrip(codec._tuple([string, codec_basic.byte_list()]), ("k", b"v")) == ("k", b"v")
    assert roundtrip(codec._flags(["read", "write"]), {"write"}) == {"write"}


def test_wrong_variant_case_names_the_cases() -> None:
    variant = codec._variant([("closed", None)])
    with pytest.raises(TypeError, match="no variant case 'open'; cases are closed"):
        roundtrip(variant, "open")


def test_trap_messages_are_classified_and_summarized() -> None:
    message = ("error while executing at wasm backtrace:\n    0:   0x26f1 - <unknown>!<wasm function 46>\n"
               "\nCaused by:\n    wasm trap: interrupt\n")
    assert classify(message, None) == "timeout"
    assert classify(message, RuntimeError()) == "host"
    assert summarize(message) == (
        "wasm trap: interrupt (wasm backtrace: 0:   0x26f1 - <unknown>!<wasm function 46>)")


@pytest.fixture(scope="module")
def executor(tmp_path_factory: pytest.TempPathFactory) -> Any:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    wasm = ROOT / "tests" / "fixtures" / "wasi-http" / "build" / "handler.wasm"
    engine = WasmEngine(tmp_path_factory.mktemp("cache"))
    engine.start()
    plan = ComponentPlan(id="c", wasm_path=str(wasm),
                         wasm_digest="sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest())
    yield build_component_executor(app_id="a", component=plan, engine=engine, limits=Limits(),
                                   limiter=anyio.CapacityLimiter(4), logger=logging.getLogger("t"),
                                   trigger_executor="http", wagi_argv="")
    engine.stop()


async def call(executor: Executor, target: str) -> tuple[int, bytes]:
    try:
        return await serve_direct(executor, "GET", target)
    except GuestError as exc:
        return 500, str(exc).encode()


def test_two_threads_never_see_each_others_values_or_errors(executor: Executor) -> None:
    """The package's variant cache and LAST_EXCEPTION broke exactly this; tauon's binding has neither."""
    problems: list[str] = []

    def worker(target: str, expect_status: int, expect: bytes) -> None:
        async def run() -> None:
            for _ in range(300):
                status, body = await call(executor, target)
                if status != expect_status or expect not in body:
                    problems.append(f"{target}: {status} {body[:80]!r}")

        asyncio.run(run())

    threads = [threading.Thread(target=worker, args=("/missing", 500, b"tauon:fixture/missing#nothing")),
               threading.Thread(target=worker, args=("/info", 200, b"method=GET\npath=/info"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert problems == []


def handler_wasm() -> tuple[Path, str]:
    """The C wasi:http handler fixture (built by the project's script, cached) and its digest."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    wasm = ROOT / "tests" / "fixtures" / "wasi-http" / "build" / "handler.wasm"
    return wasm, "sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest()


def test_compiled_component_is_cached_on_disk(tmp_path: Path) -> None:
    from tauon.wasm.component.cache import compile_component, component_key

    wasm, digest = handler_wasm()
    first = WasmEngine(tmp_path)
    compile_component(first, wasm, digest)
    artifact = tmp_path / "components" / f"{component_key(first, digest)}.cwasm"
    assert artifact.is_file()
    second = WasmEngine(tmp_path)  # same settings: loads the artifact instead of compiling
    missing = tmp_path / "gone.wasm"
    loaded = compile_component(second, missing, digest)
    assert "wasi:http/incoming-handler@0.2.0" in loaded.type.exports(second.engine)


def test_the_cached_artifact_is_wasmtimes_serialized_code_with_its_checksum(tmp_path: Path) -> None:
    """cache.py writes straight from wasmtime's buffer and hashes it in a second thread meanwhile."""
    from tauon.wasm.component.cache import compile_component, component_key

    wasm, digest = handler_wasm()
    engine = WasmEngine(tmp_path)
    compiled = compile_component(engine, wasm, digest)
    artifact = tmp_path / "components" / f"{component_key(engine, digest)}.cwasm"
    written = artifact.read_bytes()
    assert written == compiled.serialize()
    checksum = artifact.with_name(artifact.name + ".sha256").read_text()
    assert checksum == hashlib.sha256(written).hexdigest() + "\n"
    assert sorted(p.name for p in artifact.parent.iterdir()) == [artifact.name, artifact.name + ".sha256"]


def test_a_component_wasmtime_refuses_is_a_load_error_naming_the_file(tmp_path: Path) -> None:
    """Compiled from the bytes where they are (cache._compile), a refusal is still wasmtime's error."""
    from tauon.wasm.component.cache import compile_component

    wasm = tmp_path / "broken.wasm"
    wasm.write_bytes(b"\0asm\x0d\0\x01\0" + b"\x07\x05\x01garbage")  # a component header, then junk
    with pytest.raises(LoadError, match=r"broken\.wasm: not a valid WebAssembly component: .+") as caught:
        compile_component(WasmEngine(tmp_path / "cache"), wasm, "sha256:" + "0" * 64)
    assert caught.value.hint is not None
    assert list((tmp_path / "cache").rglob("*.cwasm")) == []  # nothing cached for it


@pytest.mark.parametrize("damage", ["empty", "flipped"])
def test_damaged_cache_artifact_is_recompiled(tmp_path: Path, damage: str) -> None:
    from tauon.wasm.component.cache import compile_component, component_key

    wasm, digest = handler_wasm()
    first = WasmEngine(tmp_path)
    compile_component(first, wasm, digest)
    artifact = tmp_path / "components" / f"{component_key(first, digest)}.cwasm"
    good = artifact.read_bytes()
    if damage == "empty":
        artifact.write_bytes(b"")
    else:
        artifact.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    second = WasmEngine(tmp_path)
    loaded = compile_component(second, wasm, digest)  # the checksum disagrees: compiled afresh
    assert "wasi:http/incoming-handler@0.2.0" in loaded.type.exports(second.engine)
    rewritten = artifact.read_bytes()
    checksum = artifact.with_name(artifact.name + ".sha256").read_text().strip()
    assert rewritten and hashlib.sha256(rewritten).hexdigest() == checksum
