"""Component dependencies (spin-spec §2.5, §1.2-1.3), pushed as `spin registry push --compose=false`
pushes them (the dependency as its own wasm layer) and served by the real tauon process after it
composes them, against the same app pushed already composed.

Fixtures (scripts/build-componentize-fixtures): `dep-main` imports tauon-fixtures:deps/greet@0.1.0,
`dep-greeter` exports it (its `fetch` makes an outbound HTTP request), `dep-composed` is the two
composed with `wasm-tools compose` at build time.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.apps import app_file, push_app
from support.componentize import fixture
from support.components import component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.runtimes import FALLBACK
from support.spinpush import SpinAppSpec, SpinComponent, SpinDependency

pytestmark = pytest.mark.integration

GREET = "tauon-fixtures:deps/greet@0.1.0"
DENIED = 'error 38: "wasi:http/outgoing-handler" is not permitted'


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(203)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def _app(name: str, deps: dict[str, SpinDependency], *, upstream: int,
         wasm: bytes | None = None) -> SpinAppSpec:
    component = SpinComponent(id="main", wasm=wasm or fixture("dep-main"), dependencies=deps,
                              metadata={"allowed_outbound_hosts": [f"http://127.0.0.1:{upstream}"],
                                        "key_value_stores": ["default"]},
                              config={"greeting": "{{ greeting }}"})
    return SpinAppSpec(name=name, components=[component], triggers=[{"route": "/...", "component": "main"}],
                       variables={"greeting": {"default": "hi"}})


def _greeter(**kw: Any) -> SpinDependency:
    return SpinDependency(fixture("dep-greeter"), **kw)


def _status(tauon: TauonProcess) -> dict[str, dict[str, Any]]:
    assert tauon.admin is not None
    return {a["app"]: a for a in httpx.get(f"{tauon.admin}/status").json()["apps"]}


def _wait_error(tauon: TauonProcess, app: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    row: dict[str, Any] = {}
    while time.monotonic() < deadline:
        row = _status(tauon).get(app, {})
        if row.get("error"):
            return row
        time.sleep(0.1)
    raise AssertionError(f"{app} reported no error; last: {row}")


GOOD = {
    "uncomposed": {GREET: _greeter(inherit="All")},
    "by-package": {"tauon-fixtures:deps": _greeter(inherit="All")},
    "deny-all": {GREET: _greeter()},
    "inherit-outbound": {GREET: _greeter(inherit={"Some": ["allowed_outbound_hosts"]})},
    "inherit-variables": {GREET: _greeter(inherit={"Some": ["variables"]})},
    "inherit-kv": {GREET: _greeter(inherit={"Some": ["key_value_stores", "no-such-set"]})},
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer,
           upstream: int) -> Iterator[tuple[TauonProcess, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("dependencies")
    apps = {name: _app(name, deps, upstream=upstream) for name, deps in GOOD.items()}
    apps["composed"] = _app("composed", {}, upstream=upstream, wasm=fixture("dep-composed"))
    urls = {}
    with run_tauon(tmp, "--workers", "1", admin=True) as tauon:
        for name, app in apps.items():
            port = free_port()
            ref = push_app(registry, f"deps/{name}", "v1", app)
            (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port))
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=120)
        yield tauon, urls


def test_dependency_layer_is_pushed_uncomposed(registry: RegistryServer, upstream: int) -> None:
    from support.spinpush import build_artifact

    artifact = build_artifact(_app("x", GOOD["uncomposed"], upstream=upstream))
    assert artifact.lock is not None
    dep = artifact.lock["components"][0]["dependencies"][GREET]
    assert dep["export"] is None and dep["inherit"] == "All" and dep["source"]["digest"] in artifact.blobs


def test_uncomposed_answers_as_composed(served: tuple[TauonProcess, dict[str, str]]) -> None:
    tauon, urls = served
    answers = {name: httpx.get(f"{urls[name]}/hello/tauon")
               for name in ("uncomposed", "by-package", "composed")}
    for r in answers.values():
        assert (r.status_code, r.text) == (200, "hello, tauon, from the greeter dependency")
    assert "composed with 1 dependency" in tauon.log()
    assert all(row["state"] == "running" and row["error"] is None for row in _status(tauon).values())


def test_inherited_outbound_reaches_the_host(served: tuple[TauonProcess, dict[str, str]],
                                             upstream: int) -> None:
    _, urls = served
    for name in ("uncomposed", "inherit-outbound", "composed"):
        assert httpx.get(f"{urls[name]}/fetch/127.0.0.1:{upstream}").text == "status 203", name


def test_outbound_is_denied_unless_inherited(served: tuple[TauonProcess, dict[str, str]],
                                             upstream: int) -> None:
    _, urls = served
    for name in ("deny-all", "inherit-variables"):
        r = httpx.get(f"{urls[name]}/fetch/127.0.0.1:{upstream}")
        assert (r.status_code, r.text) == (200, DENIED), name
        # the rest of the dependency still works
        assert httpx.get(f"{urls[name]}/hello/x").text == "hello, x, from the greeter dependency"


@pytest.mark.parametrize(("name", "answer"), [
    ("uncomposed", "kv=ok;greeting=hi"),
    ("composed", "kv=ok;greeting=hi"),
    ("deny-all", "kv=error 2;greeting=error 1"),  # access-denied; undefined
    ("inherit-outbound", "kv=error 2;greeting=error 1"),
    ("inherit-variables", "kv=error 2;greeting=hi"),
    ("inherit-kv", "kv=ok;greeting=error 1"),
])
def test_spin_capabilities_follow_inherit(served: tuple[TauonProcess, dict[str, str]], name: str,
                                          answer: str) -> None:
    _, urls = served
    assert httpx.get(f"{urls[name]}/spin").text == answer


def test_inherited_outbound_is_still_bounded_by_allowed_hosts(
        served: tuple[TauonProcess, dict[str, str]]) -> None:
    """Inheriting means the component's own allowed_outbound_hosts, not everything."""
    _, urls = served
    r = httpx.get(f"{urls['inherit-outbound']}/fetch/127.0.0.1:9")
    assert r.text == "error 15", r.text  # HTTP-request-denied, from tauon's host


@pytest.mark.parametrize(("name", "deps", "message"), [
    ("unmatched", {"tauon-fixtures:other": "greeter"},
     "dependency 'tauon-fixtures:other' doesn't match any imports of component 'main'"),
    ("no-export", {GREET: "greeter:nope"},
     f"dependency '{GREET}' doesn't export 'nope' to satisfy import '{GREET}'"),
    ("conflict", {GREET: "greeter", "tauon-fixtures:deps": "greeter"},
     f"component 'main' has dependency conflicts: import '{GREET}' satisfied by dependencies: "
     f"'{GREET}, tauon-fixtures:deps'"),
])
def test_unsatisfiable_dependency_is_refused(served: tuple[TauonProcess, dict[str, str]],
                                             registry: RegistryServer, upstream: int, name: str,
                                             deps: dict[str, str], message: str) -> None:
    tauon, urls = served
    spin_deps = {dep: _greeter(inherit="All", export=how.partition(":")[2] or None)
                 for dep, how in deps.items()}
    port = free_port()
    ref = push_app(registry, f"deps/{name}", "v1", _app(name, spin_deps, upstream=upstream))
    (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port))
    row = _wait_error(tauon, f"{name}.json")
    assert row["state"] == "failed", row
    assert f"{name}.json" in row["error"] and message in row["error"], row["error"]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/hello/x")
    assert httpx.get(f"{urls['uncomposed']}/hello/y").status_code == 200


def test_bad_update_keeps_the_last_good_generation(served: tuple[TauonProcess, dict[str, str]],
                                                   registry: RegistryServer, upstream: int) -> None:
    tauon, _ = served
    port = free_port()
    v1 = push_app(registry, "deps/update", "v1", _app("update", GOOD["uncomposed"], upstream=upstream))
    (tauon.watch_dir / "update.json").write_text(app_file(v1, port))
    wait_http(f"http://127.0.0.1:{port}/hello/v1", contains="hello, v1", timeout=60)
    v2 = push_app(registry, "deps/update", "v2",
                  _app("update", {"unknown-plain": _greeter(inherit="All")}, upstream=upstream))
    (tauon.watch_dir / "update.json").write_text(app_file(v2, port))
    row = _wait_error(tauon, "update.json")
    assert row["state"] == "running" and row["generation"] == 1
    assert "dependency 'unknown-plain' doesn't match any imports of component 'main'" in row["error"]
    assert httpx.get(f"http://127.0.0.1:{port}/hello/v1").text == "hello, v1, from the greeter dependency"


def test_compositions_fall_back_to_the_wasmtime_path_on_the_tauon_runtime(
        tmp_path: Path, registry: RegistryServer, upstream: int) -> None:
    """tauon's own component runtime does not run compositions (a fused adapter) yet: under
    `--component-runtime tauon` both the image composed at build and the app tauon composes at load say
    so once at load, naming app, component and feature, and serve on the wasmtime path as they would
    by default; a plain component beside them runs on the tauon runtime."""
    c_wasm = component_path("c").read_bytes()
    apps = {"composed": _app("composed", {}, upstream=upstream, wasm=fixture("dep-composed")),
            "uncomposed": _app("uncomposed", GOOD["uncomposed"], upstream=upstream),
            "plain": SpinAppSpec(name="plain", components=[SpinComponent(id="main", wasm=c_wasm)],
                                 triggers=[{"route": "/...", "component": "main"}])}
    urls = {}
    with run_tauon(tmp_path, "--component-runtime", "tauon", fallback_ok=True) as tauon:
        for name, app in apps.items():
            port = free_port()
            ref = push_app(registry, f"deps/fallback-{name}", "v1", app)
            (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, port))
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_http(f"{url}/.well-known/spin/health", timeout=120)
        for name in ("composed", "uncomposed"):
            r = httpx.get(f"{urls[name]}/hello/tauon")
            assert (r.status_code, r.text) == (200, "hello, tauon, from the greeter dependency")
        log = tauon.log()
    fallbacks = [line for line in log.splitlines() if FALLBACK in line]
    assert len(fallbacks) == 2, fallbacks
    for name in ("composed", "uncomposed"):
        [line] = [line for line in fallbacks if re.search(rf"(?<![\w-]){name}\.json/main: ", line)]
        assert "fused adapter" in line and "it runs on the wasmtime path" in line
    assert "plain.json/main: runs on the tauon component runtime" in log
