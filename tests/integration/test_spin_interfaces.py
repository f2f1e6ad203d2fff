"""Spin host interfaces end to end: the real spin-sdk 3.4.1 component (tests/fixtures/components/python-sdk)
behind a real uvicorn, with tauon's services on a real state dir.

Several executors of the same component (different variables / ACLs) sit behind one server; the first path
segment picks one ('/main/kv?key=a' reaches the 'main' executor as '/kv?key=a'). The tests using them run
on both component runtimes (wasmtime's component API and tauon's own).
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from support.components import component_path
from support.spin_services import plan
from tauon.app.lockparts import parse_component_meta
from tauon.app.plan import ComponentPlan, Limits
from tauon.app.routes import RouteMatch
from tauon.errors import LoadError
from tauon.executors.base import Executor, GuestError, RoutedRequest
from tauon.executors.builder import build_component_executor
from tauon.hostif.linker import build_linker
from tauon.model.spinvalue import SpinValue
from tauon.services import AppServices, ComponentServices
from tauon.wasm.component.cache import compile_component
from tauon.wasm.engine import WasmEngine

pytestmark = pytest.mark.integration

LIMITS = Limits(request_timeout=10.0, max_memory=64 * 1024 * 1024, max_request_body=1024 * 1024,
                max_concurrency=4)
LOGGER = "tauon.app.test-spin-interfaces"
GREETING = {"greeting": {"default": None, "secret": False}}


def component_plan(wasm: Path, **metadata: Any) -> ComponentPlan:
    return ComponentPlan(id="py", wasm_path=str(wasm),
                         wasm_digest="sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(),
                         config={"greeting": "{{ greeting }}"},
                         metadata=parse_component_meta(metadata, "metadata"))


def build_executor(engine: WasmEngine, comp: ComponentPlan, services: ComponentServices,
                   runtime: str = "wasmtime") -> Executor:
    executor = build_component_executor(app_id="app.json", component=comp, engine=engine, limits=LIMITS,
                                        limiter=anyio.CapacityLimiter(LIMITS.max_concurrency),
                                        logger=logging.getLogger(LOGGER), trigger_executor="http",
                                        wagi_argv="", services=services, component_runtime=runtime)
    assert executor._runner.name == runtime  # type: ignore[attr-defined]  # no silent fallback
    return executor


def shim(executors: Mapping[str, Executor]) -> Any:
    """Stands in for the switchboard: '/<name>/rest' goes to executors[name] as '/rest'."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        _, name, rest = scope["raw_path"].decode().split("/", 2)
        path = "/" + rest
        headers = tuple((k.decode("latin-1"), v.decode()) for k, v in scope["headers"])
        request = RoutedRequest(
            method=scope["method"], path=path, query=scope["query_string"].decode(), headers=headers,
            spin_values=(SpinValue("spin-path-info", "PATH_INFO", path),), scheme="http",
            authority=dict(headers).get("host", ""), client=tuple(scope["client"]),
            http_version="1.1",
            match=RouteMatch(target=None, raw_route="/...", normalized_route="/...", component_route="",
                             path_info=path))
        try:
            await executors[name].serve(request, receive, send)
        except GuestError:
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    return app


class Apps:
    def __init__(self, base_url: str, state_dir: Path, engine: WasmEngine, wasm: Path) -> None:
        self.base_url = base_url
        self.state_dir = state_dir
        self.engine = engine
        self.wasm = wasm


@pytest.fixture(scope="module", params=["wasmtime", "tauon"])
def apps(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apps]:
    runtime = request.param
    wasm = component_path("python-sdk")
    engine = WasmEngine(tmp_path_factory.mktemp("cache"))
    engine.start()
    state_dir = tmp_path_factory.mktemp("state")
    listed = component_plan(wasm, key_value_stores=["default"], databases=["default"])
    unlisted = component_plan(wasm)  # lists no store and no database: both are access-denied
    opened = [
        AppServices.open(plan(state_dir=state_dir, component=listed, app_variables=GREETING,
                              variables={"greeting": "from the app file"}), {}),
        AppServices.open(plan(state_dir=None, component=listed, app_variables=GREETING),
                         {"SPIN_VARIABLE_GREETING": "from the environment"}),
        AppServices.open(plan(state_dir=None, component=unlisted, variables={"greeting": "x"},
                              app_variables=GREETING), {}),
    ]
    executors = {
        "main": build_executor(engine, listed, opened[0].component(listed), runtime),
        "env": build_executor(engine, listed, opened[1].component(listed), runtime),
        "denied": build_executor(engine, unlisted, opened[2].component(unlisted), runtime),
    }
    server = uvicorn.Server(uvicorn.Config(shim(executors), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield Apps(f"http://127.0.0.1:{port}", state_dir, engine, wasm)
    server.should_exit = True
    thread.join(5)
    for services in opened:
        services.close()
    engine.stop()


@pytest.fixture
def client(apps: Apps) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=apps.base_url, timeout=30) as c:
        yield c


def test_kv_put_then_get_and_the_data_is_spins_table(client: httpx.Client, apps: Apps) -> None:
    assert client.get("/main/kv?key=fruit").status_code == 404
    r = client.put("/main/kv?key=fruit", content=b"apple \x00\xff")
    assert (r.status_code, r.text) == (200, "stored\n")
    r = client.get("/main/kv?key=fruit")
    assert (r.status_code, r.content) == (200, b"apple \x00\xff")
    with sqlite3.connect(apps.state_dir / "sqlite_key_value.db") as db:
        rows = db.execute(
            "SELECT value FROM spin_key_value WHERE store = 'default' AND key = 'fruit'").fetchall()
    assert rows == [(b"apple \x00\xff",)]
    assert client.delete("/main/kv?key=fruit").status_code == 200
    assert client.get("/main/kv?key=fruit").status_code == 404


def test_concurrent_kv_writes_from_several_requests(client: httpx.Client) -> None:
    def put(i: int) -> int:
        with httpx.Client(base_url=str(client.base_url), timeout=30) as c:
            return c.put(f"/main/kv?key=k{i}", content=str(i).encode()).status_code

    results: list[int] = []
    threads = [threading.Thread(target=lambda i=i: results.append(put(i))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == [200] * 8
    assert [client.get(f"/main/kv?key=k{i}").text for i in range(8)] == [str(i) for i in range(8)]


def test_unlisted_store_and_database_are_access_denied(client: httpx.Client) -> None:
    r = client.get("/denied/kv?key=a")
    assert (r.status_code, r.text) == (500, "error: Error_AccessDenied: Error_AccessDenied()")
    r = client.post("/denied/sqlite", content=b"SELECT 1")
    assert (r.status_code, r.text) == (500, "error: Error_AccessDenied: Error_AccessDenied()")


def test_sqlite_create_insert_select(client: httpx.Client, apps: Apps) -> None:
    for sql in ("CREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT, weight REAL, photo BLOB)",
                "INSERT INTO pets (name, weight, photo) VALUES ('rex', 12.5, x'00ff'), ('tom', NULL, NULL)"):
        assert client.post("/main/sqlite", content=sql.encode()).json() == {"columns": [], "rows": []}
    r = client.post("/main/sqlite", content=b"SELECT id, name, weight, photo FROM pets ORDER BY id")
    assert r.json() == {"columns": ["id", "name", "weight", "photo"],
                        "rows": [[1, "rex", 12.5, "00ff"], [2, "tom", None, None]]}
    r = client.post("/main/sqlite", content=b"SELEKT nonsense")
    assert r.status_code == 500 and r.text.startswith("error: Error_Io: Error_Io(value='near \"SELEKT\"")
    with sqlite3.connect(apps.state_dir / "sqlite_db.db") as db:
        assert db.execute("SELECT name FROM pets ORDER BY id").fetchall() == [("rex",), ("tom",)]


def test_variable_from_the_app_file_and_from_the_environment(client: httpx.Client) -> None:
    assert client.get("/main/var").text == "from the app file"
    assert client.get("/env/var").text == "from the environment"


def test_a_required_variable_without_a_value_fails_at_load(tmp_path: Path) -> None:
    comp = ComponentPlan(id="py", wasm_path="/x.wasm", wasm_digest="sha256:" + "0" * 64,
                         config={"greeting": "{{ greeting }}"})
    with pytest.raises(LoadError) as failure:
        AppServices.open(plan(state_dir=tmp_path, component=comp, app_variables=GREETING), {})
    assert "greeting" in str(failure.value)
    assert "SPIN_VARIABLE_GREETING" in (failure.value.hint or "")


def test_the_sdk_components_spin_imports_are_linked(apps: Apps) -> None:
    comp = component_plan(apps.wasm)
    linked = build_linker(apps.engine.engine, compile_component(apps.engine, apps.wasm, comp.wasm_digest))
    implemented = {label.partition("#")[0] for label in linked.implemented}
    assert {
        "fermyon:spin/variables@2.0.0", "fermyon:spin/key-value@2.0.0", "fermyon:spin/sqlite@2.0.0",
        "fermyon:spin/llm@2.0.0", "fermyon:spin/redis@2.0.0", "fermyon:spin/postgres@2.0.0",
        "fermyon:spin/mysql@2.0.0", "fermyon:spin/mqtt@2.0.0", "spin:sqlite/sqlite@3.0.0",
        "spin:postgres/postgres@3.0.0", "spin:postgres/postgres@4.0.0",
        "wasi:config/store@0.2.0-draft-2024-09-27",
        "wasi:keyvalue/store@0.2.0-draft2", "wasi:keyvalue/atomics@0.2.0-draft2",
        "wasi:keyvalue/batch@0.2.0-draft2",
    } <= implemented
