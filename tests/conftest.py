"""Shared fixtures: a real docker-registry, with and without basic auth, cache dirs, and a wasmtime engine."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import runtimes
from support.registry import REGISTRY_PASSWORD, REGISTRY_USER, RegistryServer, make_htpasswd, run_registry
from tauon.wasm.engine import WasmEngine

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ starts real processes: mark it, so that
    `pytest -m "not integration"` is the fast unit run whatever a module declares."""
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that uses `component_runtime` (directly or through a fixture) runs once per runtime, or on
    those its `runtimes` marker names (see support/runtimes.py)."""
    if "component_runtime" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("runtimes")
    names = tuple(marker.args) if marker is not None else runtimes.RUNTIMES
    unknown = set(names) - set(runtimes.RUNTIMES)
    if unknown or not names:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: runtimes{names}: "
                                f"not among {runtimes.RUNTIMES}")
    metafunc.parametrize("component_runtime", names, indirect=True, scope="module")


@pytest.fixture(scope="module")
def component_runtime(request: pytest.FixtureRequest) -> Iterator[str]:
    """The component runtime this test runs on; `run_tauon` passes it to the daemon meanwhile."""
    with runtimes.selecting(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _runtime_only_where_asked(request: pytest.FixtureRequest) -> Iterator[None]:
    """A module-scoped `component_runtime` stays set up between its tests: a test of the module that
    does not use it gets the default runtime, not the last one selected."""
    if "component_runtime" in request.fixturenames:
        yield
        return
    with runtimes.selecting(None):
        yield


_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A test that leaves a non-daemon thread blocked would make the interpreter wait for it forever
    after the summary (one stuck barrier once held CI until its time limit). Give stragglers a
    moment, then name them and exit: the run fails, and it ends."""
    deadline = time.monotonic() + 30
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threading.enumerate()
             if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if stuck:
        sys.stderr.write(f"tests left non-daemon threads running: {', '.join(stuck)}\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(_exit_status or 1)


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous plain-HTTP registry. Tests that stop it must restart it (`with registry.stopped():`)."""
    with run_registry(tmp_path_factory.mktemp("registry")) as server:
        yield server


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry requiring HTTP basic auth as REGISTRY_USER / REGISTRY_PASSWORD (htpasswd, bcrypt)."""
    root = tmp_path_factory.mktemp("auth-registry")
    htpasswd = make_htpasswd(root / "htpasswd", REGISTRY_USER, REGISTRY_PASSWORD)
    with run_registry(root / "server", htpasswd=htpasswd) as server:
        yield server


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `--cache-dir` for the daemon tests that are not about the cache or cold starts: each
    fixture (the Python ones are 20-40 MB) compiles once per session on each component runtime,
    not once per test. Content-addressed, so tests cannot see each other's apps through it."""
    return tmp_path_factory.mktemp("shared-cache")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> WasmEngine:
    """A wasmtime engine with an empty compiled-code cache, for the tests that drive tauon's component
    runtime directly (one per module: modules that need other settings define their own)."""
    return WasmEngine(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
