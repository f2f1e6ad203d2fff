#!/usr/bin/env python3
"""Tiered compilation: file drop -> first 200 on an empty cache with tiering on (Winch first) against
off (Cranelift only), and requests/s on Winch's code, after the swap to Cranelift's, and with
tiering off (the reference), all in one invocation.

For each app, two daemons on fresh caches, each running (its worker processes up) before the app file
is dropped in: tiering off (drop -> first 200, then wrk: the Cranelift-only
figure), and tiering on (drop -> first 200 on Winch's code, wrk at once, while Cranelift compiles in
the background at nice 10; then, after `updated to generation 2`, wrk again). Never asserts.

Needs: scripts/setup-dev (docker-registry, wrk) and the component fixtures (scripts/build-components).
Usage: .venv/bin/python bench/bench_tiering.py [--apps js,python-sdk] [--workers 2] [--duration 5]
       [--connections 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from loadtools import first_200, wrk  # noqa: E402
from support.apps import app_file, push_app  # noqa: E402
from support.components import component_path  # noqa: E402
from support.daemon import free_port, run_tauon  # noqa: E402
from support.registry import run_registry  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402

PATHS = {"c": "/", "js": "/echo", "python-raw": "/echo", "python-sdk": "/echo"}


def run(run_dir: Path, name: str, ref: str, args: argparse.Namespace, tiering: str) -> dict[str, float]:
    """Figures of one daemon on an empty cache: first 200 and requests/s (and, tiering on, after the
    swap and how long Cranelift took to be swapped in)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATHS[name]}"
    with run_tauon(run_dir, "--log-level", "info", "--workers", str(args.workers),
                   cache_dir=run_dir / "cache", env={"TAUON_TIERING": tiering}) as tauon:
        # A running daemon, as an app dropped in production meets it: its workers start a second after
        # it is ready, and their start-up (importing tauon) would otherwise share the CPU with the compile.
        if args.workers > 1:
            tauon.wait_log(r"worker \d+ \(pid \d+\) serving", timeout=120, count=args.workers - 1)
        staged = run_dir / f"{name}.json"
        staged.write_text(app_file(ref, port))
        began = time.perf_counter()
        staged.rename(tauon.watch_dir / staged.name)
        figures = {"first_200": first_200(url, began, timeout=900)}
        tauon.wait_log(r": serving: ", timeout=60)  # logged once every process serves it
        time.sleep(1)
        load = wrk(url, args.duration, args.connections, tauon.proc.pid)
        figures.update(rps=load["rps"], errors=load["errors"])
        if tiering == "on":
            swapped = "updated to generation 2" in tauon.log()  # during the Winch run: flagged
            tauon.wait_log(r"updated to generation 2", timeout=900)
            figures["swap_at"] = time.perf_counter() - began
            figures["winch_window_clean"] = 0.0 if swapped else 1.0
            time.sleep(1)  # the workers serve it too
            after = wrk(url, args.duration, args.connections, tauon.proc.pid)
            figures.update(rps_after=after["rps"], errors_after=after["errors"])
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", default="js,python-sdk")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--duration", type=int, default=5, help="seconds of each wrk run")
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    results: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="tauon-bench-") as tmpdir:
        tmp = Path(tmpdir)
        with run_registry(tmp / "registry") as registry:
            for name in args.apps.split(","):
                app = SpinAppSpec(name=name, components=[SpinComponent(
                    id=name, wasm=component_path(name).read_bytes())],
                    triggers=[{"route": "/...", "component": name}])
                ref = push_app(registry, f"bench/{name}", "v1", app)
                off = run(tmp / f"{name}-off", name, ref, args, "off")
                on = run(tmp / f"{name}-on", name, ref, args, "on")
                results[name] = (off, on)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"== drop -> first 200 on an empty cache, then wrk -c{args.connections} -d{args.duration}s "
          f"(--workers {args.workers}); load average at the end {load}")
    for name, (off, on) in results.items():
        size = component_path(name).stat().st_size / 1e6
        print(f"-- {name} ({size:.1f} MB)")
        print(f"  first 200: tiering off (Cranelift) {off['first_200']:6.2f} s, on (Winch) "
              f"{on['first_200']:6.2f} s   ratio on/off {on['first_200'] / off['first_200']:.2f}x")
        print(f"  Cranelift's generation swapped in {on['swap_at']:6.2f} s after the drop"
              + ("" if on["winch_window_clean"] else " (before the Winch wrk run ended)"))
        print(f"  req/s: Cranelift only {off['rps']:8.1f}; Winch (Cranelift compiling) {on['rps']:8.1f} "
              f"({on['rps'] / off['rps']:.2f}x); after the swap {on['rps_after']:8.1f} "
              f"({on['rps_after'] / off['rps']:.2f}x)")
        print(f"  errors (non-2xx + socket): {off['errors']:.0f} / {on['errors']:.0f} / "
              f"{on['errors_after']:.0f}")


if __name__ == "__main__":
    main()
