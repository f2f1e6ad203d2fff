"""A real Spin 4 app (spin-sdk 5.0.0, componentize-py 0.25.1: the python-p3 fixture of
scripts/build-components-extra) through the registry and the `tauon` process, served by the wasi:http
0.3 executor on tauon's own component runtime (component-model async): echo, large bodies in and out,
its 404, and an app beside it serving. A p3 component using what the runtime does not support yet (here
the `task.cancel` builtin) is refused at load with the reason, and its neighbour serves.

The fixture's world is Spin's `spin:up/http-trigger@4.1.0`: it exports `wasi:http/handler@0.3.0` and
imports the p3 and p2 WASI interfaces side by side.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import wasmtime

from support.apps import app_file, push_app
from support.components import component_path, component_world, extra_component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

def p3_handler(body: str, builtins: str = "", imports: str = "", wiring: str = "") -> bytes:
    """A small WASIp3 component exporting `wasi:http/handler@0.3.0#handle` (callback form) whose core
    `handle` runs `body`."""
    return bytes(wasmtime.wat2wasm(f"""(component
  (import "wasi:http/types@0.3.0" (instance $types
    (export "request" (type (sub resource)))
    (export "response" (type (sub resource)))))
  (alias export $types "request" (type $request))
  (alias export $types "response" (type $response))
  (type $handle (func async (param "request" (own $request)) (result (result (own $response)))))
  {builtins}
  (core module $m
    {imports}
    (memory (export "memory") 1)
    (func (export "handle") (param i32) (result i32) {body})
    (func (export "cb") (param i32 i32 i32) (result i32) (i32.const 0)))
  (core instance $i (instantiate $m {wiring}))
  (alias core export $i "memory" (core memory $mem))
  (func $h (type $handle)
    (canon lift (core func $i "handle") async (memory $mem) (callback (core func $i "cb"))))
  (instance $handler (export "handle" (func $h)))
  (export "wasi:http/handler@0.3.0" (instance $handler))
)"""))


def test_the_fixture_is_a_wasip3_spin4_component() -> None:
    world = component_world(extra_component_path("python-p3"))
    assert "wasi:http/handler@0.3.0" in world.exports
    assert any(name.startswith("spin:key-value/key-value@3.") for name in world.imports)
    assert any(name.startswith("wasi:http/client@0.3.") for name in world.imports)


def _app(name: str, wasm: bytes, **metadata: object) -> SpinAppSpec:
    return SpinAppSpec(name=name, components=[SpinComponent(id=name, wasm=wasm, metadata=dict(metadata))],
                       triggers=[{"route": "/...", "component": name}])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, registry: RegistryServer,
           shared_cache: Path) -> Iterator[tuple[str, TauonProcess]]:
    """The python-p3 app served by one tauon process (the 25 MB component compiles once)."""
    tmp = tmp_path_factory.mktemp("p3")
    wasm = extra_component_path("python-p3").read_bytes()
    ref = push_app(registry, "wasip3/python", "v1", _app("p3", wasm, key_value_stores=["default"]))
    port = free_port()
    with run_tauon(tmp, cache_dir=shared_cache) as tauon:
        (tauon.watch_dir / "p3.json").write_text(app_file(ref, port))
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/echo", timeout=300)
        yield url, tauon


def test_echo(served: tuple[str, TauonProcess]) -> None:
    url, _ = served
    reply = httpx.post(f"{url}/echo", content=b"hello p3", headers={"x-probe": "p1"}, timeout=60)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/plain"
    assert reply.text == "POST /echo probe=p1 body=hello p3"
    assert httpx.get(f"{url}/echo", timeout=60).text == "GET /echo probe= body="


def test_a_large_request_body_streams_in(served: tuple[str, TauonProcess]) -> None:
    url, _ = served
    body = bytes(i % 253 for i in range(3 << 20))  # 3 MiB: past every buffer on the way
    reply = httpx.post(f"{url}/sha", content=body, timeout=120)
    assert reply.status_code == 200
    assert reply.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def test_a_large_response_body_streams_out(served: tuple[str, TauonProcess]) -> None:
    url, _ = served
    n = 3 << 20
    reply = httpx.get(f"{url}/big", params={"n": n}, timeout=120)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/octet-stream"
    pattern = b"0123456789abcdef"
    assert reply.content == (pattern * (n // 16 + 1))[:n]


def test_an_unknown_route_is_the_apps_404(served: tuple[str, TauonProcess]) -> None:
    url, _ = served
    reply = httpx.get(f"{url}/nowhere", timeout=60)
    assert reply.status_code == 404
    assert reply.text == "no route /nowhere"


def test_requests_run_concurrently_and_each_gets_its_own_answer(served: tuple[str, TauonProcess]) -> None:
    url, _ = served
    with httpx.Client(timeout=120) as client:
        bodies = [bytes([65 + i]) * (100_000 * (i + 1)) for i in range(4)]
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda b: client.post(f"{url}/sha", content=b), bodies))
    for body, reply in zip(bodies, replies, strict=True):
        assert reply.text == f"{len(body)} {hashlib.sha256(body).hexdigest()}"


def test_an_unsupported_p3_component_is_refused_with_the_reason_and_its_neighbour_serves(
        tmp_path: Path, registry: RegistryServer) -> None:
    cancelling = p3_handler("(i32.const 0)", builtins="(core func $cancel (canon task.cancel))",
                            imports='(import "host" "cancel" (func))',
                            wiring='(with "host" (instance (export "cancel" (func $cancel))))')
    p3_ref = push_app(registry, "wasip3/cancelling", "v1", _app("p3", cancelling))
    c_ref = push_app(registry, "wasip3/neighbour", "v1", _app("c", component_path("c").read_bytes()))
    p3_port, c_port = free_port(), free_port()
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "c.json").write_text(app_file(c_ref, c_port))
        wait_http(f"http://127.0.0.1:{c_port}/", timeout=60)
        (tauon.watch_dir / "p3.json").write_text(app_file(p3_ref, p3_port))
        log = tauon.wait_log(r"p3\.json: .*wasi:http/handler@0\.3\.0", timeout=120)
        line = next(line for line in log.splitlines() if "p3.json:" in line and "handler@0.3.0" in line)
        assert "component 'p3'" in line and "does not support yet" in line
        assert "the canonical builtin task.cancel" in line
        assert httpx.get(f"http://127.0.0.1:{c_port}/").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{p3_port}/echo", timeout=2)


@pytest.mark.parametrize(("body", "why"), [
    ("unreachable", "unreachable"),
    ("(i32.const 0)", "exited without calling task.return"),
    ("(i32.const 0x12)", "handle index 1 is"),  # WAIT on a handle that is not a waitable set
])
def test_a_failing_p3_guest_is_a_500_and_the_app_keeps_serving(
        tmp_path: Path, registry: RegistryServer, body: str, why: str) -> None:
    ref = push_app(registry, "wasip3/failing", "v1", _app("bad", p3_handler(body)))
    port = free_port()
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "bad.json").write_text(app_file(ref, port))
        first = wait_http(f"http://127.0.0.1:{port}/", status=500, timeout=120)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 500
        assert first.status_code == 500
        assert why in tauon.wait_log(re.escape(why), timeout=30)


def test_key_value_through_the_p3_host_interfaces(served: tuple[str, TauonProcess]) -> None:
    """key-value@3 (the p3host branch's interface) under the default `--component-runtime`: a p3 app
    always runs on tauon's runtime."""
    url, _ = served
    assert httpx.get(f"{url}/kv/k1", timeout=60).status_code == 404
    assert httpx.put(f"{url}/kv/k1", content=b"v\x00\xff", timeout=60).text == "stored"
    reply = httpx.get(f"{url}/kv/k1", timeout=60)
    assert (reply.status_code, reply.content) == (200, b"v\x00\xff")
    assert httpx.delete(f"{url}/kv/k1", timeout=60).text == "deleted"
    assert httpx.get(f"{url}/kv/k1", timeout=60).status_code == 404
