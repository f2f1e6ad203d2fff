"""The real component fixtures are what they claim to be, and behave as designed on the reference host.

Components importing only plain WASI (python-raw, js, c) are served by the native `wasmtime serve`;
the WAGI command runs under `wasmtime run`; the legacy Spin core module is driven through its ABI with
wasmtime-py. python-sdk imports Spin interfaces the reference host lacks, so only its shape is checked here.
Builds are cached (scripts/build-components), so after the first run this file takes ~20 s, mostly
`wasmtime serve` start-up.
"""

from __future__ import annotations

import hashlib
import http.server
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from wasmtime import Engine, Func, Instance, Memory, Module, Store

from support.components import (
    component_path,
    component_world,
    free_port,
    reference_server,
    serve_reference,
)

pytestmark = pytest.mark.integration

EXPECTED_EXPORTS = {
    "python-sdk": "wasi:http/incoming-handler@0.2.0",
    "python-raw": "wasi:http/incoming-handler@0.2.6",
    "js": "wasi:http/incoming-handler@0.2.3",
    "c": "wasi:http/incoming-handler@0.2.0",
    "wagi-component": "wasi:cli/run@0.2.12",
}
UPSTREAM_BODY = b"upstream says hi"


def pattern(n: int) -> bytes:
    """What /big?n=N streams: byte i is i % 251."""
    return bytes(i % 251 for i in range(251)) * (n // 251) + bytes(range(n % 251))


# ---- shape --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED_EXPORTS))
def test_fixture_is_a_component_with_the_expected_export(name: str) -> None:
    world = component_world(component_path(name))
    assert EXPECTED_EXPORTS[name] in world.exports
    handlers = [e for e in world.exports if e.startswith(("wasi:http/", "wasi:cli/run", "fermyon:spin/"))]
    assert handlers == [EXPECTED_EXPORTS[name]]


@pytest.mark.parametrize("name", ["python-raw", "js", "c", "wagi-component"])
def test_plain_wasi_fixtures_import_only_wasi(name: str) -> None:
    imports = component_world(component_path(name)).imports
    assert imports
    assert [i for i in imports if not i.startswith("wasi:")] == []


def test_python_sdk_imports_the_spin_interfaces() -> None:
    imports = component_world(component_path("python-sdk")).imports
    for interface in (
        "fermyon:spin/key-value@2.0.0",
        "fermyon:spin/sqlite@2.0.0",
        "fermyon:spin/variables@2.0.0",
        "wasi:http/outgoing-handler@0.2.0",
    ):
        assert interface in imports


def test_c_component_is_tiny() -> None:
    assert component_path("c").stat().st_size < 16 * 1024


# ---- spin-legacy core module: drive the wit-bindgen 0.2 ABI directly ----------------------------------


def test_spin_legacy_module_follows_the_old_spin_abi() -> None:
    engine = Engine()
    module = Module.from_file(engine, str(component_path("spin-legacy")))
    assert {e.name for e in module.exports} == {
        "memory",
        "canonical_abi_realloc",
        "canonical_abi_free",
        "handle-http-request",
    }
    assert list(module.imports) == []
    store = Store(engine)
    exports = Instance(store, module, []).exports(store)
    memory, realloc, handle = (
        exports["memory"],
        exports["canonical_abi_realloc"],
        exports["handle-http-request"],
    )
    assert isinstance(memory, Memory) and isinstance(realloc, Func) and isinstance(handle, Func)
    uri = b"/legacy/path?x=1"
    uri_ptr = realloc(store, 0, 0, 1, len(uri))
    memory.write(store, uri, uri_ptr)
    ret = handle(store, 0, uri_ptr, len(uri), 0, 0, 0, 0, 1, 0, 0)
    assert isinstance(ret, int)
    record = bytes(memory.read(store, ret, ret + 28))
    status, has_headers, headers_ptr, headers_len, has_body, body_ptr, body_len = struct.unpack(
        "<H2xB3xiiB3xii", record
    )
    assert (status, has_headers, headers_len, has_body) == (200, 1, 1, 1)
    name_ptr, name_len, value_ptr, value_len = struct.unpack(
        "<iiii", bytes(memory.read(store, headers_ptr, headers_ptr + 16))
    )
    assert bytes(memory.read(store, name_ptr, name_ptr + name_len)) == b"content-type"
    assert bytes(memory.read(store, value_ptr, value_ptr + value_len)) == b"text/plain"
    assert bytes(memory.read(store, body_ptr, body_ptr + body_len)) == b"hello from spin-legacy " + uri


# ---- wagi-component under `wasmtime run` -------------------------------------------------------------


def test_wagi_component_prints_a_cgi_response() -> None:
    result = subprocess.run(
        [
            str(reference_server()),
            "run",
            "--env",
            "REQUEST_METHOD=POST",
            "--env",
            "PATH_INFO=/wagi/rest",
            "--env",
            "QUERY_STRING=a=1&b=2",
            str(component_path("wagi-component")),
            "extra-arg",
        ],
        input=b"the request body",
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\n\n")
    assert b"Content-Type: text/plain" in head.splitlines()
    lines = body.decode().splitlines()
    for expected in (
        "REQUEST_METHOD=POST",
        "PATH_INFO=/wagi/rest",
        "QUERY_STRING=a=1&b=2",
        "ARGV1=extra-arg",
        "BODY=the request body",
    ):
        assert expected in lines


# ---- served by the reference `wasmtime serve` --------------------------------------------------------


class _Upstream(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(203)
        self.send_header("content-length", str(len(UPSTREAM_BODY)))
        self.end_headers()
        self.wfile.write(UPSTREAM_BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """A loopback HTTP server for the outbound routes: GET -> 203 "upstream says hi"."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def files_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("files")
    (root / "static").mkdir()
    (root / "static" / "data.bin").write_bytes(bytes(range(256)) * 300)
    return root


@pytest.fixture(scope="module", params=["python-raw", "js"])
def served(request: pytest.FixtureRequest, files_root: Path) -> Iterator[tuple[str, str]]:
    """(fixture name, base URL) for the full-featured components on `wasmtime serve`."""
    name: str = request.param
    with serve_reference(component_path(name), dirs=[(files_root, "/")]) as url:
        yield name, url


def test_echo_returns_method_path_headers_and_body(served: tuple[str, str]) -> None:
    name, url = served
    body = bytes(range(256)) * 1000 + b"tail"
    response = httpx.put(
        f"{url}/echo/some/where?q=1&r=two",
        content=body,
        headers=[("x-fixture", "yes"), ("x-dup", "a"), ("x-dup", "b")],
        timeout=30,
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    doc = response.json()
    assert doc["method"] == "PUT"
    assert doc["path"] == "/echo/some/where?q=1&r=two"
    assert ["x-fixture", "yes"] in doc["headers"]
    assert doc["body_len"] == len(body)
    assert doc["body_sha256"] == hashlib.sha256(body).hexdigest()
    # python-raw sees the raw wasi:http fields; JS's Fetch Headers joins repeated names.
    dups = [value for key, value in doc["headers"] if key == "x-dup"]
    assert dups == (["a", "b"] if name == "python-raw" else ["a, b"])


def test_big_streams_the_pattern(served: tuple[str, str]) -> None:
    _, url = served
    n = 3 * 1024 * 1024 + 7
    response = httpx.get(f"{url}/big?n={n}", timeout=60)
    assert response.status_code == 200
    assert response.content == pattern(n)


def test_outbound_relays_the_upstream_response(served: tuple[str, str], upstream: str) -> None:
    _, url = served
    response = httpx.get(f"{url}/outbound", params={"url": f"{upstream}/anything"}, timeout=30)
    assert (response.status_code, response.content) == (203, UPSTREAM_BODY)


def test_outbound_failure_is_reported_as_502_with_the_error(served: tuple[str, str]) -> None:
    name, url = served
    closed = f"http://127.0.0.1:{free_port()}/"  # bound then released: nobody listens
    response = httpx.get(f"{url}/outbound", params={"url": closed}, timeout=30)
    assert response.status_code == 502
    expected = "ConnectionRefused" if name == "python-raw" else "NetworkError"
    assert response.text.startswith("error: ") and expected in response.text


def test_unknown_route_is_404(served: tuple[str, str]) -> None:
    _, url = served
    response = httpx.get(f"{url}/nowhere", timeout=30)
    assert (response.status_code, response.text) == (404, "no such route\n")


@pytest.mark.parametrize("served", ["js"], indirect=True)
def test_js_reads_files_from_the_mounted_root(served: tuple[str, str], files_root: Path) -> None:
    _, url = served
    response = httpx.get(f"{url}/files/static/data.bin", timeout=30)
    assert response.status_code == 200
    assert response.content == (files_root / "static" / "data.bin").read_bytes()
    missing = httpx.get(f"{url}/files/static/absent.txt", timeout=30)
    assert (missing.status_code, missing.text) == (404, "error: no-entry\n")


def test_c_component_says_hello_and_echoes_the_path() -> None:
    with serve_reference(component_path("c")) as url:
        hello = httpx.get(f"{url}/", timeout=30)
        assert (hello.status_code, hello.text) == (200, "hello from c")
        assert hello.headers["content-type"] == "text/plain"
        assert hello.headers["content-length"] == "12"
        echoed = httpx.get(f"{url}/echo-path/x/y?z=1", timeout=30)
        assert (echoed.status_code, echoed.text) == (200, "/echo-path/x/y?z=1")
