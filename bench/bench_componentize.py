#!/usr/bin/env python3
"""Benchmark apps tauon must componentize or compose against the equivalent ready-made component.
Prints numbers and ratios; never asserts.

For each pair (a wit-bindgen 0.16 reactor core module vs the same module componentized at build time;
a component with an uncomposed dependency vs the same two composed at build time):

1. cold: a fresh cache, app file dropped in, time to the first 200 (pull + convert/compose + compile);
2. warm restart: tauon started with the app file already in place and every cache warm (blobs,
   converted/composed component, compiled code), time from starting the process to the first 200.
   The runs of a pair alternate, in an order rotated every round;
3. warm load, in this process: what differs between the two on a warm restart, preparing the
   component (finding the converted/composed one in the cache) and loading its compiled code, with a
   new engine each time.

Needs: scripts/setup-dev (docker-registry, clang) and the fixtures of scripts/build-componentize-fixtures.
Usage: .venv/bin/python bench/bench_componentize.py [--reps 7]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
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
from tauon.app.plan import ComponentPlan, DependencyPlan  # noqa: E402
from tauon.wasm.component.cache import compile_component  # noqa: E402
from tauon.wasm.engine import WasmEngine  # noqa: E402
from tauon.wasm.pool import PoolSettings  # noqa: E402
from tauon.wasm.prepare import prepare_component  # noqa: E402

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


def _plan(name: str, tmp: Path) -> ComponentPlan:
    def put(fixture_name: str) -> tuple[str, str]:
        data = fixture(fixture_name)
        path = tmp / f"{fixture_name}.wasm"
        path.write_bytes(data)
        return str(path), "sha256:" + hashlib.sha256(data).hexdigest()

    wasm = {"reactor module": "reactor-http", "ready-made component": "reactor-http-component",
            "uncomposed dependency": "dep-main", "composed at build": "dep-composed"}[name]
    path, digest = put(wasm)
    deps: tuple[DependencyPlan, ...] = ()
    if name == "uncomposed dependency":
        dep_path, dep_digest = put("dep-greeter")
        deps = (DependencyPlan(name="tauon-fixtures:deps/greet@0.1.0", wasm_path=dep_path,
                               wasm_digest=dep_digest, inherit="all"),)
    return ComponentPlan(id="web", wasm_path=path, wasm_digest=digest, dependencies=deps)


def warm_load(tmp: Path, pair: tuple[str, str], reps: int) -> dict[str, list[float]]:
    tmp.mkdir(parents=True)
    plans = {name: _plan(name, tmp) for name in pair}
    cache = tmp / "load-cache"
    times: dict[str, list[float]] = {name: [] for name in pair}
    for rep in range(reps + 1):
        for name in (pair if rep % 2 == 0 else pair[::-1]):
            engine = WasmEngine(cache, pool=PoolSettings(instances=0))
            start = time.perf_counter()
            prepared = prepare_component(cache, plans[name])
            compile_component(engine, Path(prepared.wasm_path), prepared.wasm_digest)
            if rep:  # the first round fills the cache
                times[name].append(time.perf_counter() - start)
            del engine, prepared
            gc.collect()
    return times


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
            print(f"  warm restart ratio {pair[0]} / {pair[1]}: {ratio:.2f}x")
            loads = warm_load(tmp / f"load-{pair[0].replace(' ', '-')}", pair, args.reps * 5)
            for name in pair:
                print(f"  warm load (prepare + compiled code) {name}: "
                      f"{statistics.median(loads[name]) * 1000:.2f} ms median")
            ratio = statistics.median(loads[pair[0]]) / statistics.median(loads[pair[1]])
            print(f"  warm load ratio: {ratio:.2f}x\n")


if __name__ == "__main__":
    main()
