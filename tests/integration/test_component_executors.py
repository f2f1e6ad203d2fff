"""The component executors end to end: real fixtures, built into generations by the real
`build_generation` (so executor selection is under test too), served by the real switchboard on uvicorn.
Every test runs with each component runtime (`--component-runtime wasmtime|tauon`); with tauon, each
component executor must really run on tauon's runtime unless listed in TAUON_FALLBACK.

Fixtures: tests/fixtures/components/ (scripts/build-components) and tests/fixtures/components-extra/
(scripts/build-components-extra): js and python-files read the read-only `/` mount, wagi-component and
wagi-files are wasi:cli/run components run as WAGI, spin-inbound exports fermyon:spin/inbound-http,
python-sdk is a spin-sdk 3.4.1 app, spin-legacy a Spin 1.x core module.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from support.componentize import fixture as componentize_fixture
from support.components import component_path
from tauon.app.plan import ComponentPlan, GenerationPlan, Limits, TriggerPlan
from tauon.errors import LoadError
from tauon.model.mount import Mount
from tauon.server.generation import build_generation
from tauon.server.switchboard import Switchboard
from tauon.wasm.engine import WasmEngine

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXTRA_SCRIPT = ROOT / "scripts" / "build-components-extra"
EXTRA_DIR = ROOT / "tests" / "fixtures" / "build" / "components-extra"
LIMITS = Limits(request_timeout=5.0, max_memory=128 * 1024 * 1024, max_request_body=1024 * 1024,
                max_concurrency=4)
HELLO = "hello from the mount\n"
# A run-only wasi:cli/run component whose core module traps in its start function.
RUN_EXPORT = """
  (core module $m
    (func $s {start})
    (start $s)
    (func (export "run") (result i32) i32.const 0))
  (core instance $i (instantiate $m))
  (func $run (result (result)) (canon lift (core func $i "run")))
  (instance $inst (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $inst))
"""


def extra_path(name: str) -> Path:
    result = subprocess.run([str(EXTRA_SCRIPT), name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"scripts/build-components-extra {name} failed:\n{result.stdout}{result.stderr}")
    return EXTRA_DIR / f"{name}.wasm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def component(cid: str, wasm: Path, mount: Path | None = None, **kw: Any) -> ComponentPlan:
    digest = "sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest()
    mounts = (Mount(str(mount), "/"),) if mount is not None else ()
    return ComponentPlan(id=cid, wasm_path=str(wasm), wasm_digest=digest, mounts=mounts, **kw)


RUNTIME = ["wasmtime"]
"""The component runtime of the test running (from the `component_runtime` fixture, tests/conftest.py)."""
TAUON_FALLBACK: set[str] = {"composed"}
"""Components (by id) the tauon runtime does not run yet: they fall back to the wasmtime path."""


@pytest.fixture(autouse=True)
def runtime_of_plans(component_runtime: str) -> Iterator[str]:
    RUNTIME[0] = component_runtime
    yield component_runtime
    RUNTIME[0] = "wasmtime"


def plan_of(cid: str, comp: ComponentPlan, executor: str = "http", limits: Limits = LIMITS) -> GenerationPlan:
    return GenerationPlan(
        app_id=f"{cid}.json", reference=f"localhost/{cid}:v1", digest="sha256:" + "1" * 64, name=cid,
        version="1", triggers=(TriggerPlan(id="t", route="/...", component=cid, executor=executor),),
        components={cid: comp}, limits=limits, component_runtime=RUNTIME[0])


def check_runners(generation: Any) -> None:
    """Each component executor runs on the runtime the plan selected (or a declared fallback)."""
    for executor in generation.executors.values():
        runner = getattr(executor, "_runner", None)
        if runner is None:  # core modules: no component runtime
            continue
        expected = "wasmtime" if executor.component_id in TAUON_FALLBACK else RUNTIME[0]
        assert runner.name == expected, f"{executor.component_id} runs on {runner.name}, not {expected}"


def build(engine: WasmEngine, plan: GenerationPlan) -> Any:
    return anyio.run(build_generation, plan, 1, engine, anyio.CapacityLimiter(1))


@contextmanager
def serving(engine: WasmEngine, plan: GenerationPlan) -> Iterator[str]:
    """Build the generation and serve it, all on one event loop in a background thread."""
    port = free_port()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        try:
            generation = await build_generation(plan, 1, engine, anyio.CapacityLimiter(1))
            check_runners(generation)
            server = uvicorn.Server(uvicorn.Config(Switchboard(plan.app_id, generation), host="127.0.0.1",
                                                   port=port, log_level="warning", lifespan="off"))
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            return
        box["server"] = server
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        ready.set()
        try:
            await task
        finally:
            generation.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(120), "the generation did not start serving"
    if "error" in box:
        raise box["error"]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        box["server"].should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def engine() -> Iterator[WasmEngine]:
    engine = WasmEngine(ROOT / ".cache" / "test-compiled")  # keyed by digest: safe to keep across runs
    engine.start()
    yield engine
    engine.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("files")
    (base / "outside.txt").write_text("outside the mount")
    root = base / "mount"
    (root / "static").mkdir(parents=True)
    (root / "hello.txt").write_text(HELLO)
    (root / "static" / "data.bin").write_bytes(bytes(range(256)) * 64)
    os.symlink("../../outside.txt", root / "link-out")
    os.symlink(str(base / "outside.txt"), root / "abs-link")
    os.symlink("hello.txt", root / "link-in")
    return root


def unchanged(files: Path) -> None:
    assert (files / "hello.txt").read_text() == HELLO
    names = sorted(p.name for p in files.iterdir())
    assert names == ["abs-link", "hello.txt", "link-in", "link-out", "static"]


# -- wasi:filesystem through real guests ---------------------------------------------------------

def test_js_static_files_from_the_mount(engine: WasmEngine, files: Path) -> None:
    with serving(engine, plan_of("js", component("js", component_path("js"), files))) as url:
        r = httpx.get(f"{url}/files/hello.txt")
        assert (r.status_code, r.text) == (200, HELLO)
        r = httpx.get(f"{url}/files/static/data.bin")
        assert r.content == (files / "static" / "data.bin").read_bytes()
        assert (httpx.get(f"{url}/files/absent.txt").text) == "error: no-entry\n"
        # the fixture opens without symlink-follow, so any final symlink is `loop` (O_NOFOLLOW), as in
        # wasmtime; the python and WAGI fixtures below follow links
        for link in ("link-in", "link-out", "abs-link"):
            assert httpx.get(f"{url}/files/{link}").text == "error: loop\n"


def test_python_runtime_file_server(engine: WasmEngine, files: Path) -> None:
    comp = component("pyfiles", extra_path("python-files"), files)
    with serving(engine, plan_of("pyfiles", comp)) as url, httpx.Client(base_url=url, timeout=30) as http:
        r = http.get("/files/hello.txt")
        assert (r.status_code, r.text) == (200, HELLO)
        assert http.get("/files/static/data.bin").content == (files / "static" / "data.bin").read_bytes()
        assert http.get("/files/link-in").text == HELLO
        assert http.get("/list/").text == "abs-link\nhello.txt\nlink-in\nlink-out\nstatic\n"
        assert http.get("/files/absent.txt").text == "error: FileNotFoundError\n"
        # writes: refused, nothing changes on the host
        for path in ("/files/hello.txt", "/files/new.txt"):
            r = http.put(path, content=b"overwritten")
            assert (r.status_code, r.text) == (403, "error: PermissionError\n"), r.text
        # escapes: `..` above the mount (percent-encoded so no client normalizes it) and symlinks out
        for path in ("/files/%2e%2e/%2e%2e/etc/passwd", "/files/%2e%2e/outside.txt", "/files/link-out",
                     "/files/abs-link"):
            r = http.get(path)
            assert r.status_code == 403, (path, r.text)
            assert "outside" not in r.text and "root:" not in r.text
    unchanged(files)


def test_wagi_component_files_and_escapes(engine: WasmEngine, files: Path) -> None:
    comp = component("wagifiles", extra_path("wagi-files"), files)
    with serving(engine, plan_of("wagifiles", comp, "wagi")) as url, httpx.Client(base_url=url) as http:
        assert http.get("/x?read=hello.txt").text == HELLO
        assert http.get("/x?read=/static/../hello.txt").text == HELLO
        assert http.get("/x?read=absent").status_code == 404
        for query in ("read=../../etc/passwd", "read=/../outside.txt", "read=link-out", "read=abs-link",
                      "write=hello.txt", "write=new.txt"):
            r = http.get(f"/x?{query}")
            assert r.status_code == 403, (query, r.text)
            assert r.text.startswith("errno=")
    unchanged(files)


# -- WAGI components ------------------------------------------------------------------------------

def test_wagi_component_gets_argv_env_and_stdin(engine: WasmEngine) -> None:
    comp = component("wagi", component_path("wagi-component"), env={"EXTRA": "1"})
    with serving(engine, plan_of("wagi", comp, "wagi")) as url:
        r = httpx.post(f"{url}/run/me?a=1&b=2", content=b"the body")
    assert r.status_code == 200
    assert r.headers["x-wagi-fixture"] == "1"
    assert r.text.splitlines() == [
        "REQUEST_METHOD=POST", "PATH_INFO=/run/me", "QUERY_STRING=a=1&b=2", "ARGC=3",
        "ARGV0=/run/me", "ARGV1=a=1", "ARGV2=b=2", "BODY=the body"]


def test_wagi_component_reads_every_byte_value_from_stdin(engine: WasmEngine) -> None:
    # Its stdin reads go through the preview1 adapter, whose allocator hands out only the caller's
    # buffer: the routed read must fit the bytes there (routing.py), whatever their values.
    body = bytes(range(256)) * 300 + b"\xff"
    comp = component("wagi", component_path("wagi-component"))
    with serving(engine, plan_of("wagi", comp, "wagi")) as url:
        r = httpx.post(f"{url}/", content=body, timeout=30)
    assert r.status_code == 200
    assert r.content.split(b"BODY=", 1)[1] == body + b"\n"


def test_wagi_component_exit_status_and_missing_run(engine: WasmEngine, tmp_path: Path) -> None:
    failing = tmp_path / "exit.wat"  # run returns err: a non-zero exit status -> 500, as for modules
    failing.write_text("(component " + RUN_EXPORT.replace("{start}", "nop").replace(
        "i32.const 0))", "i32.const 1))") + ")")
    with serving(engine, plan_of("exit", component("exit", failing), "wagi")) as url:
        assert httpx.get(f"{url}/").status_code == 500
    looping = tmp_path / "loop.wat"  # stopped at the request deadline
    looping.write_text("(component " + RUN_EXPORT.replace("{start}", "nop").replace(
        "(result i32) i32.const 0)", "(result i32) (loop (br 0)) i32.const 0)") + ")")
    short = Limits(request_timeout=0.5, max_memory=LIMITS.max_memory)
    with serving(engine, plan_of("loop", component("loop", looping), "wagi", short)) as url:
        started = time.monotonic()
        assert httpx.get(f"{url}/", timeout=10).status_code == 500
        assert time.monotonic() - started < 3
    with pytest.raises(LoadError, match="exports no wasi:cli/run"):
        build(engine, plan_of("notcli", component("notcli", component_path("c")), "wagi"))


# -- fermyon:spin/inbound-http --------------------------------------------------------------------

def test_spin_inbound_http_request_and_response(engine: WasmEngine) -> None:
    comp = component("inbound", extra_path("spin-inbound"))
    with serving(engine, plan_of("inbound", comp)) as url, httpx.Client(base_url=url) as http:
        r = http.post("/a/b?x=1", content=b"payload", headers={"X-Custom": "v"})
        assert r.status_code == 200
        lines = r.text.splitlines()
        assert lines[:4] == ["method=1", "uri=/a/b?x=1", "params=0", "body=some:payload"]
        headers = [line[2:] for line in lines[4:]]
        assert f"host={url.removeprefix('http://')}" in headers
        assert "x-custom=v" in headers and "spin-path-info=/a/b" in headers
        assert r.headers.get_list("x-dup") == ["second"]  # duplicates collapse, last wins
        assert r.headers["content-type"] == "text/plain"
        assert http.get("/").text.splitlines()[3] == "body=some:"  # body is some even when empty
        for method, index in (("GET", 0), ("PUT", 2), ("DELETE", 3), ("PATCH", 4), ("OPTIONS", 6)):
            assert http.request(method, "/m").text.startswith(f"method={index}\n")
        head = http.head("/m")
        assert (head.status_code, head.content) == (200, b"")
        for method in ("PURGE", "TRACE", "CONNECT"):
            r = http.request(method, "/m")
            assert (r.status_code, r.content) == (405, b"")
        for status, expected in (("418", 418), ("99", 500), ("601", 500)):
            r = http.get(f"/s?status={status}")
            assert r.status_code == expected
            if expected == 500:
                assert r.content == b""
        r = http.get("/nobody")
        assert (r.status_code, r.content, r.headers["content-length"]) == (200, b"", "0")


# -- Spin SDK components, Spin 1.x modules ------------------------------------------------------------

def test_python_sdk_echo(engine: WasmEngine) -> None:
    comp = component("sdk", component_path("python-sdk"))
    with serving(engine, plan_of("sdk", comp)) as url:
        r = httpx.post(f"{url}/echo", content=b"hi", timeout=30)
    assert r.status_code == 200
    doc = r.json()
    assert (doc["method"], doc["path"], doc["body"]) == ("POST", "/echo", "hi")


def test_spin_legacy_module_is_routed_to_the_legacy_executor(engine: WasmEngine) -> None:
    comp = component("legacy", component_path("spin-legacy"))
    with serving(engine, plan_of("legacy", comp)) as url:
        r = httpx.get(f"{url}/some/path?q=1")
    assert (r.status_code, r.text) == (200, "hello from spin-legacy /some/path?q=1")


# -- load-time failures -----------------------------------------------------------------------------

@pytest.mark.parametrize("wat, reason", [
    ("(component " + RUN_EXPORT.replace("{start}", "unreachable") + ")", "unreachable"),
    ('(component (import "thing" (type (sub resource))) ' + RUN_EXPORT.replace("{start}", "nop") + ")",
     "component imports resource `thing`"),
    ('(component (import "m" (core module)) ' + RUN_EXPORT.replace("{start}", "nop") + ")",
     "component imports core module `m`"),
])
def test_uninstantiable_components_fail_the_load(engine: WasmEngine, tmp_path: Path, wat: str,
                                                 reason: str) -> None:
    path = tmp_path / "bad.wat"
    path.write_text(wat)
    started = time.monotonic()
    with pytest.raises(LoadError) as info:
        build(engine, plan_of("bad", component("bad", path), "wagi"))
    assert "component 'bad' cannot be instantiated" in str(info.value) and reason in str(info.value)
    assert info.value.field == "components.bad.source"
    assert time.monotonic() - started < 10


def test_missing_files_directory_fails_the_load(engine: WasmEngine, tmp_path: Path) -> None:
    comp = component("js", component_path("js"), tmp_path / "absent")
    with pytest.raises(LoadError, match=r"files directory .* does not exist"):
        build(engine, plan_of("js", comp))


# -- what tauon's component runtime does not run yet ------------------------------------------------

def test_a_component_the_tauon_runtime_cannot_run_falls_back_saying_why(
        engine: WasmEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A composition (a dependency's export lowered into the main component: a fused adapter) runs on
    the wasmtime path under either setting; with tauon, one line names the app, component and feature."""
    wasm = tmp_path / "composed.wasm"
    wasm.write_bytes(componentize_fixture("dep-composed"))
    plan = plan_of("composed", component("composed", wasm))
    caplog.set_level(logging.INFO)
    with serving(engine, plan) as url:  # check_runners: wasmtime here, whatever the runtime
        r = httpx.get(f"{url}/hello/tauon", timeout=30)
        assert (r.status_code, r.text) == (200, "hello, tauon, from the greeter dependency")
    lines = [r.getMessage() for r in caplog.records if "runtime cannot run" in r.getMessage()]
    if RUNTIME[0] == "tauon":
        assert len(lines) == 1 and lines[0].startswith("composed.json/composed: ")
        assert "fused adapter" in lines[0] and "wasmtime path" in lines[0]
    else:
        assert lines == []
