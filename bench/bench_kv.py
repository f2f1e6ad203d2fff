#!/usr/bin/env python3
"""Benchmark the default key-value store in SQLite (the app's state dir) against the default store in
Redis (`[key_value_store.default] type = "redis"` in a runtime config), through a guest. Prints numbers
and ratios; never asserts.

  get/set   requests/s of the python-kv fixture's PUT and GET /kv/default/KEY (one key-value call per
            request, whole requests included), C concurrent clients, the two apps served by one tauon,
            in alternating rounds (median and each round's Redis/SQLite ratio).
  replicas  N tauon processes sharing one Redis default store, each sent its share of increments
            (wasi:keyvalue/atomics) at once: increments/s and whether the counter is exact.

Needs: scripts/setup-dev (docker-registry, redis-server), the fixture toolchains.
Usage: .venv/bin/python bench/bench_kv.py [--requests 300] [--clients 4] [--rounds 3]
       [--replicas 3] [--increments 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402

from support.apps import app_file, push_app  # noqa: E402
from support.daemon import free_port, run_tauon, wait_http  # noqa: E402
from support.kvapp import kv_app  # noqa: E402
from support.registry import run_registry  # noqa: E402
from support.servers.redis import run_redis  # noqa: E402


def load(base: str, method: str, requests: int, clients: int) -> float:
    """Requests per second of `method` /kv/default/k<i> from `clients` threads."""
    failures: list[str] = []

    def client(offset: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            for i in range(offset, requests, clients):
                body = b"v" * 64 if method == "PUT" else None
                r = http.request(method, f"/kv/default/k{i % 50}", content=body)
                if r.status_code != 200:
                    failures.append(f"{method} {r.status_code} {r.text[:100]}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if failures:
        raise SystemExit(f"bench: {len(failures)} failed requests, e.g. {failures[0]}")
    return requests / elapsed


def section_get_set(args: argparse.Namespace, tmp: Path, ref: str, redis_url: str) -> None:
    with run_tauon(tmp / "tauon", "--log-level", "info") as tauon:
        sqlite_port, redis_port = free_port(), free_port()
        (tauon.watch_dir / "rc.toml").write_text(
            f'[key_value_store.default]\ntype = "redis"\nurl = "{redis_url}"\n')
        (tauon.watch_dir / "sqlite.json").write_text(app_file(ref, sqlite_port, state_dir="bench"))
        (tauon.watch_dir / "redis.json").write_text(app_file(ref, redis_port, runtime_config="rc.toml"))
        bases = {"sqlite": f"http://127.0.0.1:{sqlite_port}", "redis": f"http://127.0.0.1:{redis_port}"}
        for base in bases.values():
            wait_http(f"{base}/keys/default", timeout=600)
            load(base, "PUT", 50, 2)  # warm up: compiled code, connections
        for method in ("PUT", "GET"):
            rates: dict[str, list[float]] = {"sqlite": [], "redis": []}
            for _ in range(args.rounds):
                for name, base in bases.items():
                    rates[name].append(load(base, method, args.requests, args.clients))
            sq, rd = statistics.median(rates["sqlite"]), statistics.median(rates["redis"])
            ratios = ", ".join(f"{r / s:.2f}" for s, r in zip(rates["sqlite"], rates["redis"], strict=True))
            what = "set" if method == "PUT" else "get"
            print(f"{what}: {args.requests} requests x {args.rounds} rounds, {args.clients} clients (median)")
            print(f"  SQLite default store : {sq:8,.0f} requests/s")
            print(f"  Redis default store  : {rd:8,.0f} requests/s")
            print(f"  ratio Redis/SQLite   : {rd / sq:8.2f}x  (rounds: {ratios})")


def section_replicas(args: argparse.Namespace, tmp: Path, ref: str, redis_url: str) -> None:
    rc = tmp / "rc.toml"
    rc.write_text(f'[key_value_store.default]\ntype = "redis"\nurl = "{redis_url}"\n')
    ports = [free_port() for _ in range(args.replicas)]
    with ExitStack() as stack:
        for i, port in enumerate(ports):
            tauon = stack.enter_context(run_tauon(tmp / f"replica{i}", "--runtime-config", str(rc),
                                                  "--log-level", "info", wait_started=False))
            tauon.watch_dir.mkdir(parents=True, exist_ok=True)
            (tauon.watch_dir / "shop.json").write_text(app_file(ref, port))
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        for base in bases:
            wait_http(f"{base}/keys/default", timeout=600)
        httpx.delete(f"{bases[0]}/kv/default/bench-counter")
        threads = [threading.Thread(target=lambda b=base: [httpx.get(f"{b}/incr/default/bench-counter",
                                                                      timeout=120)
                                                            for _ in range(args.increments // 4)])
                   for base in bases for _ in range(4)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        total = int(httpx.get(f"{bases[0]}/kv/default/bench-counter").text)
    expected = args.replicas * (args.increments // 4) * 4
    print(f"replicas: {args.replicas} tauon processes x {expected // args.replicas} increments, "
          "4 clients each")
    print(f"  increments/s through guests : {expected / elapsed:8,.0f}  ({elapsed:.1f} s)")
    verdict = "exact" if total == expected else "WRONG"
    print(f"  counter                     : {total} (expected {expected}: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--increments", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tauon-bench-kv-") as tmpdir:
        tmp = Path(tmpdir)
        with run_redis(tmp / "redis") as server, run_registry(tmp / "registry") as registry:
            ref = push_app(registry, "bench/kv", "v1", kv_app(["default"]))
            section_get_set(args, tmp, ref, server.address)
            section_replicas(args, tmp, ref, server.address)


if __name__ == "__main__":
    main()
