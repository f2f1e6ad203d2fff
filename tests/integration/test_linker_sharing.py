"""Components whose import sections are byte for byte the same share one linker (hostif/linker.py keyed
by wasm/component/importkey.py), and each still serves through it: real C components built by the
project's scripts, compiled by real wasmtime, served through the real executor builder."""

from __future__ import annotations

import gc
import hashlib
import logging
import weakref
from pathlib import Path

import anyio
import pytest

from support.components import component_path
from support.direct import serve_direct
from support.distinct import distinct
from tauon.app.plan import ComponentPlan, Limits
from tauon.executors.base import Executor
from tauon.executors.builder import build_component_executor
from tauon.hostif.linker import LinkedComponent, build_linker
from tauon.wasm.component.cache import compile_component
from tauon.wasm.component.importkey import import_key
from tauon.wasm.engine import WasmEngine

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits(request_timeout=10.0, max_memory=16 * 1024 * 1024, max_request_body=1024 * 1024,
                max_concurrency=2)


def plan_of(path: Path) -> ComponentPlan:
    return ComponentPlan(id="c", wasm_path=str(path),
                         wasm_digest="sha256:" + hashlib.sha256(path.read_bytes()).hexdigest())


def executor(engine: WasmEngine, plan: ComponentPlan) -> Executor:
    return build_component_executor(app_id=f"{Path(plan.wasm_path).stem}.json", component=plan,
                                    engine=engine, limits=LIMITS, limiter=anyio.CapacityLimiter(2),
                                    logger=logging.getLogger("tauon.app.test-linker-sharing"),
                                    trigger_executor="http", wagi_argv="")


def linked_of(built: Executor) -> LinkedComponent:
    linked = built._linked  # type: ignore[attr-defined]
    assert isinstance(linked, LinkedComponent)
    return linked


@pytest.fixture(scope="module")
def engine() -> WasmEngine:
    engine = WasmEngine(ROOT / ".cache" / "test-compiled")  # keyed by digest: safe to keep across runs
    engine.start()
    return engine


def test_apps_built_from_one_sdk_share_a_linker_and_each_serves(engine: WasmEngine, tmp_path: Path) -> None:
    base = component_path("c").read_bytes()
    paths = []
    for name in ("one", "two"):
        path = tmp_path / f"{name}.wasm"
        path.write_bytes(distinct(base, f"test-linker-sharing-{name}"))  # its own digest and compiled code
        paths.append(path)
    other = component_path("c-inline")  # another program: other imports
    assert import_key(paths[0]) == import_key(paths[1]) != import_key(other)

    one, two, third = (executor(engine, plan_of(path)) for path in (*paths, other))
    assert linked_of(one).linker is linked_of(two).linker
    assert linked_of(third).linker is not linked_of(one).linker
    # Each keeps its own component's resource types (the export's `own<incoming-request>` is looked
    # up in them), and both serve.
    assert linked_of(one).resources is not linked_of(two).resources
    ids = [[host_id for _, host_id in linked_of(built).resources.known] for built in (one, two)]
    assert ids[0] == ids[1] and len(ids[0]) >= 5  # wasi:http's fields, requests, responses, streams...
    for built in (one, two):
        status, body = anyio.run(serve_direct, built, "GET", "/")
        assert status == 200, body
        assert body


def test_no_sharing_across_engines_and_none_kept_once_unused(engine: WasmEngine, tmp_path: Path) -> None:
    path = tmp_path / "alone.wasm"
    path.write_bytes(distinct(component_path("c").read_bytes(), "test-linker-sharing-alone"))
    key = import_key(path)
    assert key is not None
    digest = plan_of(path).wasm_digest
    other_engine = WasmEngine(tmp_path / "cache")
    first = build_linker(engine.engine, compile_component(engine, path, digest), import_key=key)
    again = build_linker(engine.engine, compile_component(engine, path, digest), import_key=key)
    elsewhere = build_linker(other_engine.engine, compile_component(other_engine, path, digest),
                             import_key=key)
    assert again.linker is first.linker
    assert elsewhere.linker is not first.linker
    gone = weakref.ref(elsewhere.linker)
    del elsewhere
    gc.collect()
    assert gone() is None  # the shared table holds linkers weakly: unused, it is freed
