#!/usr/bin/env python3
"""N distinct apps in one daemon: ready times, memory, descriptors, first requests, swaps.

Every app is the C wasi:http fixture (or, for `--js K` of them, the 13 MB JS one) with its own custom
section appended (a distinct blob digest, so no compiled code or cache entry is shared by accident),
pushed to a local docker-registry as its own repository. `--mixed` is issue 17's mixed set: 80 C and
20 JS apps. The script prints:

1. cold start: `tauon` started on a watched directory holding all N app files, empty cache; seconds
   until every app answered 200 (with tiering on, from Winch's code) and, with tiering on, until every
   app serves Cranelift's code (the background compiles done);
2. Pss (from /proc/PID/smaps_rollup; anonymous and file-backed apart), open descriptors and threads of
   every tauon process, idle after the cold start (once every app serves Cranelift's code), then after
   one request per app, and the first-request latency per app (median, p99, max of the N first
   requests);
3. warm restart: the same directory and cache, a new process; seconds until every app answered 200 (the
   apps polled one after another, so this includes the client's own first request to each app still
   unseen once tauon is ready), and until tauon's /readyz first answered 200 (every app serving, by
   tauon's own account; polled every 0.25 s beside: each answer lists the apps still starting, and
   polling every 20 ms doubled the CPU of a 1,000-app warm restart), then the idle Pss after it, and
   after one request per app (the ratios cold/warm are issue 17's memory target);
4. swaps under load: one app's file rewritten every 0.5 s to alternate between two images while client
   threads send requests to random other apps; failed requests of the others (target: zero).

Never asserts. Needs: docker-registry (Debian), scripts/build-components (the `c` and `js` fixtures).
Usage: .venv/bin/python bench/bench_scale.py [--apps 100] [--js 0] [--mixed] [--workers N]
       [--tiering on|off] [--swap-seconds 10] [--smaps]
"""

from __future__ import annotations

import argparse
import os
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
from support.distinct import distinct  # noqa: E402
from support.registry import RegistryServer, run_registry  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402

PATHS = {"c": "/", "js": "/echo"}
"""The path each fixture answers 200 on."""


def kinds(count: int, js: int) -> list[str]:
    """The fixture of each app: `js` JS apps spread evenly among the C ones (app 0 is C: it swaps)."""
    every = count / js if js else 0.0
    chosen = {min(count - 1, int(1 + k * every)) for k in range(js)} if js else set()
    return ["js" if i in chosen else "c" for i in range(count)]


def push_apps(registry: RegistryServer, fixtures: list[str]) -> list[str]:
    bases = {name: component_path(name).read_bytes() for name in set(fixtures)}
    refs = []
    for i, name in enumerate(fixtures):
        app = SpinAppSpec(name=f"scale{i}", components=[
            SpinComponent(id=name, wasm=distinct(bases[name], f"tauon-bench-scale-{i}"))],
            triggers=[{"route": "/...", "component": name}])
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


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) `root` and its descendants have used, the exited ones (compile
    children) included: a figure that other load on the machine disturbs less than wall-clock time."""
    total = 0
    for pid in tauon_pids(root):
        try:
            fields = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / os.sysconf("SC_CLK_TCK")


def rollup_kib(pid: int) -> dict[str, int]:
    """smaps_rollup's kB fields of one process."""
    fields = {}
    for line in (Path(f"/proc/{pid}") / "smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split()[:2]
        fields[name.rstrip(":")] = int(value)
    return fields


def process_figures(pid: int) -> tuple[float, float, float, int, int, int]:
    """(Pss, anonymous Pss, file-backed Pss MiB, open fds, threads, mappings) of one process; zeros if
    it exited meanwhile."""
    try:
        rollup = rollup_kib(pid)
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
        status = (Path(f"/proc/{pid}") / "status").read_text()
        threads = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))
        with (Path(f"/proc/{pid}") / "maps").open() as maps:
            mappings = sum(1 for _ in maps)
    except (OSError, StopIteration, ValueError):
        return 0.0, 0.0, 0.0, 0, 0, 0
    return (rollup["Pss"] / 1024, rollup.get("Pss_Anon", 0) / 1024, rollup.get("Pss_File", 0) / 1024,
            fds, threads, mappings)


def report_processes(label: str, tauon: TauonProcess, smaps: bool = False) -> float:
    pids = tauon_pids(tauon.proc.pid)
    rows = [(pid, *process_figures(pid)) for pid in pids]
    total = sum(row[1] for row in rows)
    print(f"  {label}: {len(rows)} processes, Pss {total:8.1f} MiB (anon {sum(r[2] for r in rows):.1f}, "
          f"file {sum(r[3] for r in rows):.1f}), fds {sum(r[4] for r in rows):6d}, "
          f"threads {sum(r[5] for r in rows):5d}, mappings {sum(r[6] for r in rows):7d}")
    for pid, pss, anon, file, fds, threads, mappings in rows:
        print(f"      pid {pid:7d}  Pss {pss:8.1f} MiB (anon {anon:7.1f}, file {file:7.1f})  fds {fds:6d}  "
              f"threads {threads:4d}  mappings {mappings:6d}")
        if smaps:
            print_fds(pid)
            print_mappings(pid)
    return total


def print_fds(pid: int) -> None:
    """Open descriptors of one process by what they are (`--smaps`)."""
    kinds: dict[str, int] = {}
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            kind = target.split(":")[0] if ":" in target else "file"
            if kind == "file" and ("/compiled/" in target or "/components/" in target
                                   or "/modules/" in target):
                kind = "compiled code"
            kinds[kind] = kinds.get(kind, 0) + 1
    except OSError:
        return
    print("          fds: " + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items())))


def print_mappings(pid: int, top: int = 8) -> None:
    """The mappings with the most Pss of one process, summed by what backs them (`--smaps`)."""
    by_name: dict[str, list[int]] = {}
    name = ""
    try:
        text = (Path(f"/proc/{pid}") / "smaps").read_text()
    except OSError:
        return
    compiled: set[str] = set()
    for line in text.splitlines():
        head = line.split()
        if head and "-" in head[0] and ":" not in head[0]:
            name = head[5] if len(head) > 5 else "[anonymous]"
            if "/compiled/" in name:
                compiled.add(name)
            if "/compiled/" in name or "/blobs/" in name:
                name = str(Path(name).parent) + "/*"
            by_name.setdefault(name, [0, 0])[1] += 1
        elif head and head[0] == "Pss:":
            by_name[name][0] += int(head[1])
    print(f"          compiled code files mapped: {len(compiled)}")
    for name, (pss, count) in sorted(by_name.items(), key=lambda item: -item[1][0])[:top]:
        print(f"          {pss / 1024:8.1f} MiB in {count:6d} mappings  {name}")


def settle(tauon: TauonProcess, args: argparse.Namespace, *, updates: int = 0) -> None:
    """Until every worker process has been sent what the daemon serves (they start once its first
    apps serve), `updates` swaps are logged (each logged once every process serves it), and the
    processes' compiled-code mappings have not changed for 3 s: an idle figure taken earlier catches
    a worker still loading."""
    timeout = args.timeout
    workers = (args.workers if args.workers is not None else len(os.sched_getaffinity(0))) - 1
    if workers > 0:
        tauon.wait_log(r"worker \d+ \(pid \d+\) serves \d+ apps", timeout=timeout, count=workers)
    if updates:
        tauon.wait_log(r"updated to generation", timeout=timeout, count=updates)
    deadline, last, steady = time.perf_counter() + 300, -1, 0
    while steady < 3 and time.perf_counter() < deadline:
        time.sleep(1.0)
        now = sum(compiled_files(pid) for pid in tauon_pids(tauon.proc.pid))
        steady, last = (steady + 1, last) if now == last else (0, now)


def compiled_files(pid: int) -> int:
    """Compiled-code files one process maps."""
    try:
        with (Path(f"/proc/{pid}") / "maps").open() as maps:
            return len({line.split()[-1] for line in maps if "/compiled/" in line})
    except OSError:
        return 0


def wait_tiers(admin: str, count: int, timeout: float) -> None:
    """Until /status shows all `count` apps serving Cranelift's code (tiering's background compiles)."""
    deadline = time.perf_counter() + timeout
    while True:
        apps = httpx.get(f"{admin}/status", timeout=30).json()["apps"]
        tiers = [app.get("tier") for app in apps]
        if len(tiers) == count and all(tier == "cranelift" for tier in tiers):
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(f"not every app serves Cranelift's code after {timeout} s: {tiers}")
        time.sleep(0.5)


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


class ReadyWatch:
    """Polls the admin endpoint's /readyz every 0.25 s in a thread; `seconds` is the time from `start`
    to its first 200 (None until then)."""

    def __init__(self, admin: str, start: float) -> None:
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, args=(admin, start), daemon=True)
        self._thread.start()

    def _poll(self, admin: str, start: float) -> None:
        with httpx.Client(timeout=5) as http:
            while not self._stop.is_set():
                try:
                    if http.get(f"{admin}/readyz").status_code == 200:
                        self.seconds = time.perf_counter() - start
                        return
                except httpx.HTTPError:
                    pass
                self._stop.wait(0.25)  # not faster: while 1,000 apps start, each answer lists them

    def result(self) -> str:
        self._stop.set()
        self._thread.join()
        return f"{self.seconds:.1f} s" if self.seconds is not None else "not yet"


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
                     wait_started=False, admin=True, env={"TAUON_TIERING": args.tiering})


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--js", type=int, default=0, help="how many of the apps are the JS fixture")
    parser.add_argument("--mixed", action="store_true", help="issue 17's set: --apps 100 --js 20")
    parser.add_argument("--tiering", choices=("on", "off"), default="on", help="tauon --tiering")
    parser.add_argument("--smaps", action="store_true", help="each process's largest mappings too")
    parser.add_argument("--workers", type=int, default=None, help="tauon --workers (default: its own)")
    parser.add_argument("--swap-seconds", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    if args.mixed:
        args.apps, args.js = 100, 20
    fixtures = kinds(args.apps, args.js)

    with tempfile.TemporaryDirectory(prefix="tauon-bench-scale-") as tmpdir:
        tmp = Path(tmpdir)
        with run_registry(tmp / "registry") as registry:
            start = time.perf_counter()
            refs = push_apps(registry, fixtures)
            alternate = push_apps_alternate(registry)
            sizes = ", ".join(f"{fixtures.count(name)} x {name} ({component_path(name).stat().st_size} B)"
                              for name in sorted(set(fixtures)))
            print(f"== {args.apps} distinct apps ({sizes}), tiering {args.tiering}, pushed in "
                  f"{time.perf_counter() - start:.1f} s; load average {load_average()}")
            ports = [free_port() for _ in refs]
            urls = [f"http://127.0.0.1:{port}{PATHS[name]}"
                    for port, name in zip(ports, fixtures, strict=True)]
            watch, cache = tmp / "apps", tmp / "cache"
            watch.mkdir()
            for i, (ref, port) in enumerate(zip(refs, ports, strict=True)):
                (watch / f"app{i}.json").write_text(app_file(ref, port))

            start = time.perf_counter()
            with serving(tmp, "cold", watch, cache, args) as tauon:
                cold, firsts = wait_all(urls, start, args.timeout)
                print(f"== cold start (empty cache): every app answered 200 after {cold:.1f} s "
                      f"(load average {load_average()}; tauon's CPU {tree_cpu(tauon.proc.pid):.1f} s)")
                print(f"  first request per app (ms): {summary(firsts)}")
                if args.tiering == "on":
                    assert tauon.admin is not None
                    wait_tiers(tauon.admin, args.apps, args.timeout)
                    print(f"  every app serves Cranelift's code after {time.perf_counter() - start:.1f} s "
                          f"(tauon's CPU {tree_cpu(tauon.proc.pid):.1f} s)")
                settle(tauon, args, updates=args.apps if args.tiering == "on" else 0)
                cold_pss = report_processes("idle after the cold start", tauon, args.smaps)
                print(f"  next request per app (ms):  {summary(one_request_each(urls))}")
                cold_used = report_processes("after one request per app", tauon, args.smaps)

            start = time.perf_counter()
            with serving(tmp, "warm", watch, cache, args) as tauon:
                assert tauon.admin is not None
                ready = ReadyWatch(tauon.admin, start)
                warm, firsts = wait_all(urls, start, args.timeout)
                print(f"== warm restart (cached blobs and compiled code): every app answered 200 "
                      f"after {warm:.1f} s, /readyz 200 after {ready.result()} (load average "
                      f"{load_average()}; tauon's CPU {tree_cpu(tauon.proc.pid):.1f} s)")
                print(f"  first request per app (ms): {summary(firsts)}")
                settle(tauon, args)
                warm_pss = report_processes("idle after the warm restart", tauon, args.smaps)
                print(f"  idle Pss cold/warm: {cold_pss / warm_pss:.2f}x")
                print(f"  next request per app (ms):  {summary(one_request_each(urls))}")
                warm_used = report_processes("after one request per app", tauon, args.smaps)
                print(f"  Pss after one request each, cold/warm: {cold_used / warm_used:.2f}x")
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
