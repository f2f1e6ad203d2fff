#!/usr/bin/env python3
"""What OpenTelemetry tracing costs per request: the same component served by tauon with tracing off
(the reference), on (exporting every span over OTLP/HTTP to a loopback sink), and on with every trace
sampled out (spans made and propagated, none exported), plus, with --baseline, the tauon source from
before tracing existed, to show that "off" costs nothing measurable.

Each configuration is its own tauon process (`--workers 1` by default, so the CPU figure is one
process's); all serve the same C component (the cheapest request there is, so tracing's share is the
largest) and the wrk runs are interleaved round by round in a rotated order. Prints requests/s, p50,
tauon's CPU ms per request (what other load disturbs least) and each configuration against "off".
A request here makes no outbound call: each traced request is a server span and an execution span.

Needs: docker-registry and wrk (Debian), scripts/build-components.
Usage: .venv/bin/python bench/bench_tracing.py [--duration 10] [--rounds 5] [--connections 16]
       [--component c] [--baseline REV] [--tauon-args ARGS]
"""

from __future__ import annotations

import argparse
import http.server
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from loadtools import first_200, wrk  # noqa: E402
from support.apps import app_file, push_app  # noqa: E402
from support.components import component_path  # noqa: E402
from support.daemon import free_port, run_tauon  # noqa: E402
from support.registry import RegistryServer, run_registry  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402

PATHS = {"c": "/", "js": "/echo", "python-raw": "/echo"}
SETTLE = 1.0


class _Sink(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that takes every export and keeps nothing (a collector's cheapest)."""

    protocol_version = "HTTP/1.1"
    batches = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        type(self).batches += 1
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def sink() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def baseline_source(tmp: Path, rev: str) -> Path:
    """tauon's src/ at `rev`, extracted (git archive) so a process can run it with PYTHONPATH."""
    out = tmp / "baseline"
    out.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "src"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


@contextmanager
def serving(tmp: Path, ref: str, path: str, label: str, env: dict[str, str],
            args: list[str]) -> Iterator[tuple[str, int]]:
    with run_tauon(tmp / label, *args, log_level="info", cache_dir=tmp / "cache", env=env) as tauon:
        port = free_port()
        (tauon.watch_dir / "bench.json").write_text(app_file(ref, port))
        url = f"http://127.0.0.1:{port}{path}"
        first_200(url)
        time.sleep(1.0)
        yield url, tauon.proc.pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--component", default="c", choices=sorted(PATHS))
    parser.add_argument("--baseline", default=None, metavar="REV",
                        help="also serve tauon's source at this git revision (before tracing), e.g. main")
    parser.add_argument("--tauon-args", default="--workers 1", help="options for every tauon (default: "
                        "'--workers 1')")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing (apt-get install -y wrk)")
    tauon_args = shlex.split(args.tauon_args)
    with tempfile.TemporaryDirectory(prefix="tauon-bench-tracing-") as tmpdir, ExitStack() as stack:
        tmp = Path(tmpdir)
        registry: RegistryServer = stack.enter_context(run_registry(tmp / "registry"))
        name = args.component
        wasm = component_path(name).read_bytes()
        app = SpinAppSpec(name=name, components=[SpinComponent(id=name, wasm=wasm)],
                          triggers=[{"route": "/...", "component": name}])
        ref = push_app(registry, f"bench/{name}", "v1", app)
        endpoint = stack.enter_context(sink())
        traced = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "tauon-bench"}
        configs: dict[str, dict[str, str]] = {
            "off": {},
            "on": traced,
            "on, sampled out": {**traced, "OTEL_TRACES_SAMPLER": "always_off"},
        }
        if args.baseline:
            configs["before tracing"] = {"PYTHONPATH": str(baseline_source(tmp, args.baseline))}
        servers = {label: stack.enter_context(serving(tmp, ref, PATHS[name], f"t{i}", env, tauon_args))
                   for i, (label, env) in enumerate(configs.items())}
        cmd = f"wrk -t2 -c{args.connections} -d{args.duration}s"
        print(f"== tracing cost: {name} component, `{cmd}` on loopback, tauon {args.tauon_args!r}, "
              f"{args.rounds} interleaved rounds (medians); cpu = tauon's CPU ms per request")
        results: dict[str, list[dict[str, float]]] = {label: [] for label in servers}
        for url, pid in servers.values():
            wrk(url, 2, args.connections, pid)  # warm every server
        order = list(servers.items())
        for round_ in range(args.rounds):
            shift = round_ % len(order)
            for label, (url, pid) in order[shift:] + order[:shift]:
                time.sleep(SETTLE)
                results[label].append(wrk(url, args.duration, args.connections, pid))
        width = max(len(label) for label in servers)
        print(f"  {'tracing':{width}s} {'req/s':>9s} {'p50 ms':>8s} {'cpu ms':>8s} {'errors':>7s}   vs off")
        off = results["off"]
        for label, runs in results.items():
            m = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            rps = [r["rps"] / o["rps"] for r, o in zip(runs, off, strict=True) if o["rps"]]
            cpu = [r["cpu_ms"] / o["cpu_ms"] for r, o in zip(runs, off, strict=True) if o["cpu_ms"]]
            errors = int(sum(r["errors"] for r in runs))
            print(f"  {label:{width}s} {m['rps']:9.1f} {m['p50']:8.2f} {m['cpu_ms']:8.3f} {errors:7d}   "
                  f"req/s {statistics.median(rps):.3f}x (rounds {', '.join(f'{x:.2f}' for x in rps)}), "
                  f"cpu per request {statistics.median(cpu):.3f}x")
        print(f"  the OTLP sink took {_Sink.batches} export batches")


if __name__ == "__main__":
    main()
