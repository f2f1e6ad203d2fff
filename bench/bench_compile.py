#!/usr/bin/env python3
"""Cold and warm start of big component apps: time to serving and the daemon's idle memory (Pss).

A cold start (empty cache) pulls and compiles every app; the reference is a warm restart in the same
invocation on the same cache (nothing to compile). Prints seconds from dropping the app files to every
app serving, and the daemon's Pss (/proc/PID/smaps_rollup) once idle, with the cold/warm ratios.
Never asserts.

Needs: scripts/setup-dev (docker-registry) and the component fixtures (scripts/build-components).
Usage: .venv/bin/python bench/bench_compile.py [--apps python-sdk,js,python-raw] [--workers 1]
       [--settle 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.apps import app_file, push_app  # noqa: E402
from support.components import component_path  # noqa: E402
from support.daemon import free_port, run_tauon  # noqa: E402
from support.registry import run_registry  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402


def pss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for pid {pid}")


def start(run_dir: Path, cache: Path, refs: dict[str, str], workers: int, settle: float,
          ) -> tuple[float, float]:
    """(seconds from dropping the files to every app serving, the daemon's idle Pss in MiB)."""
    with run_tauon(run_dir, "--log-level", "info", "--workers", str(workers), cache_dir=cache) as tauon:
        staged = []
        for name, ref in refs.items():
            path = run_dir / f"{name}.json"
            path.write_text(app_file(ref, free_port()))
            staged.append(path)
        began = time.perf_counter()
        for path in staged:
            path.rename(tauon.watch_dir / path.name)
        tauon.wait_log(r": serving: ", count=len(refs), timeout=900)
        elapsed = time.perf_counter() - began
        time.sleep(settle)  # let freed memory settle (retired threads, allocator trims)
        return elapsed, pss_mib(tauon.proc.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", default="python-sdk,js,python-raw")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--settle", type=float, default=5.0)
    args = parser.parse_args()
    names = args.apps.split(",")
    with tempfile.TemporaryDirectory(prefix="tauon-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with run_registry(tmp / "registry") as registry:
            refs = {}
            for name in names:
                app = SpinAppSpec(name=name, components=[SpinComponent(
                    id=name, wasm=component_path(name).read_bytes())],
                    triggers=[{"route": "/...", "component": name}])
                refs[name] = push_app(registry, f"bench/{name}", "v1", app)
            cache = tmp / "cache"
            cold = start(tmp / "cold", cache, refs, args.workers, args.settle)
            warm = start(tmp / "warm", cache, refs, args.workers, args.settle)
    print(f"== {len(names)} apps ({', '.join(names)}), --workers {args.workers}: drop -> all serving, "
          "then the daemon's Pss when idle")
    for label, (seconds, pss) in (("cold (empty cache: pull + compile)", cold),
                                  ("warm restart (same cache)", warm)):
        print(f"  {label:36s} {seconds:7.2f} s   Pss {pss:7.1f} MiB")
    print(f"  ratio cold/warm                      {cold[0] / warm[0]:7.2f}x     "
          f"{cold[1] / warm[1]:7.2f}x")


if __name__ == "__main__":
    main()
