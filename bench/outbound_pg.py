#!/usr/bin/env python3
"""Benchmark guests' outbound clients through tauon against the same operations from the same Python
client directly, in one invocation. Prints numbers and ratios; never asserts.

Sections (name them on the command line; none: all):
  postgres   point-select round trips per second: a guest route doing N `SELECT v FROM kv WHERE k = $1`
             on one connection per request (c-postgres's /selects, a C guest without an interpreter,
             which shows tauon's own cost; the python-outbound fixture's /pg/v4/selects, a spin-sdk
             3.4.1 Python guest; js-postgres's /selects, a componentize-js guest) served by the real
             `tauon` process, against the same selects from psycopg directly (one connection per
             client thread, as many threads as HTTP clients). Target: ratio >= 0.5x.
  client     tauon's own client code without a guest: `PgConnection.query` (what a guest's query runs
             host-side) against the same select from psycopg directly, one thread each, in turns: the
             CPU each spends per select (the server's not counted) and the ratio.

Needs: scripts/setup-dev (postgresql, docker-registry) and the fixtures (scripts/build-components
c-postgres python-outbound js-postgres; built on demand).
Usage: .venv/bin/python bench/bench_outbound.py postgres --postgres-args '...' (or this file directly):
  .venv/bin/python bench/outbound_pg.py [postgres] [client] [--duration 10] [--clients 4] [--selects 50]
      [--guests c,python,js] [--tauon-args '--workers 1']
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
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

from loadtools import cpu_seconds  # noqa: E402
from support.apps import app_file, push_app  # noqa: E402
from support.components import component_path  # noqa: E402
from support.daemon import TauonProcess, free_port, run_tauon, wait_http  # noqa: E402
from support.registry import RegistryServer, run_registry  # noqa: E402
from support.servers.postgres import PostgresServer, run_postgres  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402


def run_clients(clients: int, duration: float, work: Callable[[int], Callable[[], int]],
                cpu: Callable[[], float] = time.process_time) -> tuple[float, float]:
    """`clients` threads each calling its `work(i)()` (which returns operations done) for `duration`
    seconds: (operations per second over all of them, `cpu` seconds spent per operation)."""
    rate, cpus = run_measured(clients, duration, work, {"cpu": cpu})
    return rate, cpus["cpu"]


def run_measured(clients: int, duration: float, work: Callable[[int], Callable[[], int]],
                 cpus: dict[str, Callable[[], float]]) -> tuple[float, dict[str, float]]:
    """run_clients with several CPU meters: (operations per second, CPU seconds per operation by meter)."""
    done = [0] * clients
    stop = time.monotonic() + duration

    steps: list[Callable[[], int]] = []  # kept past the join: their connections (and the server's
    # backends, whose CPU is counted while they live) close only after the meters are read

    def loop(i: int) -> None:
        step = work(i)
        steps.append(step)
        while time.monotonic() < stop:
            done[i] += step()

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    start, cpu_start = time.monotonic(), {name: meter() for name, meter in cpus.items()}
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ops = max(sum(done), 1)
    elapsed = time.monotonic() - start
    spent = {name: (meter() - cpu_start[name]) / ops for name, meter in cpus.items()}
    steps.clear()
    return ops / elapsed, spent


def family_cpu_seconds(pid: int) -> float:
    """CPU of a server process and every child it ever had: the live ones' own, the exited ones' as
    the parent's cutime/cstime (PostgreSQL's postmaster reaps its backends), so it never goes back."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")  # cutime, cstime
    return cpu_seconds(pid) + reaped


def push_guest(registry: RegistryServer, fixture: str, allowed: list[str]) -> str:
    app = SpinAppSpec(name=fixture, components=[SpinComponent(
        id="guest", wasm=component_path(fixture).read_bytes(),
        metadata={"allowed_outbound_hosts": allowed})],
        triggers=[{"route": "/...", "component": "guest"}])
    return push_app(registry, f"bench/{fixture}", "v1", app)


GUESTS = {"c": ("C", "c-postgres", "/selects"), "python": ("Python", "python-outbound", "/pg/v4/selects"),
          "js": ("JS", "js-postgres", "/selects")}
"""Guest name -> (label, fixture, route of N point selects)."""


def serve_guests(tauon: TauonProcess, registry: RegistryServer, pg: PostgresServer,
                 names: list[str]) -> dict[str, str]:
    """Push and serve each guest: its selects URL."""
    allowed = [f"postgres://127.0.0.1:{pg.port}"]
    urls = {}
    for name in names:
        _, fixture, route = GUESTS[name]
        port = free_port()
        (tauon.watch_dir / f"{name}.json").write_text(app_file(push_guest(registry, fixture, allowed), port))
        wait_http(f"http://127.0.0.1:{port}/.well-known/spin/health", timeout=300)
        urls[name] = f"http://127.0.0.1:{port}{route}"
    return urls


def guest_client(url: str, address: str, n: int) -> Callable[[int], Callable[[], int]]:
    """A client thread's step: one request of n selects (checked)."""
    def client(i: int) -> Callable[[], int]:
        http = httpx.Client(timeout=60)

        def step() -> int:
            r = http.get(url, params={"address": address, "n": n, "id": i})
            if r.status_code != 200 or int(r.text) != n:
                raise RuntimeError(f"guest route failed: {r.status_code} {r.text[:200]}")
            return n

        return step

    return client


def direct_client(address: str, n: int) -> Callable[[int], Callable[[], int]]:
    def client(i: int) -> Callable[[], int]:
        conn = psycopg.connect(address, autocommit=True)

        def step() -> int:
            for j in range(n):
                row = conn.execute("SELECT v FROM kv WHERE k = %s", [(i + j) % 100]).fetchone()
                assert row is not None
            return n

        return step

    return client


def create_table(pg: PostgresServer) -> None:
    pg.sql("CREATE TABLE kv (k int4 PRIMARY KEY, v text)")
    pg.sql("INSERT INTO kv SELECT i, 'value ' || i FROM generate_series(0, 99) i")


Run = tuple[float, dict[str, float]]
"""(selects per second, CPU seconds per select by meter: `client` (this process: psycopg, or the
guests' HTTP clients), `server` (PostgreSQL's processes), `tauon` (tauon's, for guests))."""


def postgres(args: argparse.Namespace) -> None:
    names = [name for name in args.guests.split(",") if name]
    unknown = [name for name in names if name not in GUESTS]
    if unknown:
        raise SystemExit(f"unknown guest(s) {unknown}; known: {', '.join(GUESTS)}")
    n: int = args.selects
    rounds: list[tuple[Run, dict[str, Run]]] = []
    with tempfile.TemporaryDirectory(prefix="tauon-bench-pg-") as tmpdir:
        tmp = Path(tmpdir)
        with run_postgres(tmp / "pg") as pg, run_registry(tmp / "registry") as registry, \
                run_tauon(tmp / "tauon", *shlex.split(args.tauon_args), log_level="info") as tauon:
            create_table(pg)
            urls = serve_guests(tauon, registry, pg, names)

            assert pg.process.pid is not None
            server_pid, tauon_pid = pg.process.pid, tauon.proc.pid
            direct_meters = {"client": time.process_time, "server": lambda: family_cpu_seconds(server_pid)}
            guest_meters = {**direct_meters, "tauon": lambda: cpu_seconds(tauon_pid)}

            for url in urls.values():  # warm-up: instances, pools, prepared statements
                run_clients(args.clients, 2.0, guest_client(url, pg.url, n))
            for _ in range(args.rounds):
                # the direct run sits between the guests' runs: load drift on a shared machine
                # then shows in the ratios rather than favouring one side
                guests: dict[str, Run] = {}
                half = (len(names) + 1) // 2
                for name in names[:half]:
                    guests[name] = run_measured(args.clients, args.duration,
                                                guest_client(urls[name], pg.url, n), guest_meters)
                direct = run_measured(args.clients, args.duration, direct_client(pg.url, n), direct_meters)
                for name in names[half:]:
                    guests[name] = run_measured(args.clients, args.duration,
                                                guest_client(urls[name], pg.url, n), guest_meters)
                rounds.append((direct, guests))
    report(args, names, rounds)


def _us(cpus: dict[str, float]) -> str:
    return "+".join(f"{cpus[k] * 1e6:.0f}" for k in ("tauon", "client", "server") if k in cpus)


def report(args: argparse.Namespace, names: list[str], rounds: list[tuple[Run, dict[str, Run]]]) -> None:
    print(f"== PostgreSQL point selects: {args.clients} clients, {args.selects} selects per guest request, "
          f"{args.duration:.0f} s per run, loopback, load average {os.getloadavg()[0]:.1f}")
    print("   rate (ratio to psycopg), then CPU us per select: [tauon +] client + server, where client is"
          " this process (psycopg, or the guests' HTTP clients)")
    for i, ((direct_rate, direct_cpus), guests) in enumerate(rounds, 1):
        line = f"  round {i}: psycopg {direct_rate:6.0f}/s {_us(direct_cpus)}"
        for name in names:
            rate, cpus = guests[name]
            line += f" | {GUESTS[name][0]} {rate:6.0f}/s ({rate / direct_rate:.2f}x) {_us(cpus)}"
        print(line)
    total_direct = sum(direct[0] for direct, _ in rounds)
    overall = ", ".join(f"{GUESTS[name][0]} {sum(g[name][0] for _, g in rounds) / total_direct:.2f}x"
                        for name in names)
    print(f"  overall rate: {overall} of psycopg directly (target >= 0.5x)")
    # On a machine whose CPUs are saturated (by these runs or by others), the rate follows the CPU all
    # processes spend per select; this ratio does not move with other load the way the rates do. The
    # server's share is the psycopg run's for both sides: its meter also catches backends of earlier
    # runs as they exit, which can land in a guest's run.
    server = statistics.median(d[1]["server"] for d, _ in rounds)
    direct_total = statistics.median(d[1]["client"] for d, _ in rounds) + server
    guest_totals = {name: statistics.median(g[name][1]["tauon"] + g[name][1]["client"] for _, g in rounds)
                    + server for name in names}
    by_cpu = ", ".join(f"{GUESTS[name][0]} {direct_total / guest_totals[name]:.2f}x" for name in names)
    print(f"  CPU-bound ratio (psycopg + server CPU per select / tauon + HTTP client + server, medians): "
          f"{by_cpu}")


def client(args: argparse.Namespace) -> None:
    from tauon.services.postgres import PgClients

    n = max(args.selects, 1) * 40
    with tempfile.TemporaryDirectory(prefix="tauon-bench-pg-") as tmpdir, \
            run_postgres(Path(tmpdir) / "pg") as pg:
        create_table(pg)
        clients = PgClients()
        tauon_conn = clients.acquire(pg.url, time.monotonic() + 60)
        direct_conn = psycopg.connect(pg.url, autocommit=True)

        def via_tauon(j: int) -> None:
            _, rows = tauon_conn.query("SELECT v FROM kv WHERE k = $1", [("int32", j % 100)],
                                       time.monotonic() + 60)
            assert rows

        def direct(j: int) -> None:
            assert direct_conn.execute("SELECT v FROM kv WHERE k = %s", [j % 100]).fetchone()

        def cpu_per_select(select: Callable[[int], None]) -> float:
            started = time.thread_time()
            for j in range(n):
                select(j)
            return (time.thread_time() - started) / n

        for select in (via_tauon, direct):  # warm-up: prepared statements, caches
            cpu_per_select(select)
        rounds = [(cpu_per_select(via_tauon), cpu_per_select(direct)) for _ in range(args.rounds)]
        tauon_conn.release()
        clients.close()
        direct_conn.close()
    print(f"== PostgreSQL client CPU per point select, no guest: {n} selects per run, one thread")
    for i, (t, d) in enumerate(rounds, 1):
        print(f"  round {i}: tauon's PgConnection.query {t * 1e6:5.1f} us   "
              f"psycopg directly {d * 1e6:5.1f} us"
              f"   ({t / d:.2f}x the CPU)")
    ratios = sorted(t / d for t, d in rounds)
    print(f"  median: {ratios[len(ratios) // 2]:.2f}x psycopg's CPU per select")


SECTIONS: dict[str, Callable[[argparse.Namespace], None]] = {"postgres": postgres, "client": client}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], metavar="SECTION", default=[],
                        help=f"sections to run: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--selects", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--guests", default=",".join(GUESTS),
                        help=f"comma-separated guests to run (default: all of {', '.join(GUESTS)})")
    parser.add_argument("--tauon-args", default="", help="extra tauon options, as one string")
    args = parser.parse_args(argv)
    for name in args.sections or list(SECTIONS):
        SECTIONS[name](args)


if __name__ == "__main__":
    main()
