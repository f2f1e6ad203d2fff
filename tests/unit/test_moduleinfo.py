"""Classifying core modules as Spin's componentize_if_necessary does (spin-spec §4.6)."""

from __future__ import annotations

import pytest
import wasmtime

from support.componentize import fixture
from tauon.wasm.moduleinfo import (
    COMMAND,
    LEGACY,
    REACTOR,
    ModuleInfo,
    UnsupportedBindgen,
    classify,
    read_module_info,
)


@pytest.mark.parametrize("version", ["0.5", "0.5.0", "0.16.0", "0.99.3", "0.16.x"])
def test_wit_bindgen_05_to_1_takes_the_reactor_adapter(version: str) -> None:
    info = ModuleInfo(function_exports=["_start"], bindgen_processed_by={"wit-bindgen-rust": version})
    assert classify(info) == REACTOR


@pytest.mark.parametrize("version", ["0.4.0", "0.2.0", "1.0.0", "2.1", "0.16.0.1", "0", "x.y", "0.300.0",
                                     "-1.5"])
def test_other_wit_bindgen_versions_are_refused_with_spins_words(version: str) -> None:
    info = ModuleInfo(bindgen_processed_by={"wit-bindgen-c": version})
    with pytest.raises(UnsupportedBindgen) as caught:
        classify(info)
    assert str(caught.value) == f"cannot adapt modules created with wit-bindgen version {version}"


def test_only_tools_named_wit_bindgen_count() -> None:
    info = ModuleInfo(function_exports=["_start"], bindgen_processed_by={"wit-component": "0.262.0"})
    assert classify(info) == LEGACY  # metadata but no wit-bindgen: probably wit-bindgen, not a command


@pytest.mark.parametrize(("exports", "kind"), [
    (["_start"], COMMAND),
    (["_start", "cabi_realloc"], LEGACY),
    (["_start", "canonical_abi_realloc"], LEGACY),
    (["handle-http-request", "canonical_abi_realloc"], LEGACY),
    ([], LEGACY),
])
def test_without_wit_bindgen_metadata(exports: list[str], kind: str) -> None:
    assert classify(ModuleInfo(function_exports=exports)) == kind


def test_real_modules() -> None:
    reactor = read_module_info(fixture("reactor-http"))
    assert reactor.bindgen_processed_by == {"wit-component": "0.262.0", "wit-bindgen-c": "0.16.0"}
    assert "wasi:http/incoming-handler@0.2.0#handle" in reactor.function_exports
    assert classify(reactor) == REACTOR
    with pytest.raises(UnsupportedBindgen, match=r"0\.4\.0"):
        classify(read_module_info(fixture("reactor-unsupported")))
    wagi = read_module_info(bytes(wasmtime.wat2wasm('(module (func (export "_start")) (memory 1))')))
    assert classify(wagi) == COMMAND


def test_not_a_module() -> None:
    with pytest.raises(ValueError, match="not a readable core wasm module"):
        read_module_info(b"\0asm\x0d\x00\x01\x00")
    with pytest.raises(ValueError):
        read_module_info(b"\0asm\x01\x00\x00\x00\x07\x40")  # a section running past the end
