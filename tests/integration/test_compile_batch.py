"""Apps that wait for a compile child at the same time share one (wasm/compile_batch.py), and each
keeps its own outcome: a compile bomb that aborts the child fails its own app, a component whose
allocator probe never returns fails its own app, and every other app of the batch still serves (the
ones the child had not started go to the next child).

Two apps whose compiles never end hold both compile slots while the others queue behind them; their
files are then removed, which kills their children, and the queued apps go to children together."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest
from test_compile_sandbox import compile_children, guard, push_wasm_app

from support.apps import app_file
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.distinct import distinct
from support.fixtures import fixture_path
from support.hostile import compile_bomb, looping_realloc, slow_compile
from support.registry import RegistryServer

pytestmark = pytest.mark.integration


def wait_states(tauon: TauonProcess, apps: list[str], state: str, timeout: float = 60.0) -> None:
    assert tauon.admin is not None
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(f"{tauon.admin}/status", timeout=5).json()
        rows = {row["app"]: row["state"] for row in status["apps"]}
        if all(rows.get(app) == state for app in apps):
            return
        assert time.monotonic() < deadline, f"not all {state}: {rows}\n{tauon.log()}"
        time.sleep(0.1)


def test_queued_apps_share_a_compile_child_and_a_bad_one_fails_alone(
        tmp_path: Path, registry: RegistryServer) -> None:
    sleep = fixture_path("sleep").read_bytes()
    good = [push_wasm_app(registry, f"batch/good{i}", "good", distinct(sleep, f"good{i}")) for i in range(4)]
    stuck = [push_wasm_app(registry, f"batch/stuck{i}", "stuck", distinct(slow_compile(), f"stuck{i}"))
             for i in range(2)]
    bomb = push_wasm_app(registry, "batch/bomb", "bomb", compile_bomb())
    loopy = push_wasm_app(registry, "batch/loopy", "loopy", looping_realloc().read_bytes(), wagi=False)
    ports = [free_port() for _ in good]
    with run_tauon(tmp_path, "--compile-memory-mib", "512", "--compile-timeout", "600", admin=True) as tauon:
        guard(tauon)
        for i, ref in enumerate(stuck):
            (tauon.watch_dir / f"stuck{i}.json").write_text(app_file(ref, free_port()))
        # Both compile slots taken, each by one stuck app (logged once its slot is held; a child alone
        # does not tell: one may be waiting ahead of its compile, wasm/headstart.py).
        own_slot = r"stuck\d\.json: compiling stuck in a child process \(cranelift\)\n"  # no "with 1 other"
        tauon.wait_log(own_slot, count=2, timeout=60)
        deadline = time.monotonic() + 60
        while len(compile_children(tauon.proc.pid)) < 2:
            assert time.monotonic() < deadline, f"no two compile children within 60 s:\n{tauon.log()}"
            time.sleep(0.05)
        queued = [f"good{i}.json" for i in range(4)] + ["bomb.json", "loopy.json"]
        for i, (ref, port) in enumerate(zip(good, ports, strict=True)):
            (tauon.watch_dir / f"good{i}.json").write_text(app_file(ref, port))
        (tauon.watch_dir / "bomb.json").write_text(app_file(bomb, free_port()))
        (tauon.watch_dir / "loopy.json").write_text(app_file(loopy, free_port()))
        wait_states(tauon, queued, "starting")
        for i in range(2):
            (tauon.watch_dir / f"stuck{i}.json").unlink()

        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/?0", contains="in ", timeout=120)
        tauon.wait_log(r"bomb\.json: field 'components\.bomb\.source': component 'bomb': compiling its wasm "
                       r"needed more than 512 MiB of memory \(--compile-memory-mib\)", timeout=120)
        tauon.wait_log(r"loopy\.json: field 'components\.loopy\.source': component 'loopy': [^\n]*"
                       r"probing its allocator \(cabi_realloc\) at compile time did not finish within 2 s",
                       timeout=120)
        log = tauon.log()
        shared = [int(n) for n in re.findall(r"in a child process \(cranelift\) with (\d+) other app", log)]
        print(f"other apps in a compile child: {shared}")
        assert shared, log
        assert tauon.proc.poll() is None
        for port in ports:
            assert httpx.get(f"http://127.0.0.1:{port}/?0", timeout=10).status_code == 200
