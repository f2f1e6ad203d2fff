#!/usr/bin/env python3
"""Benchmark guests' outbound clients through tauon against the same operations from the same Python
client directly, in one invocation. Prints numbers and ratios; never asserts.

Sections (name them on the command line; none: all):
  postgres   point-select round trips per second: the python-outbound fixture's /pg/v4/selects route
             (N `SELECT v FROM kv WHERE k = $1` on one connection per request) served by the real
             `tauon` process, against the same selects from psycopg directly (one connection per
             client thread, as many threads as HTTP clients). Target: ratio >= 0.5x.

Needs: scripts/setup-dev (postgresql, docker-registry) and the fixture (scripts/build-components
python-outbound).
Usage: .venv/bin/python bench/bench_outbound.py [postgres] [--duration 10] [--clients 4] [--selects 50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.apps import app_file  # noqa: E402
from support.daemon import free_port, run_tauon, wait_http  # noqa: E402
from support.rdbms import push_outbound  # noqa: E402
from support.registry import run_registry  # noqa: E402
from support.servers.postgres import run_postgres  # noqa: E402


def run_clients(clients: int, duration: float, work: Callable[[int], Callable[[], int]]) -> float:
    """`clients` threads each calling its `work(i)()` (which returns operations done) for `duration`
    seconds; operations per second over all of them."""
    done = [0] * clients
    stop = time.monotonic() + duration

    def loop(i: int) -> None:
        step = work(i)
        while time.monotonic() < stop:
            done[i] += step()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - start)


def postgres(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="tauon-bench-pg-") as tmpdir:
        tmp = Path(tmpdir)
        with run_postgres(tmp / "pg") as pg, run_registry(tmp / "registry") as registry, \
                run_tauon(tmp / "tauon", "--log-level", "info") as tauon:
            pg.sql("CREATE TABLE kv (k int4 PRIMARY KEY, v text)")
            pg.sql("INSERT INTO kv SELECT i, 'value ' || i FROM generate_series(0, 99) i")
            ref = push_outbound(registry, "bench/outbound", [f"postgres://127.0.0.1:{pg.port}"])
            port = free_port()
            (tauon.watch_dir / "pg.json").write_text(app_file(ref, port))
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/.well-known/spin/health", timeout=300)
            n = args.selects
            url = f"{base}/pg/v4/selects"

            def guest(i: int) -> Callable[[], int]:
                http = httpx.Client(timeout=60)

                def step() -> int:
                    r = http.get(url, params={"address": pg.url, "n": n, "id": i})
                    if r.status_code != 200 or int(r.text) != n:
                        raise RuntimeError(f"guest route failed: {r.status_code} {r.text[:200]}")
                    return n

                return step

            def direct(i: int) -> Callable[[], int]:
                conn = psycopg.connect(pg.url, autocommit=True)

                def step() -> int:
                    for j in range(n):
                        row = conn.execute("SELECT v FROM kv WHERE k = %s", [(i + j) % 100]).fetchone()
                        assert row is not None
                    return n

                return step

            run_clients(args.clients, 2.0, guest)  # warm-up: instances, pools, prepared statements
            rounds = []
            for _ in range(args.rounds):
                via_tauon = run_clients(args.clients, args.duration, guest)
                via_psycopg = run_clients(args.clients, args.duration, direct)
                rounds.append((via_tauon, via_psycopg))
    print(f"== PostgreSQL point selects: {args.clients} clients, {n} selects per guest request, "
          f"{args.duration:.0f} s per run, loopback")
    for i, (via_tauon, via_psycopg) in enumerate(rounds, 1):
        print(f"  round {i}: guest through tauon {via_tauon:9.0f} selects/s   psycopg directly "
              f"{via_psycopg:9.0f} selects/s   ratio {via_tauon / via_psycopg:.2f}x")
    total_tauon = sum(r[0] for r in rounds)
    total_direct = sum(r[1] for r in rounds)
    print(f"  overall ratio guest/direct {total_tauon / total_direct:.2f}x (target >= 0.5x)")


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {"postgres": postgres}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], metavar="SECTION",
                        help=f"sections to run: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--selects", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for name in args.sections or list(SECTIONS):
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
