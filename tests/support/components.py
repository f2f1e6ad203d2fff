"""Real Spin component fixtures and the native reference server, built or installed on demand.

scripts/build-components does the building and caching (tests/fixtures/build/components/), and installs
wasm-tools into .cache/venv-tools; scripts/install-reference installs `wasmtime serve`.
"""

from __future__ import annotations

import contextlib
import functools
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from support.ports import free_port as free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-components"
REFERENCE_SCRIPT = ROOT / "scripts" / "install-reference"
BUILD_DIR = ROOT / "tests" / "fixtures" / "build" / "components"
WASM_TOOLS = ROOT / ".cache" / "venv-tools" / "bin" / "wasm-tools"
EXTRA_SCRIPT = ROOT / "scripts" / "build-components-extra"
EXTRA_DIR = ROOT / "tests" / "fixtures" / "build" / "components-extra"

COMPONENT_NAMES = ("python-sdk", "python-outbound", "python-raw", "js", "js-spin", "js-redis", "js-postgres",
                   "c", "c-sockets", "c-spin-http", "c-postgres", "c-inline", "wagi-component", "spin-legacy",
                   "python-redis", "redis-legacy")


@functools.cache
def component_path(name: str) -> Path:
    """Return the built fixture `name` (one of COMPONENT_NAMES), building it first if it is stale.

    spin-legacy and redis-legacy are core modules (binaries of tests/fixtures/components/wat/*.wat); the
    others are components.
    """
    if name not in COMPONENT_NAMES:
        raise ValueError(f"unknown component fixture {name!r}; known: {', '.join(COMPONENT_NAMES)}")
    result = subprocess.run([str(BUILD_SCRIPT), name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/build-components {name} failed:\n{result.stdout}{result.stderr}")
    artifact = BUILD_DIR / f"{name}.wasm"
    if not artifact.is_file():
        raise RuntimeError(f"scripts/build-components reported success but {artifact} is missing")
    return artifact


@functools.cache
def extra_component_path(name: str) -> Path:
    """Return the scripts/build-components-extra fixture `name`, building it first if it is stale."""
    result = subprocess.run([str(EXTRA_SCRIPT), name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/build-components-extra {name} failed:\n{result.stdout}{result.stderr}")
    return EXTRA_DIR / f"{name}.wasm"


def wasm_tools() -> Path:
    """The wasm-tools binary that scripts/build-components installs (building any fixture installs it)."""
    if not WASM_TOOLS.is_file():
        component_path("spin-legacy")  # the cheapest build; it installs the tool
    return WASM_TOOLS


@dataclass(frozen=True)
class World:
    imports: tuple[str, ...]
    exports: tuple[str, ...]


def component_world(path: Path) -> World:
    """The imported and exported interface names of a component, per `wasm-tools component wit`."""
    result = subprocess.run(
        [str(wasm_tools()), "component", "wit", str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"wasm-tools component wit {path} failed: {result.stderr.strip()}")
    imports: list[str] = []
    exports: list[str] = []
    in_root = False
    for line in result.stdout.splitlines():
        if line.startswith("world root {"):
            in_root = True
        elif in_root and line.startswith("}"):
            break
        elif in_root:
            # Lines look like "  import wasi:io/error@0.2.0;" or "  export exports: interface {".
            words = line.split()
            if len(words) >= 2 and words[0] in ("import", "export"):
                (imports if words[0] == "import" else exports).append(words[1].rstrip(";:"))
    return World(tuple(imports), tuple(exports))


@functools.cache
def reference_server() -> Path:
    """Path of the native `wasmtime` CLI (49.0.3) used as the reference `wasmtime serve`."""
    result = subprocess.run([str(REFERENCE_SCRIPT)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/install-reference failed:\n{result.stdout}{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])



@contextlib.contextmanager
def serve_reference(
    component: Path, dirs: Sequence[tuple[Path, str]] = (), startup_timeout: float = 90.0,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Run `wasmtime serve -Scli` on a free loopback port for a wasi:http component; yield its base URL.

    `dirs` are (host directory, guest path) pairs to mount. Startup compiles the component (seconds for the
    big ones; wasmtime's own compile cache makes later runs fast).
    """
    port = free_port()
    command = [str(reference_server()), "serve", "-Scli", "--addr", f"127.0.0.1:{port}", *extra_args]
    for host, guest in dirs:
        command += ["--dir", f"{host}::{guest}"]
    command.append(str(component))
    # A file, not a pipe: a chatty guest must not block the server on a full pipe buffer.
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_until_serving(process, log, f"http://127.0.0.1:{port}", component, startup_timeout)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_serving(
    process: subprocess.Popen[bytes], log: IO[bytes], url: str, component: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            raise RuntimeError(f"wasmtime serve {component.name} exited early:\n{output}")
        try:
            httpx.get(f"{url}/", timeout=5.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"wasmtime serve {component.name} not answering after {timeout} s"
                ) from None
            time.sleep(0.1)
