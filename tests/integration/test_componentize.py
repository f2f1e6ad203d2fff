"""Core modules with a `component-type` section (Spin 2.x-era apps), pushed to a real registry as Spin
pushes them and served by the real tauon process after it componentizes them (spin-spec §4.6).

Fixtures (scripts/build-componentize-fixtures): a wasi-libc reactor module exporting wasi:http with
wit-bindgen-c 0.16.0 metadata, the same module componentized at build time (as a Spin 2.x push stored
it), one importing fermyon:spin key-value and variables, and one marked wit-bindgen-c 0.4.0.

The serving tests run on both component runtimes (`component_runtime`): a converted module is a
component of the adapter's shape (its core module, the adapter and the shim modules that tie them);
the conversion's failures and cache are the same whichever runtime runs the result.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import runtimes
from support.apps import app_file, push_app
from support.componentize import fixture
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

KV_META = {"key_value_stores": ["default"]}


def _app(name: str, wasm: bytes, *, metadata: dict[str, Any] | None = None,
         config: dict[str, str] | None = None, variables: dict[str, Any] | None = None) -> SpinAppSpec:
    return SpinAppSpec(name=name, components=[SpinComponent(id=name, wasm=wasm, metadata=metadata or {},
                                                            config=config or {})],
                       triggers=[{"route": "/...", "component": name}], variables=variables or {})


def _kv_app(name: str, wasm: bytes) -> SpinAppSpec:
    return _app(name, wasm, metadata=KV_META, config={"greeting": "{{ greeting }}"},
                variables={"greeting": {"default": "hi"}})


def _status(tauon: TauonProcess) -> dict[str, dict[str, Any]]:
    assert tauon.admin is not None
    return {a["app"]: a for a in httpx.get(f"{tauon.admin}/status").json()["apps"]}


def _wait_state(tauon: TauonProcess, app: str, state: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        row = _status(tauon).get(app, {})
        if row.get("state") == state and (state != "failed" or row.get("error")):
            return row
        time.sleep(0.1)
    raise AssertionError(f"{app} did not reach {state!r}; last: {row}")


@pytest.fixture(scope="module")
def images(registry: RegistryServer) -> dict[str, str]:
    return {
        "reactor": push_app(registry, "cz/reactor", "v1", _app("reactor", fixture("reactor-http"))),
        "componentized": push_app(registry, "cz/componentized", "v1",
                                  _app("componentized", fixture("reactor-http-component"))),
        "kv": push_app(registry, "cz/kv", "v1", _kv_app("kv", fixture("reactor-kv"))),
        "kv-componentized": push_app(registry, "cz/kv-componentized", "v1",
                                     _kv_app("kv-componentized", fixture("reactor-kv-component"))),
        "unsupported": push_app(registry, "cz/unsupported", "v1",
                                _app("unsupported", fixture("reactor-unsupported"))),
    }


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, images: dict[str, str],
           component_runtime: str) -> Iterator[tuple[TauonProcess, dict[str, int], Path]]:
    tmp = tmp_path_factory.mktemp("componentize")
    ports = {name: free_port() for name in images}
    with run_tauon(tmp, "--workers", "1", admin=True) as tauon:
        for name, ref in images.items():
            (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, ports[name]))
        for name in images:
            if name != "unsupported":
                wait_http(f"http://127.0.0.1:{ports[name]}/.well-known/spin/health", timeout=120)
        runtimes.check_on_tauon(tauon.log(), *(f"{n}.json/{n}" for n in images if n != "unsupported"))
        yield tauon, ports, tmp


def test_reactor_module_answers_as_the_componentized_image(
        served: tuple[TauonProcess, dict[str, int], Path]) -> None:
    tauon, ports, _ = served
    answers = []
    for name in ("reactor", "componentized"):
        r = httpx.get(f"http://127.0.0.1:{ports[name]}/some/path?x=1")
        answers.append((r.status_code, r.headers["content-type"], r.text))
    assert answers[0] == (200, "text/plain", "hello from a C reactor: /some/path?x=1")
    assert answers[0] == answers[1]
    # printf went through the adapter's wasi_snapshot_preview1.fd_write to tauon's guest log
    tauon.wait_log(r"reactor handling /some/path\?x=1", count=2)
    assert _status(tauon)["reactor.json"]["state"] == "running"


def test_adapter_reaches_spin_interfaces(served: tuple[TauonProcess, dict[str, int], Path]) -> None:
    _, ports, _ = served
    for name in ("kv", "kv-componentized"):
        url = f"http://127.0.0.1:{ports[name]}/"
        assert httpx.get(url).text == "greeting=hi;count=1"
        assert httpx.get(url).text == "greeting=hi;count=2"


@pytest.mark.runtimes("wasmtime")
def test_unsupported_bindgen_version_is_refused(served: tuple[TauonProcess, dict[str, int], Path]) -> None:
    tauon, ports, _ = served
    row = _wait_state(tauon, "unsupported.json", "failed")
    error = row["error"]
    assert "unsupported.json" in error and "'unsupported'" in error
    assert "cannot adapt modules created with wit-bindgen version 0.4.0" in error
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{ports['unsupported']}/")
    assert httpx.get(f"http://127.0.0.1:{ports['reactor']}/").status_code == 200


@pytest.mark.runtimes("wasmtime")
def test_encoder_failure_keeps_the_last_good_generation(
        served: tuple[TauonProcess, dict[str, int], Path], registry: RegistryServer) -> None:
    """v2's module names an export its component-type world does not have: wasm-tools refuses it."""
    tauon, _, _ = served
    good = fixture("reactor-http")
    export = b"wasi:http/incoming-handler@0.2.0#handle"
    broken = good.replace(export, export[:-1] + b"X")
    assert broken != good
    v1 = push_app(registry, "cz/update", "v1", _app("update", good))
    port = free_port()
    (tauon.watch_dir / "update.json").write_text(app_file(v1, port))
    wait_http(f"http://127.0.0.1:{port}/v1", contains="hello from a C reactor: /v1", timeout=60)
    v2 = push_app(registry, "cz/update", "v2", _app("update", broken))
    (tauon.watch_dir / "update.json").write_text(app_file(v2, port))
    deadline = time.monotonic() + 60
    row: dict[str, Any] = {}
    while time.monotonic() < deadline and not (row := _status(tauon)["update.json"]).get("error"):
        time.sleep(0.1)
    assert row["state"] == "running" and row["generation"] == 1
    assert "update.json" in row["error"] and "component 'update'" in row["error"]
    assert ("converting its core module to a component with the preview1 reactor adapter failed"
            in row["error"])
    assert "wasm-tools component new failed" in row["error"]
    assert httpx.get(f"http://127.0.0.1:{port}/still").text == "hello from a C reactor: /still"


@pytest.mark.runtimes("wasmtime")
def test_warm_restart_does_not_convert_again(served: tuple[TauonProcess, dict[str, int], Path],
                                             images: dict[str, str]) -> None:
    tauon, _, tmp = served
    converted = list((tmp / "cache" / "compiled" / "converted").glob("*.wasm"))
    assert converted, "the conversion was not cached"
    port = free_port()
    with run_tauon(tmp / "restart", cache_dir=tmp / "cache") as again:
        (again.watch_dir / "reactor.json").write_text(app_file(images["reactor"], port))
        assert wait_http(f"http://127.0.0.1:{port}/warm", timeout=60).text == "hello from a C reactor: /warm"
        assert "converted a wit-bindgen core module" not in again.log()
    assert "converted a wit-bindgen core module" in tauon.log()
