"""SpinLegacyExecutor on a hand-written Spin 1.x module, behind the real switchboard and uvicorn listener.

The module (tests/fixtures/legacy/spin-legacy-app.wat) echoes the request, keeps a counter in the
default key-value store, reads config keys and runs SQL; requests go over 127.0.0.1 with httpx.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
import struct
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import pytest
import wasmtime

from tauon.app.lockparts import parse_component_meta
from tauon.app.plan import ComponentPlan, GenerationPlan, Limits, TriggerPlan
from tauon.app.routes import Router
from tauon.errors import LoadError
from tauon.executors.base import ExecutorSetup
from tauon.executors.spin_legacy import SpinLegacyExecutor, is_legacy_spin_module
from tauon.model.address import Address
from tauon.server.generation import Generation, Target
from tauon.server.listener import Listener
from tauon.server.switchboard import Switchboard
from tauon.services import AppServices
from tauon.wasm.engine import WasmEngine

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
FIXTURE = Path(__file__).parent.parent / "fixtures" / "legacy" / "spin-legacy-app.wat"
LOGGER = "tauon.app.legacy-test.json"
SECRET = "tok-3f9a-secret"
LIMITS = Limits(request_timeout=1.0, max_memory=16 * 1024 * 1024, max_request_body=4096, max_concurrency=4)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WasmEngine]:
    engine = WasmEngine(tmp_path_factory.mktemp("compiled"))
    engine.start()
    yield engine
    engine.stop()


def build_wasm(tmp_path: Path, edit: Callable[[str], str] = lambda text: text) -> Path:
    path = tmp_path / "app.wasm"
    path.write_bytes(wasmtime.wat2wasm(edit(FIXTURE.read_text())))
    return path


def make_plan(wasm: Path, state_dir: Path | None, *, stores: list[str] | None = None) -> GenerationPlan:
    component = ComponentPlan(
        id="legacy",
        wasm_path=str(wasm),
        wasm_digest=f"sha256:test-{wasm.stat().st_mtime_ns}-{wasm.stat().st_size}",
        env={"GREETING": "hi"},
        config={"message": "{{ greeting }}, world", "token": "{{ api_token }}", "missing": "{{ unset }}"},
        metadata=parse_component_meta({
            "key_value_stores": ["default"] if stores is None else stores,
            "databases": ["default"],
            "allowed_outbound_hosts": [],
        }, "metadata"),
    )
    return GenerationPlan(
        app_id="legacy-test.json",
        reference="localhost/legacy:v1",
        digest="sha256:" + "0" * 64,
        name="legacy",
        version="1.0.0",
        triggers=(TriggerPlan(id="t", route="/...", component="legacy"),),
        components={"legacy": component},
        limits=LIMITS,
        state_dir=str(state_dir) if state_dir is not None else None,
        variables={"api_token": SECRET},
        app_variables={
            "greeting": {"default": "hello", "secret": False},
            "api_token": {"default": None, "secret": True},
            "unset": {"default": "", "secret": False},
        },
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(engine: WasmEngine, plan: GenerationPlan) -> AsyncIterator[str]:
    """Services + executor + generation behind a real listener; yields the base URL."""
    services = AppServices.open(plan, {"SPIN_VARIABLE_GREETING": "bonjour"})
    component = plan.components["legacy"]
    module = engine.compile_module(Path(component.wasm_path), component.wasm_digest)
    assert is_legacy_spin_module(module)
    executor = SpinLegacyExecutor(
        ExecutorSetup(app_id=plan.app_id, component_id=component.id, engine=engine, limits=plan.limits,
                      limiter=anyio.CapacityLimiter(plan.limits.max_concurrency),
                      logger=logging.getLogger(LOGGER)),
        component=component, module=module, services=services,
    )
    trigger = plan.triggers[0]
    router = Router.build([("/...", Target(trigger, executor, None))])
    generation = Generation(plan, 1, router, {"legacy": executor})
    port = free_port()
    listener = Listener(Address("127.0.0.1", port), Switchboard(plan.app_id, generation), owner=plan.app_id,
                        drain_timeout=1)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(listener.run)
            try:
                yield f"http://127.0.0.1:{port}"
            finally:
                await listener.stop()
    finally:
        generation.close()
        services.close()


async def test_echo_sees_method_uri_headers_and_body(engine: WasmEngine, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    async with serving(engine, make_plan(build_wasm(tmp_path), None)) as url, httpx.AsyncClient() as http:
        with caplog.at_level(logging.INFO, logger=LOGGER):
            response = await http.put(f"{url}/echo/a%20b?x=1&y=2", content=b"payload\x00bytes",
                                      headers={"x-custom": "yes"})
        assert response.status_code == 200
        # Duplicate headers collapse (last wins); like hyper: date and content-length, no server header.
        assert response.headers.get_list("x-dup") == ["2"]
        assert sorted(response.headers) == ["content-length", "content-type", "date", "x-dup"]
        text = response.content.decode()
        lines = text.split("\n")
        assert lines[0] == "method=2"  # put
        assert lines[1] == "uri=/echo/a%20b?x=1&y=2"  # path and query only
        headers = dict(line.split(": ", 1) for line in lines[2:] if ": " in line)
        assert headers["host"] == url.removeprefix("http://")
        assert headers["x-custom"] == "yes"
        assert headers["spin-full-url"] == f"{url}/echo/a%20b?x=1&y=2"
        assert headers["spin-path-info"] == "/echo/a%20b"
        assert headers["spin-matched-route"] == "/..."
        assert headers["spin-component-route"] == ""
        assert headers["spin-base-path"] == "/"
        assert headers["spin-client-addr"].startswith("127.0.0.1:")
        assert text.endswith("body=payload\x00bytes")
        assert "legacy-test.json/legacy stdout: handled /echo/a%20b?x=1&y=2" in caplog.text

        empty = await http.get(f"{url}/")
        assert empty.text.startswith("method=0\nuri=/\n") and empty.text.endswith("body=")
        for method, index in (("POST", 1), ("DELETE", 3), ("PATCH", 4), ("OPTIONS", 6)):
            answer = await http.request(method, f"{url}/m")
            assert answer.text.startswith(f"method={index}\n")
        head = await http.head(f"{url}/m")
        assert head.status_code == 200 and head.content == b""
        assert (await http.request("TRACE", f"{url}/m")).status_code == 405


async def test_counter_persists_across_executor_and_services_restart(
    engine: WasmEngine, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    plan = make_plan(build_wasm(tmp_path), state)
    async with serving(engine, plan) as url, httpx.AsyncClient() as http:
        assert [(await http.get(f"{url}/count")).text for _ in range(3)] == ["1", "2", "3"]
    async with serving(engine, plan) as url, httpx.AsyncClient() as http:
        assert (await http.get(f"{url}/count")).text == "4"
        assert (await http.get(f"{url}/keys")).text == "count\n"
    # The file is Spin's: the same table and value bytes Spin would read.
    with sqlite3.connect(state / "sqlite_key_value.db") as conn:
        rows = conn.execute("SELECT store, key, value FROM spin_key_value").fetchall()
    assert rows == [("default", "count", struct.pack("<I", 4))]
    async with serving(engine, plan) as url, httpx.AsyncClient() as http:
        assert (await http.get(f"{url}/reset")).text == "exists=0"
        assert (await http.get(f"{url}/count")).text == "1"


async def test_concurrent_requests_keep_their_own_state(engine: WasmEngine, tmp_path: Path) -> None:
    """Requests run in parallel worker threads; each must see its own request and handles."""
    answers: dict[int, httpx.Response] = {}
    async with serving(engine, make_plan(build_wasm(tmp_path), None)) as url, httpx.AsyncClient() as http:

        async def one(i: int) -> None:
            path = f"{url}/config/message" if i % 3 == 0 else f"{url}/e{i}"
            answers[i] = await http.post(path, content=f"body-{i}".encode() * (i + 1))

        async with anyio.create_task_group() as tg:
            for i in range(24):
                tg.start_soon(one, i)
    for i, answer in answers.items():
        assert answer.status_code == 200
        if i % 3 == 0:
            assert answer.text == "bonjour, world"
        else:
            assert f"uri=/e{i}\n" in answer.text and answer.text.endswith(f"body-{i}" * (i + 1))


async def test_without_state_dir_the_store_is_in_memory(engine: WasmEngine, tmp_path: Path) -> None:
    plan = make_plan(build_wasm(tmp_path), None)
    for _ in range(2):
        async with serving(engine, plan) as url, httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/count")).text == "1"


async def test_unlisted_store_is_access_denied(engine: WasmEngine, tmp_path: Path) -> None:
    async with serving(engine, make_plan(build_wasm(tmp_path), None, stores=[])) as url, \
            httpx.AsyncClient() as http:
        response = await http.get(f"{url}/count")
        assert (response.status_code, response.text) == (500, "error 2")  # access-denied


async def test_config_keys_through_spin_config(engine: WasmEngine, tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    async with serving(engine, make_plan(build_wasm(tmp_path), None)) as url, httpx.AsyncClient() as http:
        with caplog.at_level(logging.DEBUG):
            message = await http.get(f"{url}/config/message")
            assert (message.status_code, message.text) == (200, "bonjour, world")  # env beats default
            token = await http.get(f"{url}/config/token")
            assert token.text == SECRET  # the app file's value
            assert (await http.get(f"{url}/config/missing")).text == ""
            undefined = await http.get(f"{url}/config/nope")
            assert undefined.status_code == 404 and undefined.text.startswith("error 0 ")  # provider
            invalid = await http.get(f"{url}/config/Bad-Name")
            assert invalid.status_code == 404 and invalid.text.startswith("error 1 ")  # invalid-key
        assert SECRET not in caplog.text


async def test_sqlite_through_the_legacy_import(engine: WasmEngine, tmp_path: Path) -> None:
    state = tmp_path / "state"
    plan = make_plan(build_wasm(tmp_path), state)
    async with serving(engine, plan) as url, httpx.AsyncClient() as http:
        assert (await http.post(f"{url}/sql", content=b"CREATE TABLE t (n INTEGER, s TEXT)")).text \
            == "ok rows=0 cols=0"
        await http.post(f"{url}/sql", content=b"INSERT INTO t VALUES (41, 'x'), (7, NULL)")
        query = b"SELECT n + 1, s, x'00ff', 2.5 FROM t ORDER BY n DESC"
        answer = await http.post(f"{url}/sql", content=query)
        assert answer.text == "ok rows=2 cols=4 first=42"
        broken = await http.post(f"{url}/sql", content=b"SELECT * FROM nope")
        assert broken.status_code == 500 and broken.text == "error 4 no such table: nope"  # io(...)
    with sqlite3.connect(state / "sqlite_db.db") as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)


async def test_guest_failures_are_500_and_the_server_keeps_serving(
    engine: WasmEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(engine, make_plan(build_wasm(tmp_path), None)) as url, httpx.AsyncClient() as http:
        with caplog.at_level(logging.INFO):
            for path in ("/bad-status", "/trap", "/loop", "/grow"):
                response = await http.get(f"{url}{path}", timeout=10)
                assert (response.status_code, response.content) == (500, b""), path
                assert (await http.get(f"{url}/count")).status_code == 200
        assert "malformed HTTP status code 99" in caplog.text
        assert "interrupted after the request timeout of 1 s" in caplog.text
        assert "out of memory" in caplog.text


async def test_newer_abi_cabi_realloc_and_post_return(engine: WasmEngine, tmp_path: Path) -> None:
    def newer(text: str) -> str:
        return (text.replace('"canonical_abi_realloc"', '"cabi_realloc"')
                .replace('(func (export "canonical_abi_free") (param i32 i32 i32))', "")
                .replace('"post_return_placeholder"', '"cabi_post_handle-http-request"'))

    async with serving(engine, make_plan(build_wasm(tmp_path, newer), None)) as url, \
            httpx.AsyncClient() as http:
        assert (await http.post(f"{url}/x", content=b"hi")).text.endswith("body=hi")
        assert (await http.get(f"{url}/count")).text == "1"


def test_modules_that_cannot_run_are_load_errors(engine: WasmEngine, tmp_path: Path) -> None:
    services = AppServices.open(make_plan(build_wasm(tmp_path), None), {})
    try:
        cases = {
            "unknown import": ('(import "spin-config" "get-config"',
                               '(import "fermyon-next" "x" (func)) (import "spin-config" "get-config"'),
            "wrong handler type": ('(func (export "handle-http-request")', '(func (export "handle-http-x")'),
        }
        for name, (old, new) in cases.items():
            wasm = build_wasm(tmp_path, lambda text, old=old, new=new: text.replace(old, new, 1))
            plan = make_plan(wasm, None)
            component = plan.components["legacy"]
            module = engine.compile_module(wasm, component.wasm_digest + name)
            with pytest.raises(LoadError) as info:
                SpinLegacyExecutor(
                    ExecutorSetup(app_id=plan.app_id, component_id=component.id, engine=engine,
                                  limits=plan.limits, limiter=anyio.CapacityLimiter(1),
                                  logger=logging.getLogger(LOGGER)),
                    component=component, module=module, services=services,
                )
            assert "component 'legacy'" in str(info.value), name
            if name == "unknown import":
                assert "fermyon-next" in str(info.value)
    finally:
        services.close()
