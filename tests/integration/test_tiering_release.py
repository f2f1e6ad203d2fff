"""After tiering's swaps, Winch's code is let go: every serving process maps (and holds open) one
compiled file per app, Cranelift's, as after a warm restart. A retired generation that lingered
until the garbage collector happened to run kept its code mapped, a descriptor open and, for a big
component, tens of MB resident: the cold start's memory stayed above the warm restart's."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import TauonProcess, free_port, run_tauon
from support.distinct import distinct
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration

APPS = 6


def compiled_files(pid: int) -> set[str]:
    with (Path(f"/proc/{pid}") / "maps").open() as maps:
        return {line.split()[-1] for line in maps if "/compiled/" in line}


def serving_pids(tauon: TauonProcess) -> list[int]:
    """The daemon and its worker processes (not a compile child)."""
    pids = [tauon.proc.pid]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == tauon.proc.pid and b"tauon.workers.child" in cmdline:
            pids.append(int(proc.name))
    return pids


def test_after_the_swaps_each_process_maps_only_cranelifts_code(
        registry: RegistryServer, tmp_path: Path) -> None:
    base = component_path("c").read_bytes()
    refs = [push_app(registry, f"release/app{i}", "v1", SpinAppSpec(
        name=f"app{i}", components=[SpinComponent(id="c", wasm=distinct(base, f"release-{i}"))],
        triggers=[{"route": "/...", "component": "c"}])) for i in range(APPS)]
    ports = [free_port() for _ in refs]
    with run_tauon(tmp_path, "--workers", "2", "--log-level", "info", "--drain-timeout", "1",
                   env={"TAUON_TIERING": "on"}) as tauon:
        tauon.wait_log(r"worker 1 \(pid \d+\) serving", timeout=120)
        for i, (ref, port) in enumerate(zip(refs, ports, strict=True)):
            (tauon.watch_dir / f"app{i}.json").write_text(app_file(ref, port))
        tauon.wait_log(r"updated to generation 2: .*\(Cranelift's code\)", timeout=600, count=APPS)
        for port in ports:  # requests on both processes' Cranelift generations
            for _ in range(4):
                assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200
        pids = serving_pids(tauon)
        assert len(pids) == 2
        deadline = time.monotonic() + 60  # the drain (1 s) and the collection that follows it
        while True:
            mapped = {pid: len(compiled_files(pid)) for pid in pids}
            if all(count == APPS for count in mapped.values()):
                break
            assert time.monotonic() < deadline, f"compiled files mapped per process: {mapped}"
            time.sleep(0.5)
