#!/usr/bin/env python3
"""tauon against the native reference (`wasmtime serve` 49.0.3) on the same wasi:http components.

1. Start-up: the real `tauon` process restarted with a warm cache (blobs and compiled component on
   disk): seconds from process start to the first 200, per component (target: <= 0.5 s for the
   37.7 MB python-sdk component).
2. Load: for each of the c, js and python-raw fixtures, pushed to a local docker-registry and served by
   `tauon` (by default twice: with its defaults, one serving process per CPU as `wasmtime serve` uses
   one thread per CPU, and with `--workers 1`, the daemon alone), and by `wasmtime serve -Scli` (a
   fresh instance per request in all): the same wrk command on the same URL, the servers interleaved round
   by round so all see the same machine load, in an order rotated every round. Prints requests/s,
   p50/p99 latency (medians over rounds) and tauon/reference. Targets: >= 0.8x on js and python-raw,
   >= 0.3x on c.

Needs: docker-registry and wrk (Debian), scripts/build-components, scripts/install-reference.
Usage: .venv/bin/python bench/bench_components.py [--duration 10] [--connections 16] [--rounds 3]
       [--components c,js,python-raw] [--skip-startup] [--skip-load] [--tauon-args ARGS ...]
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from loadtools import first_200, wrk  # noqa: E402
from support.apps import app_file, push_app  # noqa: E402
from support.components import component_path, serve_reference  # noqa: E402
from support.daemon import free_port, run_tauon  # noqa: E402
from support.registry import RegistryServer, run_registry  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402

PATHS = {"c": "/", "js": "/echo", "python-raw": "/echo", "python-sdk": "/echo"}
"""A cheap route answering 200 on each fixture."""
SETTLE = 1.0
"""Seconds between two load runs."""


def push(registry: RegistryServer, name: str) -> str:
    app = SpinAppSpec(name=name, components=[SpinComponent(id=name, wasm=component_path(name).read_bytes())],
                      triggers=[{"route": "/...", "component": name}])
    ref: str = push_app(registry, f"bench/{name}", "v1", app)
    return ref


def startup(tmp: Path, registry: RegistryServer, names: list[str], reps: int) -> None:
    print("== tauon start -> first 200 with a warm cache (seconds; median [min..max] of "
          f"{reps} restarts)")
    cache = tmp / "cache"
    for name in names:
        ref = push(registry, name)
        port = free_port()
        url = f"http://127.0.0.1:{port}{PATHS[name]}"
        watch = tmp / f"startup-{name}" / "apps"
        watch.mkdir(parents=True)
        (watch / f"{name}.json").write_text(app_file(ref, port))
        cold_start = time.perf_counter()
        with run_tauon(tmp / f"startup-{name}" / "cold", log_level="info", watch_dir=watch,
                       cache_dir=cache, wait_started=False):
            cold = first_200(url, cold_start)
        times = []
        for i in range(reps):
            start = time.perf_counter()
            with run_tauon(tmp / f"startup-{name}" / f"warm-{i}", log_level="info", watch_dir=watch,
                           cache_dir=cache, wait_started=False):
                times.append(first_200(url, start))
        size = component_path(name).stat().st_size / 1e6
        print(f"  {name:11s} ({size:5.1f} MB)  warm {statistics.median(times):6.3f} "
              f"[{min(times):.3f}..{max(times):.3f}]   first run (pull + compile) {cold:6.2f}")


def pid_serving(base_url: str) -> int:
    """The pid of the `wasmtime serve` process started for `base_url` (found by its --addr)."""
    addr = base_url.removeprefix("http://")
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and addr.encode() in argv:
            return int(proc.name)
    raise RuntimeError(f"no wasmtime serve process for {base_url}")


@contextmanager
def tauon_serving(tmp: Path, registry: RegistryServer, names: list[str], tauon_args: list[str],
                  label: str) -> Iterator[tuple[dict[str, str], int]]:
    urls = {}
    with run_tauon(tmp / f"load-{label}", *tauon_args, log_level="info", cache_dir=tmp / "cache") as tauon:
        for name in names:
            port = free_port()
            (tauon.watch_dir / f"{name}.json").write_text(app_file(push(registry, name), port))
            urls[name] = f"http://127.0.0.1:{port}{PATHS[name]}"
        for url in urls.values():
            first_200(url, time.perf_counter())
        # Workers start after the daemon serves; measure once every process does.
        found = re.search(r"(\d+) processes serve requests", tauon.log())
        for index in range(1, int(found.group(1)) if found else 1):
            tauon.wait_log(rf"worker {index} \(pid \d+\) serving")
        time.sleep(1.0)  # the resync that follows "serving"
        yield urls, tauon.proc.pid


def load(tmp: Path, registry: RegistryServer, names: list[str], args: argparse.Namespace) -> None:
    cmd = f"wrk -t2 -c{args.connections} -d{args.duration}s --latency"
    configs = {("tauon " + a).strip(): shlex.split(a) for a in args.tauon_args}
    print(f"== load: `{cmd}`, loopback, {args.rounds} interleaved rounds (medians); fresh instance per "
          "request on both; cpu = server CPU ms per request (worker processes included)")
    width = max(9, *(len(label) for label in configs))
    print(f"  {'component':11s} {'server':{width}s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'cpu ms':>7s} {'errors':>7s}")
    with ExitStack() as stack:
        tauons = {label: stack.enter_context(tauon_serving(tmp, registry, names, argv, str(i)))
                  for i, (label, argv) in enumerate(configs.items())}
        for name in names:
            results: dict[str, list[dict[str, float]]] = {"reference": [], **{label: [] for label in configs}}
            with serve_reference(component_path(name),
                                 extra_args=shlex.split(args.reference_args)) as base:
                servers = {"reference": (base + PATHS[name], pid_serving(base)),
                           **{label: (urls[name], pid) for label, (urls, pid) in tauons.items()}}
                for url, pid in servers.values():  # warm every server (page cache, allocator, threads)
                    wrk(url, 2, args.connections, pid)
                order = list(servers.items())
                for round_ in range(args.rounds):
                    # Rotated each round, with a pause before each run: in a fixed order the run right
                    # after the reference's came out lowest (two tauon settings swapped places and a
                    # 0.08-0.12x gap went with the place), so no server may always take it.
                    shift = round_ % len(order)
                    for server, (url, pid) in order[shift:] + order[:shift]:
                        time.sleep(SETTLE)
                        results[server].append(wrk(url, args.duration, args.connections, pid))
            medians = {server: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                       for server, runs in results.items()}
            for server, m in medians.items():
                errors = sum(r["errors"] for r in results[server])
                print(f"  {name:11s} {server:{width}s} {m['rps']:9.1f} {m['p50']:8.2f} {m['p99']:8.2f} "
                      f"{m['cpu_ms']:7.3f} {int(errors):7d}")
            for label in configs:
                ratios = [t["rps"] / r["rps"] for t, r in zip(results[label], results["reference"],
                                                                strict=True) if r["rps"]]
                print(f"  {name:11s} {label}/reference: req/s {statistics.median(ratios):.2f}x "
                      f"(rounds: {', '.join(f'{x:.2f}' for x in ratios)}), p50 "
                      f"{medians[label]['p50'] / medians['reference']['p50']:.2f}x, cpu per request "
                      f"{medians[label]['cpu_ms'] / medians['reference']['cpu_ms']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--components", default="c,js,python-raw")
    parser.add_argument("--startup-components", default="python-sdk,python-raw")
    parser.add_argument("--startup-reps", type=int, default=3)
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--tauon-args", action="append", default=None,
                        help="tauon options for one load configuration, e.g. '--running-guests 4'; "
                        "repeat to compare several in the same rounds (default: '' and '--workers 1')")
    parser.add_argument("--reference-args", default="", help="extra `wasmtime serve` options, e.g. "
                        "'-O pooling-memory-keep-resident=33554432' (tauon's default keep-resident)")
    args = parser.parse_args()
    if args.tauon_args is None:
        args.tauon_args = ["", "--workers 1"]
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing (apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="tauon-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with run_registry(tmp / "registry") as registry:
            if not args.skip_startup:
                startup(tmp, registry, args.startup_components.split(","), args.startup_reps)
            if not args.skip_load:
                load(tmp, registry, args.components.split(","), args)


if __name__ == "__main__":
    main()
