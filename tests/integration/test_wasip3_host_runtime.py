"""tauon's WASIp3 host interfaces as a real component calls them through tauon's component runtime
(real wasmtime, `RuntimeLinks` over `ALL_INTERFACES`, real key-value and variables services on a state
dir): async-lowered calls that complete at once, a wait that becomes a subtask the guest waits for,
a stream of keys the guest reads with its own allocator, and a stdout stream the host drains into the
app's log. The guest is tests/fixtures/wat/p3_host.wat (callback-form async exports).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.asynchost import load_wat
from support.spin_services import LOGGER, app_services, component, host_state
from tauon.hostif.runtime_link import RuntimeLinks
from tauon.hostif.state import HostState
from tauon.services import ComponentServices
from tauon.wasm.engine import WasmEngine, limited_store
from tauon.wasm.runtime.guest import instantiate
from tauon.wasm.runtime.instance import RuntimeComponent
from tauon.wasm.runtime.tasks import AsyncGuestFunc, release

pytestmark = pytest.mark.integration

WAT = Path(__file__).parent.parent / "fixtures" / "wat" / "p3_host.wat"


@pytest.fixture(scope="module")
def linked(engine: WasmEngine, tmp_path_factory: pytest.TempPathFactory) -> tuple[RuntimeComponent,
                                                                                   RuntimeLinks]:
    links = RuntimeLinks()
    return load_wat(engine, tmp_path_factory.mktemp("p3") / "p3_host.wasm", WAT.read_text(), links), links


@pytest.fixture
def services(tmp_path: Path) -> Iterator[ComponentServices]:
    comp = component(key_value_stores=["default"], config={"greeting": "{{ word }}"})
    with app_services(tmp_path, comp, app_variables={"word": {"default": "unused"}},
                      env={"SPIN_VARIABLE_WORD": "hello p3"}) as services:
        yield services


def run(engine: WasmEngine, linked: tuple[RuntimeComponent, RuntimeLinks], state: HostState, name: str,
        *args: Any) -> list[Any]:
    component, _ = linked
    store = limited_store(engine.engine, memory_limit=64 << 20, deadline_ticks=1 << 30)
    instance = instantiate(component, store, state=state)
    returned: list[Any] = []
    try:
        AsyncGuestFunc(component, None, name).call(instance, state, args, returned.append,
                                                   deadline=time.monotonic() + 30)
    finally:
        release(instance)
    return returned


def test_every_import_of_the_guest_is_implemented(linked: tuple[RuntimeComponent, RuntimeLinks]) -> None:
    _, links = linked
    assert links.trapping == []


def test_key_value_v3_calls_complete_at_once_and_keys_stream_to_the_guest(
        engine: WasmEngine, linked: tuple[RuntimeComponent, RuntimeLinks], services: ComponentServices,
        tmp_path: Path) -> None:
    state = host_state(services)
    [(keys, value)] = run(engine, linked, state, "kv")
    state.finish()
    assert sorted(keys) == ["k1", "k2"] and value == b"value-one"
    with sqlite3.connect(tmp_path / "sqlite_key_value.db") as conn:  # Spin's file and schema
        assert sorted(conn.execute("SELECT store, key, value FROM spin_key_value").fetchall()) == [
            ("default", "k1", b"value-one"), ("default", "k2", b"value-two")]


def test_an_unlisted_store_is_access_denied(engine: WasmEngine,
                                            linked: tuple[RuntimeComponent, RuntimeLinks],
                                            services: ComponentServices) -> None:
    state = host_state(services)
    assert run(engine, linked, state, "denied") == [(1 << 8) | 2]  # err(access-denied)
    state.finish()


def test_variables_v3_resolve_from_spin_variable_env(engine: WasmEngine,
                                                     linked: tuple[RuntimeComponent, RuntimeLinks],
                                                     services: ComponentServices) -> None:
    state = host_state(services)
    assert run(engine, linked, state, "var") == ["hello p3"]
    state.finish()


def test_wait_for_is_a_subtask_the_guest_waits_for(engine: WasmEngine,
                                                   linked: tuple[RuntimeComponent, RuntimeLinks],
                                                   services: ComponentServices) -> None:
    state = host_state(services)
    [elapsed] = run(engine, linked, state, "sleep", 150_000_000)
    assert elapsed >= 150_000_000
    [zero] = run(engine, linked, state, "sleep", 0)  # nothing to wait for: returned at once
    assert zero < 150_000_000
    state.finish()


def test_guest_stdout_through_a_p3_stream_reaches_the_apps_log(
        engine: WasmEngine, linked: tuple[RuntimeComponent, RuntimeLinks], services: ComponentServices,
        caplog: pytest.LogCaptureFixture) -> None:
    state = host_state(services)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert run(engine, linked, state, "log") == [None]
        deadline = time.monotonic() + 20  # a worker thread drains the stream: wait for its line
        while time.monotonic() < deadline and not any("hello from p3" in r.getMessage()
                                                      for r in caplog.records):
            time.sleep(0.02)
        state.finish()
    assert "app.json/web stdout: hello from p3" in [r.getMessage() for r in caplog.records]
