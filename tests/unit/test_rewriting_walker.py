"""rewriting/walker.py and encode.py: the one walk over a component's sections and index spaces reads
every byte of real components (re-encoding the entries it read gives the component back), numbers
each definition as the binary's own references do, and sees the imports and exports wasmtime sees."""

from __future__ import annotations

import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest
import wasmtime
from wasmtime.component import Component

from tauon.hostif import io
from tauon.wasm.component.rewriting.binfmt import HEADER, Canon, Section, Sort
from tauon.wasm.component.rewriting.contract import (
    BYTES_IMPORT,
    READ_FUNCS,
    RETYPED_READS,
    WRITE_FUNCS,
    ascii_read,
    latin1_bytes,
)
from tauon.wasm.component.rewriting.encode import leb, name, section
from tauon.wasm.component.rewriting.reader import Reader, Unsupported
from tauon.wasm.component.rewriting.walker import (
    Alias,
    CanonFunc,
    CoreInstance,
    Export,
    Import,
    Walk,
    walk,
)

ROOT = Path(__file__).resolve().parents[2]


@cache
def fixture_components() -> dict[str, bytes]:
    """Every component fixture the project builds (cached by its scripts), and the rewrite WAT."""
    from support.components import COMPONENT_NAMES, component_path

    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    found = {"wasi-http": (ROOT / "tests/fixtures/wasi-http/build/handler.wasm").read_bytes(),
             "streams.wat": bytes(wasmtime.wat2wasm(
                 (ROOT / "tests/fixtures/rewrite/streams.wat").read_text()))}
    for fixture in COMPONENT_NAMES:
        binary = component_path(fixture).read_bytes()
        if binary.startswith(HEADER):  # spin-legacy and redis-legacy are core modules
            found[fixture] = binary
    return found


def reencode(w: Walk) -> bytes:
    """The component rebuilt from what the walk read: each section from its entries' bytes alone."""
    out = bytearray(HEADER)
    for span, ranges in w.entries:
        if ranges:
            body = leb(len(ranges)) + b"".join(w.data[start:end] for start, end in ranges)
        else:
            body = w.data[span.start:span.end]
        out += bytes([span.id]) + leb(len(body)) + body
    return bytes(out)


def test_walking_and_reencoding_every_fixture_component_gives_it_back_byte_for_byte() -> None:
    components = fixture_components()
    assert {"wasi-http", "python-sdk", "js", "c", "c-sockets"} <= set(components)
    for fixture, data in components.items():
        w = walk(data)
        assert list(w.items()), fixture
        read = {span.id for span, ranges in w.entries if ranges}
        assert {Section.IMPORT, Section.CANON, Section.ALIAS} <= read, fixture
        assert reencode(w) == data, fixture


@pytest.mark.parametrize("fixture", ["wasi-http", "streams.wat"])  # small enough to compile here
def test_the_walk_sees_the_imports_and_exports_wasmtime_sees(fixture: str) -> None:
    engine = wasmtime.Engine()
    data = fixture_components()[fixture]
    items = list(walk(data).items())
    ty = Component(engine, data).type
    assert {i.name for i in items if isinstance(i, Import)} == set(ty.imports(engine))
    assert {e.name for e in items if isinstance(e, Export)} == set(ty.exports(engine))


COMPONENT = """
(component
  (type $t (func (param "x" u32)))
  (import "a" (func $a (type $t)))
  (import "i" (instance $i (export "f" (func (param "x" u32))) (export "g" (func))))
  (alias export $i "f" (func $f))
  (alias export $i "g" (func $g))
  (core module $m
    (import "" "f" (func (param i32)))
    (func (export "x") (param i32))
    (memory (export "memory") 1))
  (core func $lf (canon lower (func $f)))
  (core func $lg (canon lower (func $g)))
  (core instance $args (export "f" (func $lf)))
  (core instance $inst (instantiate $m (with "" (instance $args))))
  (func $lifted (type $t) (canon lift (core func $inst "x")))
  (export "out" (func $lifted))
  (export "again" (func $a))
)
"""


def test_indices_are_those_the_binary_refers_to() -> None:
    items = list(walk(bytes(wasmtime.wat2wasm(COMPONENT))).items())
    aliases = {i.alias.name: i.index for i in items if isinstance(i, Alias) and i.alias.sort == Sort.FUNC}
    assert aliases == {"f": 1, "g": 2}  # after the imported func 0
    lowers = [i for i in items if isinstance(i, CanonFunc) and i.canon.op == Canon.LOWER]
    assert [(low.index, low.canon.func) for low in lowers] == [(0, 1), (1, 2)]  # core funcs 0, 1
    core_x = next(i for i in items if isinstance(i, Alias) and i.alias.sort == Sort.CORE_FUNC)
    assert core_x.index == 2  # aliased for the lift, after the two lowerings
    lift = next(i for i in items if isinstance(i, CanonFunc) and i.canon.op == Canon.LIFT)
    assert (lift.index, lift.canon.func) == (3, core_x.index)
    exports = {e.name: (e.index, e.target) for e in items if isinstance(e, Export)}
    assert exports == {"out": (4, lift.index), "again": (5, 0)}  # an export is a new index too
    instances = [i for i in items if isinstance(i, CoreInstance)]
    assert [(i.index, i.module) for i in instances] == [(0, None), (1, 0)]
    assert instances[0].exports == {"f": (Sort.CORE_FUNC, 0)} and instances[1].args == {"": 0}


def test_anything_but_a_component_is_unsupported() -> None:
    with pytest.raises(Unsupported):
        list(walk(b"\0asm\x01\x00\x00\x00").items())
    with pytest.raises(Unsupported):
        list(walk(HEADER + bytes([12, 0])).items())  # no such section


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**32 - 1])
def test_leb_reads_back(value: int) -> None:
    assert Reader(leb(value)).u32() == value


def test_a_section_is_its_id_size_and_counted_entries() -> None:
    body = leb(2) + name("a") + name("bc")
    assert section(Section.ALIAS, [name("a"), name("bc")]) == bytes([6]) + leb(len(body)) + body


def test_the_host_defines_the_routed_functions_the_contract_names() -> None:
    routed = next(iface for iface in io.INTERFACES if iface.name == BYTES_IMPORT)
    assert set(routed.funcs) == {*WRITE_FUNCS, *READ_FUNCS, *(ascii_read(read) for read in READ_FUNCS)}


def test_latin1_bytes_covers_the_routed_import_and_the_retyped_reads_only() -> None:
    assert all(latin1_bytes(BYTES_IMPORT, f) for f in WRITE_FUNCS)
    assert all(latin1_bytes("wasi:io/streams@0.2.3", f) for f in RETYPED_READS)
    assert not latin1_bytes("wasi:io/streams@0.2.3", WRITE_FUNCS[0])
    assert not latin1_bytes("wasi:filesystem/types@0.2.3", READ_FUNCS[0])
