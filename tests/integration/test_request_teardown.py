"""The end of a request: it leaves no reference cycles behind (everything it allocated is freed by
reference counting, so the cyclic collector has nothing to find and its passes stay rare and short;
src/tauon/gctune.py says why that matters for the latency tail), and a big guest's response goes out
before its instance is freed, not after.

Real parts: the C and JS fixtures built into a generation by the real `build_generation`, their
requests run through the real switchboard, executor, guest threads and guest. Only the HTTP server is
left out (the ASGI calls are made directly): uvicorn's own objects are not what is under test.

The no-cycles test runs on both component runtimes (`component_runtime`): tauon's own runtime keeps
per-instance state in Python (handle tables, call contexts, wrapped externs), where a cycle would keep
a Store, and so a pool slot, alive until the cyclic collector runs.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
import wasmtime

from support.components import component_path
from tauon.app.plan import ComponentPlan, GenerationPlan, Limits, TriggerPlan
from tauon.executors.wasi_http import WasiHttpExecutor
from tauon.server.generation import build_generation
from tauon.server.switchboard import Switchboard
from tauon.wasm.engine import WasmEngine

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits(request_timeout=5.0, max_memory=128 * 1024 * 1024, max_request_body=1024 * 1024,
                max_concurrency=4)


@pytest.fixture(scope="module")
def engine() -> Iterator[WasmEngine]:
    engine = WasmEngine(ROOT / ".cache" / "test-compiled")  # keyed by digest: safe to keep across runs
    engine.start()
    yield engine
    engine.stop()


def plan_for(name: str, runtime: str = "wasmtime") -> GenerationPlan:
    wasm = component_path(name)
    digest = "sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest()
    comp = ComponentPlan(id=name, wasm_path=str(wasm), wasm_digest=digest)
    return GenerationPlan(
        app_id=f"{name}.json", reference=f"localhost/{name}:v1", digest="sha256:" + "1" * 64, name=name,
        version="1", triggers=(TriggerPlan(id="t", route="/...", component=name, executor="http"),),
        components={name: comp}, limits=LIMITS, component_runtime=runtime)


def scope_for(path: str) -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": [(b"host", b"127.0.0.1:3000"), (b"user-agent", b"test")], "scheme": "http",
            "http_version": "1.1", "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 3000)}


async def serve_requests(board: Switchboard, path: str, count: int) -> list[int]:
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(count):
        await board(scope_for(path), receive, send)
    return statuses


REQUESTS = 20


def cyclic_garbage(name: str, path: str, engine: WasmEngine, runtime: str) -> collections.Counter[str]:
    """The types of what the cyclic collector finds after REQUESTS requests (after 5 to warm up)."""

    async def main() -> collections.Counter[str]:
        generation = await build_generation(plan_for(name, runtime), 1, engine, anyio.CapacityLimiter(1))
        runners = {getattr(e, "_runner", None) for e in generation.executors.values()}
        assert {r.name for r in runners if r is not None} == {runtime}  # no silent fallback
        board = Switchboard(f"{name}.json", generation)
        try:
            assert await serve_requests(board, path, 5) == [200] * 5
            gc.collect()
            # Only what these requests make: objects older than the window (an earlier test's, freed
            # in it when an idle guest thread exits and drops its thread-locals) are not looked at.
            gc.freeze()
            gc.disable()
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                assert await serve_requests(board, path, REQUESTS) == [200] * REQUESTS
                await asyncio.sleep(0.05)  # guest threads hand their last results over
                gc.collect()
                return collections.Counter(type(o).__qualname__ for o in gc.garbage)
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
                gc.unfreeze()
                gc.enable()
        finally:
            generation.close()

    return asyncio.run(main())


@pytest.mark.parametrize(("name", "path"), [("c", "/"), ("js", "/echo")])
def test_served_requests_leave_no_cycles(name: str, path: str, engine: WasmEngine,
                                         component_runtime: str) -> None:
    garbage = cyclic_garbage(name, path, engine, component_runtime)
    # A one-off (a ctypes array type made on first use) may show; anything made per request would
    # show at least REQUESTS times (before the fix: ~22 objects per request, the HostState cycle and
    # each Store's context pointer).
    assert sum(garbage.values()) < REQUESTS, (
        f"requests to the {name} fixture left reference cycles: {garbage.most_common(12)}")


def test_a_big_guests_response_is_sent_before_its_store_is_freed(engine: WasmEngine,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The JS fixture's Store takes about a millisecond to free (its memory is reset): on a guest
    thread, the final body message must reach the server before the request's Store is freed. Before
    the change the loop was woken only once the thread had freed it, so this never happened. (A run
    on the event loop frees its Store before it sends: see executors/inline.py.)"""
    stores = [0, 0]  # created, freed
    real_init, real_delete = wasmtime.Store.__init__, wasmtime.Store._delete

    def init(self: wasmtime.Store, *args: Any, **kwargs: Any) -> None:
        stores[0] += 1
        real_init(self, *args, **kwargs)

    def delete(self: wasmtime.Store, ptr: Any) -> None:
        real_delete(self, ptr)
        stores[1] += 1

    monkeypatch.setattr(wasmtime.Store, "__init__", init)
    monkeypatch.setattr(wasmtime.Store, "_delete", delete)
    early: list[bool] = []

    async def main() -> None:
        generation = await build_generation(plan_for("js"), 1, engine, anyio.CapacityLimiter(1))
        board = Switchboard("js.json", generation)
        match = generation.router.match("/echo")
        assert match is not None and isinstance(match.target.executor, WasiHttpExecutor)
        executor = match.target.executor
        executor.inline.eligible = False  # every request on a guest thread

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body"):
                early.append(stores[0] > stores[1])  # this request's Store still there

        try:
            for _ in range(30):  # the first few teach the executor how long its teardown takes
                await board(scope_for("/echo"), receive, send)
        finally:
            generation.close()
        assert executor.inline_runs == 0

    asyncio.run(main())
    assert len(early) == 30
    # Measured at load average ~20: 17-19 of the last 20 with the change (a loaded machine may let a
    # teardown win the race), 2 without it (only when an epoch tick happened to flush the response).
    assert sum(early[10:]) >= 12, f"responses sent after the store was freed: {early}"
