"""The component parser and instantiation planner of tauon's own runtime, on the real fixtures and on
malformed or unsupported input (which must give UnsupportedComponent, never another exception)."""

from __future__ import annotations

import contextlib

import pytest
import wasmtime
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.components import component_path
from tauon.wasm.canon.types import FuncType, OwnType, ResourceType
from tauon.wasm.runtime.model import UnsupportedComponent
from tauon.wasm.runtime.parse import parse_component
from tauon.wasm.runtime.plan import Bag, Instantiate, Lifted, build_plan

C_BYTES = component_path("c").read_bytes()


def plan_of(data: bytes) -> object:
    return build_plan(parse_component(data))


def test_the_c_fixture_plans_into_core_steps_and_a_lifted_handler() -> None:
    plan = build_plan(parse_component(C_BYTES))
    assert len(plan.modules) == 3  # the main module and wit-component's shim and fixup
    assert sum(isinstance(s, Instantiate) for s in plan.core_instances) == 3
    assert any(isinstance(s, Bag) for s in plan.core_instances)
    handle = plan.export_func("wasi:http/incoming-handler@0.2.0", "handle")
    assert isinstance(handle, Lifted) and handle.opts.memory is None
    # The handler's `own<incoming-request>` is the very resource imported from wasi:http/types: the
    # nested shim component and the outer aliases resolve to one nominal type.
    types = plan.imports["wasi:http/types@0.2.0"]
    request = types["incoming-request"]
    assert isinstance(request, ResourceType) and request.host
    param = handle.type.params[0][1]
    assert isinstance(param, OwnType) and param.resource is request
    # A resource `use`d from another interface is the same type there too.
    assert types["output-stream"] is plan.imports["wasi:io/streams@0.2.0"]["output-stream"]
    lowered = {(lower.host.interface, lower.host.func) for lower in plan.lowers}
    assert ("wasi:http/types@0.2.0", "[static]response-outparam.set") in lowered
    assert isinstance(types["[static]response-outparam.set"].type, FuncType)


@pytest.mark.parametrize("name", ["python-raw", "python-sdk", "js", "wagi-component", "c-spin-http",
                                  "c-sockets"])
def test_every_fixture_plans(name: str) -> None:
    plan = build_plan(parse_component(component_path(name).read_bytes()))
    assert plan.modules and plan.exports


@pytest.mark.parametrize("data, message", [
    (b"", "bad header"),
    (b"\0asm\x01\x00\x00\x00", "bad header"),  # a core module
    (C_BYTES[:8] + b"\x01\xff\xff\xff\xff\x0f", "malformed"),  # a section running past the end
    (C_BYTES[:8] + b"\x63\x00", "unknown section"),
])
def test_malformed_binaries_are_unsupported_components(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedComponent, match=message):
        plan_of(data)


@pytest.mark.parametrize("text, op", [
    ("(component (core func (canon task.return (result u32))))", "task.return"),
    ("(component (type $s (stream u8)) (core func (canon stream.new $s)))", "stream.new"),
    ("(component (core func (canon waitable-set.new)))", "waitable-set.new"),
    ("(component (core func (canon backpressure.inc)))", "backpressure.inc"),
])
def test_async_builtins_are_planned(text: str, op: str) -> None:
    assert [b.op for b in plan_of(wasmtime.wat2wasm(text)).async_builtins] == [op]


@pytest.mark.parametrize("text, feature", [
    ("(component (core func (canon task.cancel)))", "task.cancel"),
    ("(component (core func (canon thread.index)))", "thread.index"),
    ("(component (core func (canon error-context.drop)))", "error-context.drop"),
])
def test_unsupported_async_builtins_are_reported_by_name(text: str, feature: str) -> None:
    with pytest.raises(UnsupportedComponent, match=rf"{feature} \(component-model async"):
        plan_of(wasmtime.wat2wasm(text))


def test_every_truncation_is_an_unsupported_component() -> None:
    for end in range(0, len(C_BYTES), 7):
        try:
            plan_of(C_BYTES[:end])
        except UnsupportedComponent:
            continue
        # A cut at a section boundary is a (smaller) well-formed component: that may plan.


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(8, len(C_BYTES) - 1), st.integers(0, 255)), min_size=1, max_size=8))
def test_corrupted_bytes_never_raise_anything_else(flips: list[tuple[int, int]]) -> None:
    data = bytearray(C_BYTES)
    for at, value in flips:
        data[at] = value
    with contextlib.suppress(UnsupportedComponent):
        plan_of(bytes(data))
