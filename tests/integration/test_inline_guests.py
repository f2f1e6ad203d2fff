"""Small wasi:http guests run on the event loop (tauon.executors.inline), through the real switchboard
and executor with real components: the 7 KB C fixture; c-inline, whose routes make a run on the loop
impossible to finish there (a timer wait, 300 ms of computation, a 2 MiB body); and python-raw, whose
outbound route calls outside the interfaces safe on the loop (against a real loopback upstream).
Responses and log lines are the same as on guest threads, and a run that cannot finish on the loop
never stalls it and is never seen: the request is served again on a thread."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from support.components import component_path
from support.servers.upstream import CountingUpstream, counting_upstream
from tauon.app.plan import ComponentPlan, GenerationPlan, Limits, TriggerPlan
from tauon.executors.inline import BACKOFF, WARMUP
from tauon.executors.wasi_http import WasiHttpExecutor
from tauon.model.component_meta import ComponentMeta
from tauon.server.generation import Generation, build_generation
from tauon.server.switchboard import Switchboard
from tauon.wasm.engine import WasmEngine

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LIMITS = Limits(request_timeout=10.0, max_memory=128 * 1024 * 1024, max_request_body=1024 * 1024,
                max_concurrency=8)


@pytest.fixture(scope="module")
def engine() -> Iterator[WasmEngine]:
    engine = WasmEngine(ROOT / ".cache" / "test-compiled")  # keyed by digest: safe to keep across runs
    engine.start()
    yield engine
    engine.stop()


def plan_for(name: str, metadata: ComponentMeta | None = None) -> GenerationPlan:
    wasm = component_path(name)
    digest = "sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest()
    return GenerationPlan(
        app_id=f"{name}.json", reference=f"localhost/{name}:v1", digest="sha256:" + "2" * 64, name=name,
        version="1", triggers=(TriggerPlan(id="t", route="/...", component=name, executor="http"),),
        components={name: ComponentPlan(id=name, wasm_path=str(wasm), wasm_digest=digest,
                                        metadata=metadata or ComponentMeta())}, limits=LIMITS)


async def request(board: Switchboard, path: str) -> tuple[int, tuple[tuple[bytes, bytes], ...], bytes]:
    """One GET through the switchboard: (status, headers, body)."""
    path, _, query = path.partition("?")
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": query.encode(),
             "headers": [(b"host", b"127.0.0.1:3000")], "scheme": "http", "http_version": "1.1",
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 3000)}
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await board(scope, receive, send)
    start, *bodies = messages
    return start["status"], tuple(start["headers"]), b"".join(m.get("body", b"") for m in bodies)


def executor_of(generation: Generation) -> WasiHttpExecutor:
    match = generation.router.match("/")
    assert match is not None
    executor = match.target.executor
    assert isinstance(executor, WasiHttpExecutor)
    return executor


def serve(name: str, engine: WasmEngine, scenario: Any, metadata: ComponentMeta | None = None) -> Any:
    async def main() -> Any:
        generation = await build_generation(plan_for(name, metadata), 1, engine, anyio.CapacityLimiter(1))
        try:
            return await scenario(Switchboard(f"{name}.json", generation), executor_of(generation))
        finally:
            generation.close()

    return asyncio.run(main())


def test_the_c_fixture_runs_on_the_loop_with_the_same_responses(engine: WasmEngine) -> None:
    async def scenario(board: Switchboard, executor: WasiHttpExecutor) -> None:
        on_threads = [await request(board, "/echo-path/a") for _ in range(WARMUP)]
        assert executor.inline_runs == 0
        on_loop = [await request(board, "/echo-path/a") for _ in range(20)]
        assert executor.inline_runs == 20
        # status, headers (names, order, values) and body alike
        assert set(on_loop) == set(on_threads) == {
            (200, ((b"content-type", b"text/plain"), (b"content-length", b"12")), b"/echo-path/a")}

    serve("c", engine, scenario)


@pytest.fixture
def upstream() -> Iterator[CountingUpstream]:
    with counting_upstream() as server:
        yield server


def test_a_component_importing_outbound_interfaces_runs_on_the_loop_until_it_calls_one(
        engine: WasmEngine, upstream: CountingUpstream) -> None:
    """python-raw imports outbound HTTP, files and sockets (as SDK components do) but /echo calls
    none of them: it runs on the loop. /outbound's call to outgoing-handler abandons its run on the
    loop before anything is sent, and the request is served on a thread: the upstream sees each
    request once."""
    url = f"http://127.0.0.1:{upstream.port}"

    async def scenario(board: Switchboard, executor: WasiHttpExecutor) -> None:
        on_threads = [await request(board, "/echo") for _ in range(WARMUP)]
        assert executor.inline_runs == 0
        on_loop = [await request(board, "/echo") for _ in range(4)]
        assert executor.inline_runs == 4
        assert set(on_loop) == set(on_threads) and on_loop[0][0] == 200
        status, _, body = await request(board, f"/outbound?url={url}/a")
        assert (status, body, upstream.requests) == (200, b"upstream saw /a", 1)
        assert executor.inline.backoff == BACKOFF and executor.inline_runs == 4  # abandoned
        for n in range(2, 5):  # the next ones go straight to threads
            assert (await request(board, f"/outbound?url={url}/a"))[2] == b"upstream saw /a"
            assert upstream.requests == n
        assert executor.inline_runs == 4

    serve("python-raw", engine, scenario, ComponentMeta(allowed_outbound_hosts=(url,)))


def guest_lines(caplog: pytest.LogCaptureFixture, path: str) -> int:
    return sum(1 for r in caplog.records if r.getMessage().endswith(f"stdout: c-inline {path}"))


@pytest.mark.parametrize(("path", "body"),
                         [("/sleep", b"slept"), ("/spin", b"spun"), ("/big", b"x" * (2 << 20))])
def test_a_run_that_cannot_finish_on_the_loop_is_served_on_a_thread(
        path: str, body: bytes, engine: WasmEngine, caplog: pytest.LogCaptureFixture) -> None:
    """The guest logs one line per request: held while it runs on the loop, dropped with an abandoned
    run, so each request's line appears once. The loop keeps turning meanwhile: a run on the loop is
    abandoned at its first wait or once it has computed past its deadline (20-30 ms), never running
    its 300 ms there."""
    caplog.set_level(logging.INFO, logger="tauon.app")

    async def scenario(board: Switchboard, executor: WasiHttpExecutor) -> None:
        for _ in range(WARMUP + 2):
            assert await request(board, "/hello") == (200, (), b"hello")
        assert executor.inline_runs == 2
        assert guest_lines(caplog, "/hello") == WARMUP + 2
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.001)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        watch = asyncio.create_task(ticker())
        try:
            await asyncio.sleep(0.01)
            status, _, got = await request(board, path)
        finally:
            watch.cancel()
        assert (status, got) == (200, body)
        assert guest_lines(caplog, path) == 1
        assert executor.inline.backoff == BACKOFF  # abandoned: the next requests run on threads
        assert executor.inline_runs == 2
        if path == "/spin":  # 300 ms of guest computation, none of it on the loop
            assert max(gaps) < 0.15, f"the event loop stalled for {max(gaps):.3f}s"
        assert await request(board, "/hello") == (200, (), b"hello")
        assert executor.inline_runs == 2

    serve("c-inline", engine, scenario)


def test_at_the_apps_concurrency_limit_requests_wait_their_turn_and_still_run_on_the_loop(
        engine: WasmEngine) -> None:
    """Sent to threads instead, they would hold places in the limit while queuing for a run slot, and
    under steady load the limit stayed full of them: every later request went to threads too."""
    async def scenario(board: Switchboard, executor: WasiHttpExecutor) -> None:
        for _ in range(WARMUP):
            await request(board, "/echo-path/a")
        limiter = executor._limiter
        holders = [object() for _ in range(int(limiter.total_tokens))]
        for holder in holders:  # the app is at its limit
            limiter.acquire_on_behalf_of_nowait(holder)
        results: list[int] = []

        async def one() -> None:
            results.append((await request(board, "/echo-path/b"))[0])

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(one)
            await anyio.sleep(0.2)
            assert results == [] and executor.inline_runs == 0  # waiting for a place, not on threads
            for holder in holders:
                limiter.release_on_behalf_of(holder)
        assert results == [200] * 4 and executor.inline_runs == 4

    serve("c", engine, scenario)
