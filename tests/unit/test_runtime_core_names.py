"""Renaming a core module's imports and exports (wasm/runtime/core_names.py), checked by compiling the
result with wasmtime and reading its import and export lists back."""

from __future__ import annotations

import pytest
import wasmtime

from tauon.wasm.runtime.core_names import read_imports, rename_exports, rename_imports
from tauon.wasm.runtime.model import UnsupportedComponent

WAT = """
(module
  (type $t (func (param i32) (result i32)))
  (import "env" "f" (func $f (type $t)))
  (import "env" "mem" (memory 1 2))
  (import "GOT.mem" "g" (global $g (mut i32)))
  (import "env" "table" (table 3 funcref))
  (func (export "double") (param i32) (result i32) (i32.add (local.get 0) (call $f (local.get 0))))
  (func (export "unused") (result i32) (global.get $g))
  (global (export "answer") i32 (i32.const 42))
  (start $start)
  (func $start))
"""


ENGINE = wasmtime.Engine()


def _module(data: bytes) -> wasmtime.Module:
    return wasmtime.Module(ENGINE, data)


def test_reads_and_renames_every_import_kind() -> None:
    data = bytes(wasmtime.wat2wasm(WAT))
    assert read_imports(data) == [("env", "f"), ("env", "mem"), ("GOT.mem", "g"), ("env", "table")]
    names = [("$lower", "0"), ("3", "0"), ("3", "1"), ("4", "a-much-longer-name-than-before")]
    renamed = rename_imports(data, names)
    assert read_imports(renamed) == names
    module = _module(renamed)
    assert [(i.module, i.name) for i in module.imports] == names
    assert [type(i.type) for i in module.imports] == [type(i.type) for i in _module(data).imports]


def test_keeps_only_used_exports_under_new_names() -> None:
    data = bytes(wasmtime.wat2wasm(WAT))
    module = _module(rename_exports(data, {"double": "0", "answer": "1"}))
    assert sorted(e.name for e in module.exports) == ["0", "1"]
    assert isinstance(module.exports[0].type, wasmtime.FuncType)
    with pytest.raises(UnsupportedComponent, match="lacks an export"):
        rename_exports(data, {"missing": "0"})


def test_renamed_module_still_runs() -> None:
    data = rename_exports(rename_imports(bytes(wasmtime.wat2wasm(WAT)),
                                         [("h", "f"), ("h", "m"), ("h", "g"), ("h", "t")]), {"double": "d"})
    store = wasmtime.Store(ENGINE)
    ty = wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()])
    imports = [wasmtime.Func(store, ty, lambda x: x * 10),
               wasmtime.Memory(store, wasmtime.MemoryType(wasmtime.Limits(1, 2))),
               wasmtime.Global(store, wasmtime.GlobalType(wasmtime.ValType.i32(), True), wasmtime.Val.i32(0)),
               wasmtime.Table(store, wasmtime.TableType(wasmtime.ValType.funcref(), wasmtime.Limits(3, None)),
                              None)]
    instance = wasmtime.Instance(store, _module(data), imports)
    double = instance.exports(store)["d"]
    assert isinstance(double, wasmtime.Func)
    assert double(store, 4) == 44


def test_module_without_imports_or_exports() -> None:
    data = bytes(wasmtime.wat2wasm("(module)"))
    assert read_imports(data) == []
    assert rename_imports(data, []) == data
    assert rename_exports(data, {}) == data


@pytest.mark.parametrize("cut", [9, 12, 20, 40])
def test_truncated_module_is_unsupported(cut: int) -> None:
    data = bytes(wasmtime.wat2wasm(WAT))[:cut]
    with pytest.raises(UnsupportedComponent):
        rename_exports(rename_imports(data, read_imports(data)), {"double": "0"})
