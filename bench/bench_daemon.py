#!/usr/bin/env python3
"""Benchmark the daemon as an operator sees it. Prints numbers and ratios; never asserts.

1. Time from dropping an app file into the watched directory to the first 200, for an image that is
   not cached (fresh cache: pull + compile) and one that is (blobs and compiled wasm cached).
2. Requests/s and failed requests under load (wrk, from Debian) with the app replaced by a new
   generation every second, against a reference run in the same invocation without replacements.

Needs: scripts/setup-dev (docker-registry, clang for the fixture, wrk).
Usage: .venv/bin/python bench/bench_daemon.py [--duration 10] [--connections 16] [--reps 5]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from loadtools import first_200, wrk  # noqa: E402
from support.apps import app_file, push_sleep_app  # noqa: E402
from support.daemon import free_port, run_tauon, wait_refused  # noqa: E402
from support.registry import run_registry  # noqa: E402


def drop_to_200(tmp: Path, ref: str, reps: int, *, cached: bool) -> list[float]:
    times = []
    cache = tmp / "cache-shared"
    for i in range(reps):
        run_dir = tmp / f"{'cached' if cached else 'uncached'}-{i}"
        with run_tauon(run_dir, "--log-level", "info",
                       cache_dir=cache if cached else run_dir / "cache") as tauon:
            port = free_port()
            url = f"http://127.0.0.1:{port}/?0"
            if cached and i == 0:  # warm the shared cache once, untimed
                (tauon.watch_dir / "warm.json").write_text(app_file(ref, port))
                first_200(url)
                (tauon.watch_dir / "warm.json").unlink()
                wait_refused(url)
            staging = run_dir / "staging.json"
            staging.write_text(app_file(ref, port))
            start = time.perf_counter()
            shutil.move(str(staging), tauon.watch_dir / "app.json")
            times.append(first_200(url, start=start))
    return times


def replace_every_second(path: Path, refs: list[str], port: int, stop: threading.Event,
                         count: list[int]) -> None:
    i = 0
    while not stop.wait(1.0):
        i += 1
        path.write_text(app_file(refs[i % len(refs)], port))
        count[0] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing; run scripts/setup-dev")

    with tempfile.TemporaryDirectory(prefix="tauon-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with run_registry(tmp / "registry") as registry:
            refs = [push_sleep_app(registry, "bench/app", f"v{i}", version=f"v{i}") for i in range(2)]

            uncached = drop_to_200(tmp, refs[0], args.reps, cached=False)
            cached = drop_to_200(tmp, refs[0], args.reps, cached=True)
            print("== drop an app file -> first 200 (seconds; median [min..max] of "
                  f"{args.reps}; same image, a WAGI app)")
            for label, values in (("uncached image (pull + compile)", uncached),
                                  ("cached image (blobs + compiled wasm)", cached)):
                print(f"  {label:40s} {statistics.median(values):7.3f}  "
                      f"[{min(values):.3f}..{max(values):.3f}]")
            print(f"  ratio uncached/cached                    "
                  f"{statistics.median(uncached) / statistics.median(cached):7.2f}x")

            with run_tauon(tmp / "load", "--log-level", "info") as tauon:
                port = free_port()
                url = f"http://127.0.0.1:{port}/?0"
                path = tauon.watch_dir / "app.json"
                path.write_text(app_file(refs[0], port))
                first_200(url)
                # warm every image once so each replacement swaps a compiled generation
                for ref in refs[1:] + refs[:1]:
                    path.write_text(app_file(ref, port))
                    time.sleep(1.0)
                reference = wrk(url, args.duration, args.connections)
                stop, count = threading.Event(), [0]
                swapper = threading.Thread(target=replace_every_second,
                                           args=(path, refs, port, stop, count))
                swapper.start()
                try:
                    replaced = wrk(url, args.duration, args.connections)
                finally:
                    stop.set()
                    swapper.join()
                generations = len(re.findall(r"updated to generation", tauon.log()))
            print(f"== load: wrk -t2 -c{args.connections} -d{args.duration}s, WAGI app, loopback")
            for label, r in (("reference (no replacement)", reference),
                             (f"replaced every 1 s ({count[0]} edits)", replaced)):
                print(f"  {label:34s} {r['rps']:9.1f} req/s  failed {int(r['errors']):5d} of "
                      f"{int(r['requests'])}  latency p50 {r['p50']:.2f} ms p99 {r['p99']:.2f} ms")
            ratio = float(replaced["rps"]) / float(reference["rps"])
            print(f"  throughput ratio replaced/reference {ratio:.3f}")
            print(f"  generations swapped in during the whole load phase: {generations}")


if __name__ == "__main__":
    main()
