#!/usr/bin/env python3
"""A WASIp3 app against the same kind of app built for WASIp2, both served by tauon (issue 19's stage-2
target: the p3 app's requests/s >= the p2 app's).

The p3 app is the `python-p3` fixture (spin-sdk 5.0.0, componentize-py 0.25.1, wasi:http/handler@0.3.0,
always on tauon's own component runtime); the p2 app is the `python-sdk` fixture (spin-sdk 3.4.1,
componentize-py 0.17.2, wasi:http/incoming-handler@0.2.0). Both answer GET /echo by echoing the
request (p3: one line of text; p2: a small JSON document with the headers), so the guests' work is
alike but not identical. Each tauon configuration (`--tauon-args`, default: the default runtime, where
the p2 app runs on wasmtime's component API, and `--component-runtime tauon`, where both run on
tauon's runtime) serves both apps from one process; the same wrk command runs on each app, round by
round in an order rotated every round. Prints requests/s, p50/p99 latency and server CPU per request
(medians over rounds) and the p3/p2 ratio of each configuration.

Needs: docker-registry and wrk (Debian), the python-sdk and python-p3 fixtures (scripts/build-components,
scripts/build-components-extra).
Usage: .venv/bin/python bench/bench_p3.py [--duration 10] [--connections 2,8] [--rounds 3]
       [--tauon-args ARGS ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
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
from support.components import component_path, extra_component_path  # noqa: E402
from support.daemon import free_port, run_tauon  # noqa: E402
from support.registry import RegistryServer, run_registry  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402

APPS = {"p2": component_path, "p3": extra_component_path}
FIXTURES = {"p2": "python-sdk", "p3": "python-p3"}
SETTLE = 1.0


def push(registry: RegistryServer, app: str) -> str:
    name = FIXTURES[app]
    spec = SpinAppSpec(
        name=name,
        components=[SpinComponent(id=name, wasm=APPS[app](name).read_bytes())],
        triggers=[{"route": "/...", "component": name}],
    )
    ref: str = push_app(registry, f"bench-p3/{name}", "v1", spec)
    return ref


@contextmanager
def serving(
    tmp: Path, refs: dict[str, str], argv: list[str], label: str
) -> Iterator[tuple[dict[str, str], int]]:
    urls = {}
    with run_tauon(tmp / f"load-{label}", *argv, log_level="info", cache_dir=tmp / "cache") as tauon:
        for app, ref in refs.items():
            port = free_port()
            (tauon.watch_dir / f"{app}.json").write_text(app_file(ref, port))
            urls[app] = f"http://127.0.0.1:{port}/echo"
        for url in urls.values():
            first_200(url, time.perf_counter(), timeout=900)
        found = re.search(r"(\d+) processes serve requests", tauon.log())
        for index in range(1, int(found.group(1)) if found else 1):
            tauon.wait_log(rf"worker {index} \(pid \d+\) serving")
        time.sleep(1.0)
        yield urls, tauon.proc.pid


def measure(
    servers: dict[tuple[str, str], tuple[str, int]], connections: int, args: argparse.Namespace
) -> dict[tuple[str, str], list[dict[str, float]]]:
    results: dict[tuple[str, str], list[dict[str, float]]] = {key: [] for key in servers}
    for url, pid in servers.values():
        wrk(url, 2, connections, pid)  # warm-up
    order = list(servers.items())
    for round_ in range(args.rounds):
        shift = round_ % len(order)
        for key, (url, pid) in order[shift:] + order[:shift]:
            time.sleep(SETTLE)
            results[key].append(wrk(url, args.duration, connections, pid))
    return results


def report(connections: int, results: dict[tuple[str, str], list[dict[str, float]]], width: int) -> None:
    medians = {
        key: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for key, runs in results.items()
    }
    for (config, app), m in medians.items():
        errors = sum(r["errors"] for r in results[(config, app)])
        print(
            f"  {connections:4d} {config:{width}s} {app} ({FIXTURES[app]:9s}) {m['rps']:8.1f} "
            f"{m['p50']:8.2f} {m['p99']:8.2f} {m['cpu_ms']:7.2f} {int(errors):6d}"
        )
    for config in sorted({c for c, _ in results}):
        ratios = [
            p3["rps"] / p2["rps"]
            for p3, p2 in zip(results[(config, "p3")], results[(config, "p2")], strict=True)
            if p2["rps"]
        ]
        cpu = medians[(config, "p3")]["cpu_ms"] / medians[(config, "p2")]["cpu_ms"]
        verdict = "meets" if statistics.median(ratios) >= 1.0 else "MISSES"
        print(
            f"  {connections:4d} {config:{width}s} p3/p2 req/s {statistics.median(ratios):.2f}x (rounds: "
            f"{', '.join(f'{x:.2f}' for x in ratios)}), cpu per request {cpu:.2f}x: {verdict} the target "
            ">= 1.0x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", default="2,8", help="wrk connection counts (>= its 2 threads)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--tauon-args",
        action="append",
        default=None,
        help="a tauon configuration (repeatable); default: '' and '--component-runtime tauon'",
    )
    args = parser.parse_args()
    configs = args.tauon_args if args.tauon_args is not None else ["", "--component-runtime tauon"]
    labels = {(("tauon " + c).strip()): shlex.split(c) for c in configs}
    width = max(len(label) for label in labels)
    with tempfile.TemporaryDirectory(prefix="bench-p3-") as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        registry = stack.enter_context(run_registry(tmp / "registry"))
        refs = {app: push(registry, app) for app in APPS}
        served = {
            label: stack.enter_context(serving(tmp, refs, argv, str(i)))
            for i, (label, argv) in enumerate(labels.items())
        }
        print(
            f"== GET /echo, `wrk -t2 -c<conn> -d{args.duration}s`, {args.rounds} interleaved rounds "
            f"(medians); cpu = server CPU ms per request; load average before: {os.getloadavg()[0]:.2f}"
        )
        print(
            f"  {'conn':>4s} {'server':{width}s} {'app':16s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} "
            f"{'cpu ms':>7s} {'errors':>6s}"
        )
        for connections in (int(c) for c in args.connections.split(",")):
            servers = {
                (label, app): (urls[app], pid) for label, (urls, pid) in served.items() for app in APPS
            }
            report(connections, measure(servers, connections, args), width)
        print(f"  load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
