"""WagiExecutor on real C fixtures (tests/fixtures/wagi), driven through real ASGI receive/send."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import wasmtime

from support.fixtures import fixture_path
from tauon.app.plan import ComponentPlan, Limits
from tauon.app.routes import RouteMatch
from tauon.app.spinvalues import spin_values
from tauon.errors import LoadError
from tauon.executors import wagi
from tauon.executors.base import ExecutorSetup, GuestError, RoutedRequest
from tauon.executors.wagi import WagiExecutor
from tauon.model.mount import Mount
from tauon.wasm.engine import WasmEngine

pytestmark = pytest.mark.anyio
LOGGER = "tauon.app.test.json"
LIMITS = Limits(request_timeout=1.0, max_memory=32 * 1024 * 1024, max_request_body=4096, max_concurrency=4)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WasmEngine]:
    engine = WasmEngine(tmp_path_factory.mktemp("compiled"))
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_executor(
    engine: WasmEngine,
    name: str,
    *,
    env: dict[str, str] | None = None,
    mounts: tuple[Mount[str], ...] = (),
    limits: Limits = LIMITS,
    argv: str = "${SCRIPT_NAME} ${ARGS}",
) -> WagiExecutor:
    path = fixture_path(name)
    component = ComponentPlan(
        id=name, wasm_path=str(path), wasm_digest=f"sha256:test-{name}", env=env or {}, mounts=mounts
    )
    module = engine.compile_module(path, f"{name}-{path.stat().st_mtime_ns}")
    return WagiExecutor(
        ExecutorSetup(app_id="test.json", component_id=component.id, engine=engine, limits=limits,
                      limiter=anyio.CapacityLimiter(limits.max_concurrency),
                      logger=logging.getLogger(LOGGER)),
        component=component,
        module=module,
        argv_template=argv,
    )


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def make_request(
    method: str, path: str, query: str, headers: tuple[tuple[str, str], ...], route: str
) -> RoutedRequest:
    prefix = route.removesuffix("/...")
    match: RouteMatch[object] = RouteMatch(
        target=None,
        raw_route=route,
        normalized_route=route,
        component_route=prefix,
        path_info=path[len(prefix) :] if route.endswith("/...") else "",
    )
    host = dict(headers).get("host")
    return RoutedRequest(
        method=method,
        path=path,
        query=query,
        headers=headers,
        spin_values=spin_values(
            match,
            scheme="http",
            host=host,
            path_and_query=path + (f"?{query}" if query else ""),
            client=("127.0.0.1", 50000),
        ),
        scheme="http",
        authority=host or "localhost",
        client=("127.0.0.1", 50000),
        http_version="1.1",
        match=match,
    )


async def call(
    executor: WagiExecutor,
    path: str = "/",
    *,
    method: str = "GET",
    query: str = "",
    headers: tuple[tuple[str, str], ...] = (("host", "example.com:8080"),),
    chunks: tuple[bytes, ...] = (b"",),
    route: str = "/...",
) -> Answer:
    pending = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await executor.serve(make_request(method, path, query, headers, route), receive, send)
    start, *bodies = sent
    assert start["type"] == "http.response.start"
    assert all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in start["headers"])
    headers_out = {k.decode(): v.decode() for k, v in start["headers"]}
    return Answer(start["status"], headers_out, b"".join(m["body"] for m in bodies))


def env_lines(body: bytes) -> dict[str, str]:
    text = body.decode()
    pairs = (line[4:].split("=", 1) for line in text.splitlines() if line.startswith("env:"))
    return {name: value for name, value in pairs}


async def test_echo_sees_cgi_env_argv_and_body(engine: WasmEngine, caplog: pytest.LogCaptureFixture) -> None:
    executor = make_executor(engine, "echo", env={"GREETING": "hi"})
    headers = (("host", "example.com:8080"), ("x-custom", "yes"), ("authorization", "Bearer s3cret"))
    with caplog.at_level(logging.INFO, logger=LOGGER):
        answer = await call(
            executor,
            "/api/items/a%20b",
            method="POST",
            query="x=1&y=2",
            headers=headers,
            chunks=(b"first,", b"second"),
            route="/api/...",
        )
    assert answer.status == 200
    assert answer.headers == {"content-type": "text/plain", "content-length": str(len(answer.body))}
    lines = answer.body.decode().splitlines()
    assert lines[:5] == ["method=POST", "argc=3", "argv[0]=/api/items/a%20b", "argv[1]=x=1", "argv[2]=y=2"]
    assert answer.body.endswith(b"body=first,second")
    env = env_lines(answer.body)
    assert env["GREETING"] == "hi"
    assert env["CONTENT_LENGTH"] == "12"
    assert env["SCRIPT_NAME"] == "/api"
    assert env["PATH_INFO"] == env["X_RAW_PATH_INFO"] == "/items/a%20b"
    assert env["PATH_TRANSLATED"] == "/items/a b"
    assert env["QUERY_STRING"] == "x=1&y=2"
    assert env["HTTP_X_CUSTOM"] == "yes"
    assert env["SERVER_NAME"] == "example.com" and env["SERVER_PORT"] == "8080"
    assert env["X_FULL_URL"] == "http://example.com:8080/api/items/a%20b?x=1&y=2"
    assert env["X_MATCHED_ROUTE"] == "/api/..." and env["X_COMPONENT_ROUTE"] == "/api"
    assert env["X_CLIENT_ADDR"] == "127.0.0.1:50000" and env["REMOTE_ADDR"] == "127.0.0.1"
    assert "HTTP_AUTHORIZATION" not in env
    # Nothing of the host process leaks in.
    assert not {"PATH", "HOME", "USER", "PWD"} & env.keys()
    assert "test.json/echo stderr: echo: served POST" in caplog.text
    assert "test.json/echo stderr: second line" in caplog.text


async def test_empty_query_gives_trailing_empty_argument(engine: WasmEngine) -> None:
    answer = await call(make_executor(engine, "echo"), "/x")
    assert answer.body.decode().splitlines()[1:4] == ["argc=2", "argv[0]=/x", "argv[1]="]


async def test_mount_is_readable_but_read_only_and_confined(engine: WasmEngine, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "hello.txt").write_bytes(b"hello from the mount\n")
    (tmp_path / "outside.txt").write_text("must stay invisible")
    executor = make_executor(engine, "files", mounts=(Mount(str(tmp_path / "docs"), "/"),))

    found = await call(executor, "/static/hello.txt", route="/static/...")
    assert found.status == 200
    assert found.body == b"hello from the mount\n"
    assert found.headers["x-write"].startswith("denied")
    assert list((tmp_path / "docs").iterdir()) == [tmp_path / "docs" / "hello.txt"]

    missing = await call(executor, "/static/nope.txt", route="/static/...")
    assert missing.status == 404
    escape = await call(executor, "/static/../outside.txt", route="/static/...")
    assert escape.status == 404


async def test_status_location_and_duplicate_headers(engine: WasmEngine) -> None:
    answer = await call(make_executor(engine, "status"))
    assert answer.status == 201
    assert answer.headers["location"] == "/things/42"
    assert answer.headers["x-dup"] == "second"
    assert answer.body == b"created\r\n"


async def test_one_mebibyte_body(engine: WasmEngine) -> None:
    answer = await call(make_executor(engine, "big"))
    block = bytes(ord("a") + i % 26 for i in range(65536))
    assert answer.status == 200
    assert answer.body == block * 16
    assert answer.headers["content-length"] == str(1024 * 1024)


async def test_oversized_stdout_fails(engine: WasmEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wagi, "STDOUT_LIMIT", 100_000)
    with pytest.raises(GuestError) as failure:
        await call(make_executor(engine, "big"))
    assert failure.value.kind == "output"


async def test_loop_times_out_while_other_requests_proceed(engine: WasmEngine) -> None:
    looping = make_executor(engine, "loop")
    echo = make_executor(engine, "echo")
    outcome: dict[str, Any] = {}

    async def run_loop() -> None:
        started = time.monotonic()
        try:
            await call(looping)
        except GuestError as exc:
            outcome["error"] = exc
        outcome["loop_elapsed"] = time.monotonic() - started

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_loop)
        await anyio.sleep(0.2)
        started = time.monotonic()
        answer = await call(echo, "/while-looping")
        outcome["echo_elapsed"] = time.monotonic() - started
        assert "loop_elapsed" not in outcome  # the loop was still running when echo answered
    assert answer.status == 200
    assert outcome["echo_elapsed"] < 0.5
    assert outcome["error"].kind == "timeout"
    assert "request timeout of 1 s" in str(outcome["error"])
    assert LIMITS.request_timeout <= outcome["loop_elapsed"] < LIMITS.request_timeout + 0.5


@pytest.mark.parametrize(
    ("fixture", "kind", "text"),
    [("oom", "memory", "out of memory"), ("trap", "trap", "unreachable"), ("exit3", "exit", "status 3")],
)
async def test_guest_failures_are_classified(engine: WasmEngine, fixture: str, kind: str, text: str) -> None:
    with pytest.raises(GuestError) as failure:
        await call(make_executor(engine, fixture))
    assert failure.value.kind == kind
    assert text in str(failure.value)
    assert str(failure.value).startswith(f"test.json/{fixture}: ")


@pytest.mark.parametrize("declared", [True, False])
async def test_body_over_limit_is_413_without_running_the_guest(
    engine: WasmEngine, caplog: pytest.LogCaptureFixture, declared: bool
) -> None:
    body = b"x" * (LIMITS.max_request_body + 1)
    headers: tuple[tuple[str, str], ...] = (("host", "h"),)
    if declared:
        headers += (("content-length", str(len(body))),)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        answer = await call(
            make_executor(engine, "echo"), method="POST", headers=headers, chunks=(body[:4000], body[4000:])
        )
    assert (answer.status, answer.body) == (413, b"")
    assert "echo: served" not in caplog.text


async def test_body_at_limit_is_accepted(engine: WasmEngine) -> None:
    body = b"y" * LIMITS.max_request_body
    answer = await call(make_executor(engine, "echo"), method="PUT", chunks=(body,))
    assert answer.body.endswith(b"body=" + body)


async def test_hello_example_greets(engine: WasmEngine) -> None:
    answer = await call(
        make_executor(engine, "hello", env={"GREETING": "Bonjour"}), "/hello/you", route="/hello/..."
    )
    assert answer.status == 200
    assert answer.body.decode().startswith("Bonjour from tauon!\nYou asked for /hello/you\n")


def test_module_without_start_or_with_foreign_imports_is_refused(engine: WasmEngine, tmp_path: Path) -> None:
    cases = {
        "nostart": ('(module (func (export "main")))', "does not export a _start"),
        "foreign": ('(module (import "env" "magic" (func)) (func (export "_start")))', "cannot be linked"),
    }
    for name, (wat, message) in cases.items():
        path = tmp_path / f"{name}.wasm"
        path.write_bytes(wasmtime.wat2wasm(wat))
        component = ComponentPlan(id=name, wasm_path=str(path), wasm_digest=f"sha256:{name}")
        with pytest.raises(LoadError, match=message):
            WagiExecutor(
                ExecutorSetup(app_id="t.json", component_id=component.id, engine=engine, limits=LIMITS,
                              limiter=anyio.CapacityLimiter(1), logger=logging.getLogger(LOGGER)),
                component=component,
                module=engine.compile_module(path, f"sha256:{name}"),
                argv_template="${SCRIPT_NAME}",
            )
