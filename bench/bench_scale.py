#!/usr/bin/env python3
"""N distinct tiny apps in one daemon: ready times, memory, descriptors, first requests, swaps.

Every app is the C wasi:http fixture with its own custom section appended (a distinct blob digest, so
no compiled code or cache entry is shared by accident), pushed to a local docker-registry as its own
repository. The script prints:

1. cold start: `tauon` started on a watched directory holding all N app files, empty cache; seconds
   until every app answered 200;
2. Pss (from /proc/PID/smaps_rollup), open descriptors and threads of every tauon process, idle after
   the cold start, then after one request per app, and the first-request latency per app (median, p99,
   max of the N first requests);
3. warm restart: the same directory and cache, a new process; seconds until every app answered 200, and
   the idle Pss after it (the ratio cold/warm is issue 17's memory target);
4. swaps under load: one app's file rewritten every 0.5 s to alternate between two images while client
   threads send requests to random other apps; failed requests of the others (target: zero).

Needs: docker-registry (Debian), scripts/build-components (the `c` fixture).
Usage: .venv/bin/python bench/bench_scale.py [--apps 100] [--workers N] [--swap-seconds 10]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.apps import app_file, push_app  # noqa: E402
from support.components import component_path  # noqa: E402
from support.daemon import TauonProcess, free_port, run_tauon  # noqa: E402
from support.registry import RegistryServer, run_registry  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def distinct(wasm: bytes, marker: str) -> bytes:
    """`wasm` with a custom section named `marker` appended (custom sections may end a component)."""
    name = marker.encode()
    body = leb128(len(name)) + name
    return wasm + b"\x00" + leb128(len(body)) + body


def push_apps(registry: RegistryServer, count: int) -> list[str]:
    base = component_path("c").read_bytes()
    refs = []
    for i in range(count):
        app = SpinAppSpec(name=f"scale{i}", components=[
            SpinComponent(id="c", wasm=distinct(base, f"tauon-bench-scale-{i}"))],
            triggers=[{"route": "/...", "component": "c"}])
        refs.append(push_app(registry, f"scale/app{i}", "v1", app))
    return refs


def tauon_pids(root: int) -> list[int]:
    """`root` and its descendants (the worker processes, any compile child)."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(proc.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def process_figures(pid: int) -> tuple[float, int, int]:
    """(Pss MiB, open fds, threads) of one process; zeros if it exited meanwhile."""
    try:
        rollup = (Path(f"/proc/{pid}") / "smaps_rollup").read_text()
        pss = next(int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Pss:"))
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
        status = (Path(f"/proc/{pid}") / "status").read_text()
        threads = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))
    except (OSError, StopIteration):
        return 0.0, 0, 0
    return pss / 1024, fds, threads


def report_processes(label: str, tauon: TauonProcess) -> float:
    pids = tauon_pids(tauon.proc.pid)
    rows = [(pid, *process_figures(pid)) for pid in pids]
    total = sum(row[1] for row in rows)
    print(f"  {label}: {len(rows)} processes, Pss {total:8.1f} MiB, fds {sum(r[2] for r in rows):6d}, "
          f"threads {sum(r[3] for r in rows):5d}")
    for pid, pss, fds, threads in rows:
        print(f"      pid {pid:7d}  Pss {pss:8.1f} MiB  fds {fds:6d}  threads {threads:4d}")
    return total


def wait_all(urls: list[str], start: float, timeout: float) -> tuple[float, list[float]]:
    """Seconds from `start` until every URL has answered 200 once (each polled until it does), and
    the milliseconds each app's first successful request took (its first request ever: refused
    connections before it never reached a guest)."""
    deadline = start + timeout
    firsts = []
    with httpx.Client(timeout=30) as http:
        for url in urls:
            while True:
                sent = time.perf_counter()
                try:
                    if http.get(url).status_code == 200:
                        firsts.append((time.perf_counter() - sent) * 1000)
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{url} never answered 200 within {timeout} s")
                time.sleep(0.01)
    return time.perf_counter() - start, firsts


def one_request_each(urls: list[str]) -> list[float]:
    """Milliseconds of one more request per app, once all are serving."""
    times = []
    with httpx.Client(timeout=30) as http:
        for url in urls:
            start = time.perf_counter()
            http.get(url).raise_for_status()
            times.append((time.perf_counter() - start) * 1000)
    return times


def swaps_under_load(tauon: TauonProcess, refs: list[str], ports: list[int], urls: list[str],
                     seconds: float, alternate: str) -> tuple[int, int, int]:
    """(requests, failures, swaps): app 0 alternates images while threads hit the other apps."""
    stop = threading.Event()
    counts = {"requests": 0, "failures": 0}
    lock = threading.Lock()

    def client() -> None:
        rng = random.Random()
        with httpx.Client(timeout=30) as http:
            while not stop.is_set():
                url = urls[rng.randrange(1, len(urls))]
                try:
                    ok = http.get(url).status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    counts["requests"] += 1
                    counts["failures"] += not ok

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    swaps = 0
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            ref = alternate if swaps % 2 == 0 else refs[0]
            (tauon.watch_dir / "app0.json").write_text(app_file(ref, ports[0]))
            swaps += 1
            time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return counts["requests"], counts["failures"], swaps


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered):7.2f}  p99 {p99:7.2f}  max {ordered[-1]:7.2f}"


def serving(tmp: Path, label: str, watch: Path, cache: Path,
            args: argparse.Namespace) -> AbstractContextManager[TauonProcess]:
    extra = ["--workers", str(args.workers)] if args.workers is not None else []
    return run_tauon(tmp / label, *extra, log_level="info", watch_dir=watch, cache_dir=cache,
                     wait_started=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=None, help="tauon --workers (default: its own)")
    parser.add_argument("--swap-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="tauon-bench-scale-") as tmpdir:
        tmp = Path(tmpdir)
        with run_registry(tmp / "registry") as registry:
            start = time.perf_counter()
            refs = push_apps(registry, args.apps)
            alternate = push_apps_alternate(registry)
            print(f"== {args.apps} distinct apps (C fixture, {component_path('c').stat().st_size} B each) "
                  f"pushed in {time.perf_counter() - start:.1f} s")
            ports = [free_port() for _ in refs]
            urls = [f"http://127.0.0.1:{port}/" for port in ports]
            watch, cache = tmp / "apps", tmp / "cache"
            watch.mkdir()
            for i, (ref, port) in enumerate(zip(refs, ports, strict=True)):
                (watch / f"app{i}.json").write_text(app_file(ref, port))

            start = time.perf_counter()
            with serving(tmp, "cold", watch, cache, args) as tauon:
                cold, firsts = wait_all(urls, start, args.timeout)
                print(f"== cold start (empty cache): every app answered 200 after {cold:.1f} s")
                print(f"  first request per app (ms): {summary(firsts)}")
                time.sleep(2.0)  # workers resync after their first answers
                cold_pss = report_processes("idle after the cold start", tauon)
                print(f"  next request per app (ms):  {summary(one_request_each(urls))}")
                report_processes("after one request per app", tauon)

            start = time.perf_counter()
            with serving(tmp, "warm", watch, cache, args) as tauon:
                warm, firsts = wait_all(urls, start, args.timeout)
                print(f"== warm restart (cached blobs and compiled code): every app answered 200 "
                      f"after {warm:.1f} s")
                print(f"  first request per app (ms): {summary(firsts)}")
                time.sleep(2.0)
                warm_pss = report_processes("idle after the warm restart", tauon)
                print(f"  idle Pss cold/warm: {cold_pss / warm_pss:.2f}x")
                print(f"  next request per app (ms):  {summary(one_request_each(urls))}")
                report_processes("after one request per app", tauon)
                requests, failures, swaps = swaps_under_load(tauon, refs, ports, urls,
                                                             args.swap_seconds, alternate)
                print(f"== {swaps} swaps of app0 in {args.swap_seconds:.0f} s while 4 clients hit the "
                      f"other {args.apps - 1} apps: {requests} requests, {failures} failed")


def push_apps_alternate(registry: RegistryServer) -> str:
    """A second image for app0's swaps (its own digest too)."""
    app = SpinAppSpec(name="scale-alt", components=[
        SpinComponent(id="c", wasm=distinct(component_path("c").read_bytes(), "tauon-bench-scale-alt"))],
        triggers=[{"route": "/...", "component": "c"}])
    return push_app(registry, "scale/alt", "v1", app)


if __name__ == "__main__":
    main()
