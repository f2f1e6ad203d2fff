"""rewrite.py on real component binaries: the read results of wasi:io/streams become latin1 strings
only when every use is accounted for and the guest's allocator can shrink; wasmtime accepts the result."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wasmtime
from wasmtime.component import Component, ComponentInstanceType, FuncType
from wasmtime.component import _types as wt

from tauon.wasm.component.rewriting.probe import (
    PROBE_MEMORY,
    PROBE_SECONDS,
    Probe,
    ProbeTimeout,
    realloc_shrinks,
)
from tauon.wasm.component.rewriting.reads import rewrite

ROOT = Path(__file__).resolve().parents[2]
LOOPING = ROOT / "tests/fixtures/components-extra/looping-realloc/component.wat"
SOURCE = (ROOT / "tests/fixtures/rewrite/streams.wat").read_text()


def compile_wat(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def read_results(binary: bytes) -> dict[str, str]:
    """The ok type of each streams function's result, as wasmtime sees the component's imports."""
    engine = wasmtime.Engine()
    component = Component(engine, binary)
    out = {}
    for extern in component.type.imports(engine).values():
        assert isinstance(extern.ty, ComponentInstanceType)
        for name, item in extern.ty.exports(engine).items():
            if isinstance(item.ty, FuncType):
                result = item.ty.result
                assert result is not None
                if name.startswith("[method]input-stream"):
                    assert isinstance(result, wt.ResultType)
                    out[name] = type(result.ok).__name__
                else:
                    out[name] = type(dict(item.ty.params)["contents"]).__name__
    return out


def test_read_results_become_strings_and_writes_stay_lists() -> None:
    original = compile_wat(SOURCE)
    assert read_results(original) == {"[method]input-stream.read": "ListType",
                                      "[method]input-stream.blocking-read": "ListType",
                                      "[method]output-stream.write": "ListType"}
    retyped = rewrite(original)
    assert retyped is not None
    assert read_results(retyped) == {"[method]input-stream.read": "String",
                                     "[method]input-stream.blocking-read": "String",
                                     "[method]output-stream.write": "ListType"}
    assert rewrite(retyped) is None  # nothing left to do
    assert realloc_shrinks(original)


def test_a_result_type_shared_with_another_function_is_left_alone() -> None:
    shared = SOURCE.replace('(param "contents" $bytes) (result $wres)',
                            '(param "contents" $bytes) (result $res)')
    assert shared != SOURCE
    assert rewrite(compile_wat(shared)) is None


def test_a_lowered_read_handed_to_an_export_is_left_alone() -> None:
    exported = SOURCE.replace('  (core instance $i (instantiate $m))',
                              '  (export "leak" (func $read))\n  (core instance $i (instantiate $m))')
    assert exported != SOURCE
    assert rewrite(compile_wat(exported)) is None


def test_an_allocator_that_cannot_shrink_is_detected() -> None:
    refusing = SOURCE.replace("(local.set $p (global.get $top))",
                              "(if (local.get 1) (then unreachable)) (local.set $p (global.get $top))")
    assert refusing != SOURCE
    binary = compile_wat(refusing)
    assert rewrite(binary) is not None  # the shape is fine ...
    assert not realloc_shrinks(binary)  # ... the allocator is not


@pytest.mark.parametrize("data", [b"", b"\0asm\x01\0\0\0", b"\0asm\x0d\0\x01\0\x07\x05\x01", b"garbage"])
def test_anything_else_is_left_alone(data: bytes) -> None:
    assert rewrite(data) is None
    assert not realloc_shrinks(data)


def test_the_real_fixtures_are_retyped_only_where_every_allocator_can_shrink() -> None:
    import subprocess
    import sys

    from support.components import component_path  # built by the project's scripts, cached

    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    c = (ROOT / "tests/fixtures/wasi-http/build/handler.wasm").read_bytes()  # wasi-libc's realloc
    assert rewrite(c) is not None and realloc_shrinks(c)
    # The shape is fine in both, but an allocator they lower reads with refuses to shrink:
    # componentize-py's, and the preview1 adapter's in the JS component. They keep the list path.
    for name in ("python-raw", "js"):
        binary = component_path(name).read_bytes()
        assert rewrite(binary) is not None and not realloc_shrinks(binary), name


def test_an_allocator_that_never_returns_is_stopped_by_the_probe_deadline() -> None:
    """The probe runs guest code at compile time: under an epoch deadline it ends, as ProbeTimeout."""
    source = (ROOT / "tests/fixtures/components-extra/looping-realloc/component.wat").read_text()
    binary = compile_wat(source)
    assert rewrite(binary) is not None  # the probe is reached for this shape
    started = time.monotonic()
    with pytest.raises(ProbeTimeout, match=r"cabi_realloc"):
        realloc_shrinks(binary)
    assert time.monotonic() - started < PROBE_SECONDS + 5


def test_an_allocator_growing_past_the_probe_cap_cannot_shrink() -> None:
    """memory.grow beyond the probe's memory cap fails (-1): this allocator traps, so no rewrite."""
    pages = PROBE_MEMORY // 65536 + 1
    greedy = SOURCE.replace("(local.set $p (global.get $top))",
                            f"(if (i32.lt_s (memory.grow (i32.const {pages})) (i32.const 0)) "
                            "(then unreachable)) (local.set $p (global.get $top))")
    assert greedy != SOURCE
    assert not realloc_shrinks(compile_wat(greedy))
    assert realloc_shrinks(compile_wat(SOURCE))


def test_a_probe_in_its_own_thread_gives_the_same_answers() -> None:
    """cache.py starts the probe before rewriting and takes its answer after."""
    refusing = SOURCE.replace("(local.set $p (global.get $top))",
                              "(if (local.get 1) (then unreachable)) (local.set $p (global.get $top))")
    for source, expected in ((SOURCE, True), (refusing, False)):
        probe = Probe(compile_wat(source))
        assert probe.result() is expected
        probe.close()  # after the answer: harmless
        assert probe.result() is expected
        stopped = Probe(compile_wat(source))
        stopped.stop()  # at once: most likely before it answered
        assert stopped.result() is expected  # then it probes again where it is asked
        stopped.close()
    with pytest.raises(ProbeTimeout, match=r"cabi_realloc"):
        Probe(compile_wat(LOOPING.read_text())).result()


def test_a_probe_whose_answer_is_not_wanted_is_stopped_mid_call() -> None:
    """A form compiled without the answer does not need it: stopping interrupts an allocator that
    loops, rather than letting it spin to the deadline beside the compile."""
    probe = Probe(compile_wat(LOOPING.read_text()))
    time.sleep(0.5)  # compiled and looping by now (a module of a few functions)
    stopped = time.monotonic()
    probe.close()
    assert time.monotonic() - stopped < PROBE_SECONDS / 2  # uninterrupted, it would wait out the 2 s
    with pytest.raises(ProbeTimeout):  # wanted after all: probed again, and it loops again
        probe.result()
