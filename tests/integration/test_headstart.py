"""A compile child started while a pull downloads (wasm/headstart.py): the next compile takes it
instead of starting one, one nobody takes is stopped when its deploy ends, and at most one waits at a
time. Real children of this test process, compiling a real module."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import anyio
import pytest
import wasmtime
from test_compile_sandbox import alive, compile_children

from tauon.app.plan import ComponentPlan
from tauon.wasm.compile_batch import compile_batched
from tauon.wasm.compile_limits import CompileLimits
from tauon.wasm.engine import WasmEngine
from tauon.wasm.headstart import head_start

pytestmark = pytest.mark.integration

LIMITS = CompileLimits(memory_mib=512, timeout=60)


async def children(count: int) -> list[int]:
    """This process's live compile children, once there are `count` of them."""
    deadline = time.monotonic() + 30
    while len(found := compile_children(os.getpid())) != count:
        assert time.monotonic() < deadline, f"{found} compile children, expected {count}"
        await anyio.sleep(0.02)
    return found


def test_the_next_compile_takes_the_child_started_ahead(tmp_path: Path) -> None:
    wasm = tmp_path / "answer.wasm"
    wasm.write_bytes(wasmtime.wat2wasm('(module (func (export "answer") (result i32) i32.const 42))'))
    digest = "sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest()
    engine = WasmEngine(tmp_path / "cache", sandbox=LIMITS)
    component = ComponentPlan(id="answer", wasm_path=str(wasm), wasm_digest=digest)

    async def deploy() -> None:
        async with head_start("answer.json") as want:
            await anyio.to_thread.run_sync(want)  # as the pull's progress sink calls it
            await anyio.to_thread.run_sync(want)  # once per deploy
            [ahead] = await children(1)
            await compile_batched(engine, LIMITS, [component], "answer.json", anyio.CapacityLimiter(1), 0)
            # Still inside the deploy: an untaken child would be waiting yet. This one compiled and went.
            assert not alive(ahead)
            assert compile_children(os.getpid()) == []

    anyio.run(deploy)
    assert engine.has_compiled(digest)


def test_a_child_nobody_takes_is_stopped_when_its_deploy_ends(tmp_path: Path) -> None:
    async def deploy() -> int:
        async with head_start("cached.json") as want:
            await anyio.to_thread.run_sync(want)
            [ahead] = await children(1)
            await anyio.sleep(0.5)  # it waits for a request that never comes
            assert alive(ahead)
        return ahead

    ahead = anyio.run(deploy)
    assert not alive(ahead) and compile_children(os.getpid()) == []


def test_one_child_waits_at_a_time_and_goes_to_a_deploy_still_wanting_one(tmp_path: Path) -> None:
    """Two pulls download at once: one child. The deploy that started it ends first (its compile went
    to another child): the other deploy, still wanting one, gets it; it is stopped when that ends."""

    async def deploys() -> None:
        a = head_start("a.json")
        want_a = await a.__aenter__()
        async with head_start("b.json") as want_b:
            await anyio.to_thread.run_sync(want_a)
            await anyio.to_thread.run_sync(want_b)
            [ahead] = await children(1)
            await anyio.sleep(0.5)
            assert compile_children(os.getpid()) == [ahead]
            await a.__aexit__(None, None, None)
            await anyio.sleep(0.2)
            assert compile_children(os.getpid()) == [ahead]  # handed to b, not stopped
        await children(0)
        await anyio.to_thread.run_sync(want_a)  # a pull thread abandoned after its deploy ended
        await anyio.sleep(0.5)
        assert compile_children(os.getpid()) == []

    anyio.run(deploys)


def test_a_deploy_that_never_wanted_one_is_not_handed_it(tmp_path: Path) -> None:
    """A deploy whose pull downloaded nothing (its blobs cached) needs no child: it is stopped."""

    async def deploys() -> None:
        async with head_start("cached.json"):
            async with head_start("new.json") as want:
                await anyio.to_thread.run_sync(want)
                await children(1)
            await children(0)

    anyio.run(deploys)
