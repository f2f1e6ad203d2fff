"""Untrusted wasm is compiled (and its allocator probed) in a child process with a memory cap and a
wall-clock budget: a compile bomb, a looping allocator or a stuck compile fails its own app with an
error naming the component and the limit, while the daemon and every other app keep serving.

The hostile modules are built in the tests (support/hostile.py) or by scripts/build-components-extra.
Without the sandbox the daemon itself would compile the bomb, so that daemon runs under a 3 GiB
RLIMIT_DATA: on such a build it aborts (as reported) instead of taking the test machine's memory.
"""

from __future__ import annotations

import re
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app, push_sleep_app
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.hostile import compile_bomb, looping_realloc, slow_compile
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

GUARD = 3 << 30
COMPILE_CHILD = "tauon.wasm.compile_child"


def guard(tauon: TauonProcess) -> None:
    resource.prlimit(tauon.proc.pid, resource.RLIMIT_DATA, (GUARD, GUARD))


def push_wasm_app(registry: RegistryServer, repo: str, component: str, wasm: bytes, *,
                  wagi: bool = True) -> str:
    trigger: dict[str, object] = {"route": "/...", "component": component}
    if wagi:
        trigger["executor"] = {"type": "wagi"}
    app = SpinAppSpec(name=component, version="1.0.0", components=[SpinComponent(id=component, wasm=wasm)],
                      triggers=[trigger])
    return push_app(registry, repo, "v1", app)


def compile_children(pid: int) -> list[int]:
    """Live compile child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and COMPILE_CHILD.encode() in cmdline and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_compile_bomb_allocates_past_2_gib_when_compiled_without_the_sandbox() -> None:
    """The measurement behind the bomb: compiled by wasmtime directly under a 2 GiB data limit, its
    16 KB abort the process in seconds (Rust's allocator gives up: SIGABRT)."""
    wasm = compile_bomb()
    assert len(wasm) < 20_000
    code = ("import resource, sys, wasmtime\n"
            "resource.setrlimit(resource.RLIMIT_DATA, (2 << 30, 2 << 30))\n"
            "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
            "wasmtime.Module(wasmtime.Engine(), sys.stdin.buffer.read())\n")
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code], input=wasm, capture_output=True, timeout=120,
                            check=False)
    assert result.returncode == -signal.SIGABRT, result.stderr[-2000:]
    assert b"memory allocation of" in result.stderr
    print(f"bomb: {len(wasm)} bytes, aborted at the 2 GiB limit after {time.monotonic() - started:.1f} s")


def test_a_compile_bomb_fails_its_app_and_the_last_good_generation_keeps_serving(
        tmp_path: Path, registry: RegistryServer) -> None:
    good = push_sleep_app(registry, "sandbox/shop", "v1", version="v1")
    other = push_sleep_app(registry, "sandbox/other", "v1", version="other")
    bomb = push_wasm_app(registry, "sandbox/bomb", "bomb", compile_bomb())
    shop_port, other_port = free_port(), free_port()
    with run_tauon(tmp_path, "--compile-memory-mib", "512", admin=True) as tauon:
        guard(tauon)
        (tauon.watch_dir / "other.json").write_text(app_file(other, other_port))
        (tauon.watch_dir / "shop.json").write_text(app_file(good, shop_port))
        wait_http(f"http://127.0.0.1:{other_port}/?0", contains="in other", timeout=60)
        wait_http(f"http://127.0.0.1:{shop_port}/?0", contains="in v1", timeout=60)
        (tauon.watch_dir / "shop.json").write_text(app_file(bomb, shop_port))
        pattern = (r"shop\.json: field 'components\.bomb\.source': component 'bomb': compiling its wasm "
                   r"needed more than 512 MiB of memory \(--compile-memory-mib\)[^\n]*; generation 1 "
                   r"keeps serving; retrying in")
        tauon.wait_log(pattern, timeout=90, count=2)  # and once more after the backoff
        assert tauon.proc.poll() is None
        assert "in v1" in httpx.get(f"http://127.0.0.1:{shop_port}/?0", timeout=10).text
        assert "in other" in httpx.get(f"http://127.0.0.1:{other_port}/?0", timeout=10).text
        status = httpx.get(f"{tauon.admin}/status", timeout=5).json()
        shop = next(app for app in status["apps"] if app["reference"] == bomb)
        assert shop["state"] == "running" and "512 MiB" in shop["error"]


def test_a_looping_allocator_fails_compile_in_bounded_time_naming_the_component(
        tmp_path: Path, registry: RegistryServer) -> None:
    loopy = push_wasm_app(registry, "sandbox/loopy", "loopy", looping_realloc().read_bytes(), wagi=False)
    other = push_sleep_app(registry, "sandbox/other2", "v1", version="other")
    loopy_port, other_port = free_port(), free_port()
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "other.json").write_text(app_file(other, other_port))
        wait_http(f"http://127.0.0.1:{other_port}/?0", contains="in other", timeout=60)
        started = time.monotonic()
        (tauon.watch_dir / "loopy.json").write_text(app_file(loopy, loopy_port))
        tauon.wait_log(r"loopy\.json: field 'components\.loopy\.source': component 'loopy': [^\n]*"
                       r"probing its allocator \(cabi_realloc\) at compile time did not finish within 2 s",
                       timeout=90)
        print(f"looping allocator refused after {time.monotonic() - started:.1f} s")
        assert tauon.proc.poll() is None
        assert "in other" in httpx.get(f"http://127.0.0.1:{other_port}/?0", timeout=10).text


def test_a_compile_past_its_budget_is_stopped(tmp_path: Path, registry: RegistryServer) -> None:
    slow = push_wasm_app(registry, "sandbox/slow", "slow", slow_compile())
    with run_tauon(tmp_path, "--compile-timeout", "3") as tauon:
        (tauon.watch_dir / "slow.json").write_text(app_file(slow, free_port()))
        tauon.wait_log(r"slow\.json: field 'components\.slow\.source': component 'slow': compiling its wasm "
                       r"took longer than 3 s \(--compile-timeout\); the compile was stopped", timeout=60)
        assert tauon.proc.poll() is None


def test_sigterm_during_a_stuck_compile_kills_it_and_exits_promptly(
        tmp_path: Path, registry: RegistryServer) -> None:
    slow = push_wasm_app(registry, "sandbox/stuck", "stuck", slow_compile())
    with run_tauon(tmp_path, "--compile-timeout", "600", "--drain-timeout", "30", admin=True) as tauon:
        (tauon.watch_dir / "stuck.json").write_text(app_file(slow, free_port()))
        deadline = time.monotonic() + 30
        children: list[int] = []
        while not children:
            assert time.monotonic() < deadline, f"no compile child within 30 s:\n{tauon.log()}"
            time.sleep(0.05)
            children = compile_children(tauon.proc.pid)
        time.sleep(1.0)  # well inside the compile (tens of seconds)
        assert all(alive(pid) for pid in children)
        started = time.monotonic()
        tauon.signal(signal.SIGTERM)
        code = tauon.proc.wait(15)
        elapsed = time.monotonic() - started
        assert code == 0, tauon.log()
        assert elapsed < 10, f"exit took {elapsed:.1f} s"
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in children):
            assert time.monotonic() < deadline, f"compile child {children} outlived the daemon"
            time.sleep(0.05)


def test_a_warm_restart_spawns_no_compile_child(tmp_path: Path, registry: RegistryServer) -> None:
    """Two apps share the image: its wasm is compiled once, by the daemon (the worker process and the
    second app load it from the cache), and not at all after a restart. The cold start's child is
    started while a pull downloads (wasm/headstart.py); the warm restart downloads nothing, so
    starts none that way either, and no child outlives the start."""
    ref = push_sleep_app(registry, "sandbox/warm", "v1", version="warm")
    ports = free_port(), free_port()
    spawned = r"compiling sleepy in a child process"
    ahead = r"started a compile child while its pull downloads"
    for run, expected in enumerate((1, 0)):
        watch_dir = tmp_path / f"run{run}" / "apps"
        watch_dir.mkdir(parents=True)
        for name, port in zip(("warm", "twin"), ports, strict=True):
            # In place before start: the worker starts once they serve and is sent both at once.
            (watch_dir / f"{name}.json").write_text(app_file(ref, port))
        with run_tauon(tmp_path / f"run{run}", "--workers", "2", cache_dir=tmp_path / "cache") as tauon:
            for port in ports:
                wait_http(f"http://127.0.0.1:{port}/?0", contains="in warm", timeout=60)
            log = tauon.wait_log(r"worker 1 \(pid \d+\) serves 2 apps", timeout=60)  # built them too
            assert len(re.findall(spawned, log)) == expected, log
            assert bool(re.findall(ahead, log)) == bool(expected), log
            assert compile_children(tauon.proc.pid) == []


def test_a_compile_child_dies_with_a_daemon_killed_outright(tmp_path: Path, registry: RegistryServer) -> None:
    slow = push_wasm_app(registry, "sandbox/orphan", "orphan", slow_compile())
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "orphan.json").write_text(app_file(slow, free_port()))
        deadline = time.monotonic() + 30
        children: list[int] = []
        while not children:
            assert time.monotonic() < deadline, f"no compile child within 30 s:\n{tauon.log()}"
            time.sleep(0.05)
            children = compile_children(tauon.proc.pid)
        tauon.proc.kill()
        tauon.proc.wait(10)
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in children):
            assert time.monotonic() < deadline, f"compile child {children} outlived a killed daemon"
            time.sleep(0.05)
