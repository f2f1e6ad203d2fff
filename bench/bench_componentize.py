#!/usr/bin/env python3
"""Benchmark apps tauon must componentize or compose against the equivalent ready-made component.
Prints numbers and ratios; never asserts.

For each pair (a wit-bindgen 0.16 reactor core module vs the same module componentized at build time;
a component with an uncomposed dependency vs the same two composed at build time):

1. cold: a fresh cache, app file dropped in, time to the first 200 (pull + convert/compose + compile);
2. warm restart: tauon started with the app file already in place and every cache warm (blobs,
   converted/composed component, compiled code), time from starting the process to the first 200.
   The runs of a pair alternate, in an order rotated every round.

Needs: scripts/setup-dev (docker-registry, clang) and the fixtures of scripts/build-componentize-fixtures.
Usage: .venv/bin/python bench/bench_componentize.py [--reps 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from loadtools import first_200  # noqa: E402
from support.apps import app_file, push_app  # noqa: E402
from support.componentize import fixture  # noqa: E402
from support.daemon import free_port, run_tauon  # noqa: E402
from support.registry import run_registry  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent, SpinDependency  # noqa: E402

PAIRS = [("reactor module", "ready-made component"), ("uncomposed dependency", "composed at build")]
PATHS = {"reactor module": "/x", "ready-made component": "/x",
         "uncomposed dependency": "/hello/x", "composed at build": "/hello/x"}


def _app(name: str, wasm: bytes, deps: dict[str, SpinDependency] | None = None) -> SpinAppSpec:
    return SpinAppSpec(name=name, components=[SpinComponent(id="web", wasm=wasm, dependencies=deps or {})],
                       triggers=[{"route": "/...", "component": "web"}])


def _images() -> dict[str, SpinAppSpec]:
    greet = {"tauon-fixtures:deps/greet@0.1.0": SpinDependency(fixture("dep-greeter"), inherit="All")}
    return {
        "reactor module": _app("reactor", fixture("reactor-http")),
        "ready-made component": _app("componentized", fixture("reactor-http-component")),
        "uncomposed dependency": _app("uncomposed", fixture("dep-main"), greet),
        "composed at build": _app("composed", fixture("dep-composed")),
    }


def cold(tmp: Path, ref: str, path: str) -> float:
    with run_tauon(tmp, "--log-level", "info") as tauon:
        port = free_port()
        staging = tmp / "staging.json"
        staging.write_text(app_file(ref, port))
        start = time.perf_counter()
        shutil.move(str(staging), tauon.watch_dir / "app.json")
        return first_200(f"http://127.0.0.1:{port}{path}", start=start)


def warm_restart(tmp: Path, cache: Path, ref: str, path: str) -> float:
    watch = tmp / "apps"
    watch.mkdir(parents=True)
    port = free_port()
    (watch / "app.json").write_text(app_file(ref, port))
    start = time.perf_counter()
    with run_tauon(tmp, "--log-level", "info", watch_dir=watch, cache_dir=cache, wait_started=False):
        return first_200(f"http://127.0.0.1:{port}{path}", start=start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tauon-bench-cz-") as tmp_name, \
            run_registry(Path(tmp_name) / "registry") as registry:
        tmp = Path(tmp_name)
        refs = {name: push_app(registry, f"bench/{i}", "v1", app)
                for i, (name, app) in enumerate(_images().items())}
        print(f"{'app':<24}{'cold first 200':>16}{'warm restart first 200 (median, min-max)':>44}")
        for pair in PAIRS:
            cache = {name: tmp / f"cache-{name.replace(' ', '-')}" for name in pair}
            colds = {}
            for name in pair:  # the cold run also warms this app's cache for the restarts
                colds[name] = cold(tmp / f"cold-{name.replace(' ', '-')}", refs[name], PATHS[name])
                shutil.copytree(tmp / f"cold-{name.replace(' ', '-')}" / "cache", cache[name])
            warm: dict[str, list[float]] = {name: [] for name in pair}
            for rep in range(args.reps):
                order = pair if rep % 2 == 0 else pair[::-1]
                for name in order:
                    run = tmp / f"warm-{name.replace(' ', '-')}-{rep}"
                    warm[name].append(warm_restart(run, cache[name], refs[name], PATHS[name]))
            for name in pair:
                w = warm[name]
                print(f"{name:<24}{colds[name] * 1000:>13.0f} ms{statistics.median(w) * 1000:>21.0f} ms"
                      f"  ({min(w) * 1000:.0f}-{max(w) * 1000:.0f} ms)")
            ratio = statistics.median(warm[pair[0]]) / statistics.median(warm[pair[1]])
            print(f"  warm restart ratio {pair[0]} / {pair[1]}: {ratio:.2f}x\n")


if __name__ == "__main__":
    main()
