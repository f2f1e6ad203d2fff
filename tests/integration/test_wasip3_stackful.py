"""Stackful async exports (component-model async without a callback) against tauon's real WASIp3 host
interfaces: wasi:clocks 0.3's `wait-for` as a subtask the guest's thread waits for in
`waitable-set.wait` and as a synchronously lowered call that blocks the thread, both under the call's
deadline; and a stackful `wasi:http/handler@0.3.0#handle` that reads a request body the host writes
slowly and streams it back, in process and through the registry and the real `tauon` process. The
guest is tests/fixtures/wat/p3_stackful.wat.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime
import wasmtime.component

from support.apps import app_file, push_app
from support.asynchost import load_wat
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spin_services import host_state
from support.spinpush import SpinAppSpec, SpinComponent
from tauon.hostif.http_fields import Fields
from tauon.hostif.http_p3 import NO_TRAILERS, Request, Response, ready_future
from tauon.hostif.runtime_link import RuntimeLinks
from tauon.hostif.state import HostState
from tauon.wasm.component.guest import Trap
from tauon.wasm.engine import WasmEngine, limited_store
from tauon.wasm.runtime.async_host import stream
from tauon.wasm.runtime.guest import instantiate
from tauon.wasm.runtime.instance import RuntimeComponent
from tauon.wasm.runtime.tasks import AsyncGuestFunc, release

pytestmark = pytest.mark.integration

WAT = Path(__file__).parent.parent / "fixtures" / "wat" / "p3_stackful.wat"
HANDLER = "wasi:http/handler@0.3.0"


def wasm() -> bytes:
    return bytes(wasmtime.wat2wasm(WAT.read_text()))


@pytest.fixture(scope="module")
def linked(engine: WasmEngine, tmp_path_factory: pytest.TempPathFactory) -> tuple[RuntimeComponent,
                                                                                   RuntimeLinks]:
    links = RuntimeLinks()
    return load_wat(engine, tmp_path_factory.mktemp("p3") / "p3_stackful.wasm", WAT.read_text(), links), links


def run(engine: WasmEngine, component: RuntimeComponent, state: HostState, interface: str | None, name: str,
        *args: Any, on_return: Any = None, timeout: float = 30) -> list[Any]:
    store = limited_store(engine.engine, memory_limit=64 << 20, deadline_ticks=1 << 30)
    instance = instantiate(component, store, state=state)
    returned: list[Any] = []
    try:
        AsyncGuestFunc(component, interface, name).call(instance, state, args, on_return or returned.append,
                                                        deadline=time.monotonic() + timeout)
    finally:
        release(instance)
        state.finish()
    return returned


def test_every_import_of_the_guest_is_implemented(linked: tuple[RuntimeComponent, RuntimeLinks]) -> None:
    _, links = linked
    assert links.trapping == []


@pytest.mark.parametrize("name", ["sleep", "sleep-sync"])
def test_wait_for_blocks_the_stackful_thread_until_it_completes(
        engine: WasmEngine, linked: tuple[RuntimeComponent, RuntimeLinks], name: str) -> None:
    component, _ = linked
    [elapsed] = run(engine, component, host_state(None), None, name, 150_000_000)
    assert elapsed >= 150_000_000
    [zero] = run(engine, component, host_state(None), None, name, 0)  # nothing to wait for
    assert zero < 150_000_000


@pytest.mark.parametrize("name", ["sleep", "sleep-sync"])
def test_a_deadline_passing_during_wait_for_is_a_timeout(
        engine: WasmEngine, linked: tuple[RuntimeComponent, RuntimeLinks], name: str) -> None:
    component, _ = linked
    started = time.monotonic()
    with pytest.raises(Trap) as info:
        run(engine, component, host_state(None), None, name, 60_000_000_000, timeout=0.3)
    assert info.value.kind == "timeout"
    assert time.monotonic() - started < 10  # woken at the deadline, not after the minute's wait


def test_a_stackful_handler_reads_the_body_the_host_writes_and_streams_it_back(
        engine: WasmEngine, linked: tuple[RuntimeComponent, RuntimeLinks]) -> None:
    component, _ = linked
    state = host_state(None)
    body = bytes(i % 253 for i in range(300_000))  # past the 64 KiB pipes both ways
    reader, writer = stream(capacity=16_384)

    def feed() -> None:  # the client's bytes arrive in pieces, slower than the guest reads
        for start in range(0, len(body), 50_000):
            time.sleep(0.02)
            writer.write(body[start:start + 50_000], timeout=30)
        writer.close()

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    echoed: list[bytes] = []
    drained = threading.Event()

    def returned(result: Any) -> None:  # guest thread, at task.return: the head, then the body
        tag, rep = result
        assert tag == "ok"
        response = state.table.take(rep, Response)

        def drain() -> None:
            assert response.body is not None
            echoed.append(bytes(response.body.read_all(timeout=30)))
            drained.set()
        threading.Thread(target=drain, daemon=True).start()

    request = Request(Fields([], immutable=True), reader, ready_future(NO_TRAILERS), None,
                      method=("post", None), path_with_query="/", scheme=("HTTP", None), authority="x")
    rep = state.table.push(request)
    run(engine, component, state, HANDLER, "handle", rep, on_return=returned)
    feeder.join(30)
    assert drained.wait(30)
    assert echoed == [body]


def test_a_stackful_handler_served_by_the_tauon_process(tmp_path: Path, registry: RegistryServer) -> None:
    spec = SpinAppSpec(name="stackful", components=[SpinComponent(id="echo", wasm=wasm(), metadata={})],
                       triggers=[{"route": "/...", "component": "echo"}])
    ref = push_app(registry, "wasip3/stackful", "v1", spec)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "stackful.json").write_text(app_file(ref, port))
        first = wait_http(url, timeout=120)
        assert (first.status_code, first.content) == (200, b"")
        body = bytes(i % 251 for i in range(500_000))
        reply = httpx.post(url, content=body, timeout=60)
        assert reply.status_code == 200
        assert reply.content == body
