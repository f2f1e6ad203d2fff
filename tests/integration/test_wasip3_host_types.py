"""The element types of the streams and futures tauon's p3 host functions create are exactly the ones
a real Spin 4 guest declares (the runtime checks them when it lowers a stream or future into the
guest and traps on a difference): read from the imports of the spin-sdk 5.0.0 `python-p3` fixture,
at both 0.3 versions it imports.
"""

from __future__ import annotations

from typing import Any

import pytest

from support.components import extra_component_path
from tauon.hostif import p3_filesystem, p3_stdio, spin_kv_p3, spin_sqlite_p3
from tauon.hostif.p3_streams import BYTES, STRING, U8
from tauon.wasm.canon.types import FuncType, ResultType, TupleType
from tauon.wasm.runtime.load import plan_component
from tauon.wasm.runtime.plan import HostFunc

pytestmark = pytest.mark.integration

VERSIONS = ("0.3.0", "0.3.0-rc-2026-03-15")


@pytest.fixture(scope="module")
def imports() -> dict[str, dict[str, Any]]:
    return plan_component(extra_component_path("python-p3")).imports


def func(imports: dict[str, dict[str, Any]], interface: str, name: str) -> FuncType:
    found = imports[interface][name]
    assert isinstance(found, HostFunc)
    return found.type


def elements(t: Any) -> list[Any]:
    assert isinstance(t, TupleType)
    return [e.element for e in t.elements]


def test_key_value_keys_stream_and_outcome_future(imports: dict[str, dict[str, Any]]) -> None:
    t = func(imports, "spin:key-value/key-value@3.0.0", "[method]store.get-keys")
    assert t.is_async
    assert elements(t.result) == [STRING, spin_kv_p3.KEYS_DONE]


def test_sqlite_rows_stream_and_outcome_future(imports: dict[str, dict[str, Any]]) -> None:
    t = func(imports, "spin:sqlite/sqlite@3.1.0", "[method]connection.execute-async")
    assert isinstance(t.result, ResultType) and t.result.err == spin_sqlite_p3.ERROR
    assert elements(t.result.ok)[1:] == [spin_sqlite_p3.ROW, spin_sqlite_p3.ROWS_DONE]
    params = dict(t.params)
    assert params["parameters"].element == spin_sqlite_p3.VALUE


@pytest.mark.parametrize("version", VERSIONS)
def test_stdio_streams_and_futures(imports: dict[str, dict[str, Any]], version: str) -> None:
    out = func(imports, f"wasi:cli/stdout@{version}", "write-via-stream")
    assert out.result.element == p3_stdio.DONE and out.params[0][1].element == U8
    err = func(imports, f"wasi:cli/stderr@{version}", "write-via-stream")
    assert err.result.element == p3_stdio.DONE
    stdin = func(imports, f"wasi:cli/stdin@{version}", "read-via-stream")
    assert elements(stdin.result) == [U8, p3_stdio.DONE]


@pytest.mark.parametrize("version", VERSIONS)
def test_filesystem_streams_and_futures(imports: dict[str, dict[str, Any]], version: str) -> None:
    types = f"wasi:filesystem/types@{version}"
    assert elements(func(imports, types, "[method]descriptor.read-via-stream").result) == [
        U8, p3_filesystem.DONE]
    assert elements(func(imports, types, "[method]descriptor.read-directory").result) == [
        p3_filesystem.DIRECTORY_ENTRY, p3_filesystem.DONE]
    for name in ("write-via-stream", "append-via-stream"):
        assert func(imports, types, f"[method]descriptor.{name}").result.element == p3_filesystem.DONE
    assert func(imports, types, "[method]descriptor.get-type").result.ok == p3_filesystem.DESCRIPTOR_TYPE
    assert func(imports, f"wasi:random/random@{version}", "get-random-bytes").result == BYTES
