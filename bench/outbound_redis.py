#!/usr/bin/env python3
"""Benchmark outbound service calls from guests against the same calls made directly. Prints numbers
and ratios; never asserts.

Sections (run the ones named on the command line; default: all):

  redis   GET/SET round trips per second from a guest through tauon (the python-outbound fixture's
          /redis/bench route: N SET + GET pairs on one connection per request, requests one after
          another), against the same SET + GET pairs from redis-py on one connection in this process,
          in alternating rounds, and their ratio. The guest's figure includes its whole request
          (instantiation, routing, the response), so N is large enough for the round trips to dominate.

Needs: scripts/setup-dev (docker-registry, redis-server), the fixture toolchains (scripts/build-components).
Usage: .venv/bin/python bench/bench_outbound.py redis --redis-args '...' (or this file directly):
  .venv/bin/python bench/outbound_redis.py [redis ...] [--pairs 1000] [--rounds 5] [--requests 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import redis  # noqa: E402

from support.apps import app_file, push_app  # noqa: E402
from support.components import component_path  # noqa: E402
from support.daemon import free_port, run_tauon, wait_http  # noqa: E402
from support.registry import run_registry  # noqa: E402
from support.servers.redis import run_redis  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402


def guest_app(allowed: list[str]) -> SpinAppSpec:
    return SpinAppSpec(
        name="bench-outbound", components=[SpinComponent(
            id="web", wasm=component_path("python-outbound").read_bytes(),
            metadata={"allowed_outbound_hosts": allowed})],
        triggers=[{"route": "/...", "component": "web"}])


def direct_redis(port: int, pairs: int, requests: int) -> float:
    """Round trips per second from redis-py (default settings) on one connection."""
    client = redis.Redis(port=port)
    client.ping()
    start = time.perf_counter()
    for r in range(requests):
        for i in range(pairs):
            key = f"direct:{i}"
            client.set(key, b"value")
            if client.get(key) != b"value":
                raise SystemExit(f"bench: direct GET mismatch at {r}/{i}")
    elapsed = time.perf_counter() - start
    client.close()
    return 2 * pairs * requests / elapsed


def guest_redis(base: str, address: str, pairs: int, requests: int) -> float:
    """Round trips per second from the guest, whole requests included."""
    with httpx.Client(timeout=120) as client:
        start = time.perf_counter()
        for _ in range(requests):
            r = client.get(f"{base}/redis/bench?n={pairs}&p=guest", headers={"redis-address": address})
            if r.status_code != 200:
                raise SystemExit(f"bench: the guest answered {r.status_code}: {r.text}")
        elapsed = time.perf_counter() - start
    return 2 * pairs * requests / elapsed


def section_redis(args: argparse.Namespace, tmp: Path) -> None:
    with run_redis(tmp / "redis") as server, run_registry(tmp / "registry") as registry:
        ref = push_app(registry, "bench/outbound", "v1", guest_app([f"redis://127.0.0.1:{server.port}"]))
        with run_tauon(tmp / "tauon", "--log-level", "info") as tauon:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            (tauon.watch_dir / "bench.json").write_text(app_file(ref, port, limits={"request_timeout": 120}))
            wait_http(f"{base}/nothing", status=404, timeout=300)
            guest_redis(base, server.address, args.pairs, 2)  # warm up: compiled code, first requests
            direct_redis(server.port, args.pairs, 1)
            guest_rates: list[float] = []
            direct_rates: list[float] = []
            for _ in range(args.rounds):
                guest_rates.append(guest_redis(base, server.address, args.pairs, args.requests))
                direct_rates.append(direct_redis(server.port, args.pairs, args.requests))
    guest, direct = statistics.median(guest_rates), statistics.median(direct_rates)
    ratios = ", ".join(f"{g / d:.2f}" for g, d in zip(guest_rates, direct_rates, strict=True))
    print(f"redis: {args.pairs} SET+GET pairs per request, {args.requests} requests per round, "
          f"{args.rounds} rounds (median)")
    print(f"  guest through tauon : {guest:10,.0f} round trips/s")
    print(f"  redis-py directly   : {direct:10,.0f} round trips/s")
    print(f"  ratio               : {guest / direct:10.2f}x  (rounds: {ratios})")


SECTIONS: dict[str, Callable[[argparse.Namespace, Path], None]] = {"redis": section_redis}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help=f"sections to run: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--pairs", type=int, default=1000, help="SET+GET pairs per guest request")
    parser.add_argument("--requests", type=int, default=5, help="requests (or direct batches) per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    for name in args.sections or list(SECTIONS):
        with tempfile.TemporaryDirectory(prefix=f"tauon-bench-{name}-") as tmpdir:
            SECTIONS[name](args, Path(tmpdir))


if __name__ == "__main__":
    main()
