#!/usr/bin/env python3
"""Soak: the real daemon and its workers under concurrent load for a while, with one app swapped
during it. Prints each process's Pss, open descriptors and threads before, every --interval seconds,
and after (Pss also split into wasmtime's instance pool and the rest); their growth, per 100k
requests too; and flags what grew beyond the tolerances. Never
asserts; exits 1 when something is flagged.

Apps (a local docker-registry, real Spin artifacts): `c` (the C wasi:http component, swapped between
two versions every --swap-every seconds), `js` (the JS component, /echo) and `kv` (the Python SDK
component with a `state_dir`: each connection alternates PUT and GET of a key-value entry, so SQLite
state is written and read). One `wrk` per app runs for --duration seconds, at once.

The reference is the same invocation's baseline: taken after a warm-up (--warm-up seconds, default
15, of the same load on every app and two swaps, so warm instance slots, pools and caches exist) and
--settle seconds of rest (idle guest threads exit after 60 s).

Tolerances, checked once the load has stopped and the processes have rested (up to --settle seconds,
polling): descriptors and threads back at the baseline (+--fd-slack/--thread-slack); no failed
request, no worker restart; and Pss outside wasmtime's instance pool grown at most --pss-slack-mib
per process from the middle of the load to the rest. The pool's share of Pss (its reservation: a run
of anonymous and copy-on-write mappings of over 1 TiB in /proc/PID/smaps) is printed but not
judged: warm instance slots keep guest memory resident by design (at most 32 // processes slots per
process, each up to --keep-resident-mib, 32, of what its guest touched), and which slots end up warm
settles only over time. Judging from the middle of the load leaves out what a first pass creates; a
leak grows with requests in the second half as in the first. Growth from the baseline is printed
too, per 100k requests.

Needs: scripts/setup-dev (docker-registry, wrk) and the component fixtures (scripts/build-components).
Usage: .venv/bin/python bench/bench_soak.py [--duration 60] [--interval 10] [--swap-every 5]
       [--connections 4] [--workers 2] [--settle 90] [--warm-up 15]
       [--pss-slack-mib 16] [--tauon-args '--keep-resident-mib 0']
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from loadtools import WRK_NON2XX, WRK_SOCKET, WRK_TOTAL, first_200  # noqa: E402
from support.apps import app_file, push_app  # noqa: E402
from support.components import component_path  # noqa: E402
from support.daemon import TauonProcess, free_port, run_tauon  # noqa: E402
from support.registry import RegistryServer, run_registry  # noqa: E402
from support.spinpush import SpinAppSpec, SpinComponent  # noqa: E402

RESTART = r"worker \d+: restarting in|worker \d+ \(pid \d+\) (failed|exited)|restarting it"
"""What the daemon logs when a worker dies or is restarted (workers/pool.py)."""
KV_SCRIPT = """
local n = 0
request = function()
  n = n + 1
  if n % 2 == 1 then
    return wrk.format("PUT", "/kv?key=soak" .. (n % 64), nil, "value-" .. n)
  end
  return wrk.format("GET", "/kv?key=soak" .. ((n - 1) % 64))
end
"""


@dataclass(frozen=True)
class Sample:
    pss_kib: int
    pool_kib: int
    """The part of Pss in wasmtime's instance pool (guest memories, warm slots)."""
    fds: int
    threads: int

    @property
    def heap_kib(self) -> int:
        """Pss outside the instance pool: heaps, stacks, code, the compiled wasm mapped."""
        return self.pss_kib - self.pool_kib


POOL_RUN = 1 << 40
"""Contiguous anonymous mappings larger than this (1 TiB) are the pooling allocator's reservations."""


def pool_pss(pid: int) -> int:
    """Pss (KiB) of the instance pool: contiguous runs of anonymous (or copy-on-write compiled-code)
    mappings over POOL_RUN in all."""
    runs: list[list[int]] = []  # [start, end, anonymous, pss]
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and "-" in parts[0] and ":" in parts[3]:  # a mapping's header line
            start, end = (int(x, 16) for x in parts[0].split("-"))
            # A slot's memory image is mapped copy-on-write from the compiled code's file.
            anonymous = int(len(parts) == 5 or (parts[1] == "rw-p" and ".cwasm" in parts[5]))
            if runs and anonymous and runs[-1][2] and runs[-1][1] == start:
                runs[-1][1] = end
            else:
                runs.append([start, end, anonymous, 0])
        elif parts and parts[0] == "Pss:" and runs:
            runs[-1][3] += int(parts[1])
    return sum(run[3] for run in runs if run[1] - run[0] > POOL_RUN)


def sample(pid: int) -> Sample | None:
    """The process's Pss (smaps_rollup; the pool's share from smaps), open descriptors and threads;
    None once it has gone."""
    try:
        pss = next(int(line.split()[1]) for line in
                   Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines() if line.startswith("Pss:"))
        pool = pool_pss(pid)
        fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
        threads = next(int(line.split()[1]) for line in
                       Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("Threads:"))
    except (OSError, StopIteration):
        return None
    return Sample(pss, pool, fds, threads)


def processes(daemon: int) -> dict[str, int]:
    """'daemon' and 'worker N' (in start order) -> pid; compile children and encoders are left out."""
    found = {"daemon": daemon}
    workers = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent == daemon and b"tauon.workers.child" in cmdline:
            workers.append(int(proc.name))
    for i, pid in enumerate(sorted(workers), 1):
        found[f"worker {i}"] = pid
    return found


def snapshot(daemon: int) -> dict[str, tuple[int, Sample]]:
    taken = {}
    for name, pid in processes(daemon).items():
        got = sample(pid)
        if got is not None:
            taken[name] = (pid, got)
    return taken


def push_apps(registry: RegistryServer) -> dict[str, str]:
    def one(name: str, fixture: str, marker: str, **meta: object) -> SpinAppSpec:
        return SpinAppSpec(name=name, components=[SpinComponent(
            id=name, wasm=component_path(fixture).read_bytes(), env={"MARKER": marker},
            metadata=dict(meta))], triggers=[{"route": "/...", "component": name}])

    return {
        "c-v1": push_app(registry, "soak/c", "v1", one("c", "c", "one")),
        "c-v2": push_app(registry, "soak/c", "v2", one("c", "c", "two")),
        "js": push_app(registry, "soak/js", "v1", one("js", "js", "js")),
        "kv": push_app(registry, "soak/kv", "v1", one("kv", "python-sdk", "kv",
                                                      key_value_stores=["default"])),
    }


def swap_every(path: Path, refs: list[str], port: int, seconds: float, stop: threading.Event,
               count: list[int]) -> None:
    i = 0
    while not stop.wait(seconds):
        i += 1
        path.write_text(app_file(refs[i % len(refs)], port))
        count[0] += 1


def start_wrk(url: str, duration: int, connections: int, script: Path | None) -> subprocess.Popen[str]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", url]
    if script is not None:
        cmd[1:1] = ["-s", str(script)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wrk_result(proc: subprocess.Popen[str]) -> tuple[int, int, str]:
    """(requests, failed: non-2xx and socket errors, what failed) of a finished wrk."""
    out, _ = proc.communicate()
    total = WRK_TOTAL.search(out)
    non2xx = WRK_NON2XX.search(out)
    sock = WRK_SOCKET.search(out)
    if total is None:
        raise RuntimeError(f"wrk printed no total:\n{out}")
    bad = int(non2xx.group(1)) if non2xx else 0
    errors = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True)) \
        if sock else {}
    what = ", ".join([f"{bad} non-2xx"] * bool(bad) + [f"{n} {kind}" for kind, n in errors.items() if n])
    return int(total.group(1)), bad + sum(errors.values()), what


def warm_up(tauon: TauonProcess, urls: dict[str, str], c_path: Path, refs: dict[str, str], port: int,
            kv_script: Path, args: argparse.Namespace) -> None:
    """The load on every app for --warm-up seconds and two swaps, so what is created lazily (warm
    instance slots, pools, caches) exists at the baseline."""
    runs = [start_wrk(url, args.warm_up, args.connections, kv_script if name == "kv" else None)
            for name, url in urls.items()]
    for ref in (refs["c-v2"], refs["c-v1"]):
        count = len(re.findall(r"updated to generation", tauon.log()))
        c_path.write_text(app_file(ref, port))
        tauon.wait_log(r"updated to generation", count=count + 1, timeout=120)
    for run in runs:
        run.communicate()


def mib(kib: int) -> str:
    return f"{kib / 1024:8.1f}"


def print_table(rows: list[tuple[str, dict[str, tuple[int, Sample]]]]) -> None:
    names = sorted({name for _, taken in rows for name in taken}, key=lambda n: (n != "daemon", n))
    head = "Pss/pool MiB fds thr"
    print(f"  {'when':>10s}  " + "  ".join(f"{name + ' ' + head:>33s}" for name in names)
          + f"  {'total ' + head:>33s}")
    for label, taken in rows:
        cells = []
        for name in names:
            if name in taken:
                cells.append(cell([taken[name][1]]))
            else:
                cells.append(f"{'-':>33s}")
        cells.append(cell([s for _, s in taken.values()]))
        print(f"  {label:>10s}  " + "  ".join(cells))


def cell(samples: list[Sample]) -> str:
    pss, pool = sum(s.pss_kib for s in samples), sum(s.pool_kib for s in samples)
    return (f"{mib(pss)}/{mib(pool).strip():>6s} {sum(s.fds for s in samples):6d} "
            f"{sum(s.threads for s in samples):5d}").rjust(33)


def back_to_baseline(daemon: int, base: dict[str, tuple[int, Sample]], args: argparse.Namespace,
                     ) -> dict[str, tuple[int, Sample]]:
    """Poll until every process's fds and threads are back within the slack (or --settle passes)."""
    deadline = time.monotonic() + args.settle
    while True:
        now = snapshot(daemon)
        settled = all(name in now and now[name][1].fds <= b.fds + args.fd_slack
                      and now[name][1].threads <= b.threads + args.thread_slack
                      for name, (_, b) in base.items())
        if settled or time.monotonic() > deadline:
            return now
        time.sleep(1.0)


def verdict(base: dict[str, tuple[int, Sample]], mid: dict[str, tuple[int, Sample]],
            after: dict[str, tuple[int, Sample]], requests: int, failed: int, restarts: int,
            args: argparse.Namespace) -> list[str]:
    flags = []
    print(f"== growth after {requests} requests: rested - baseline (per 100k requests), and rested - "
          "mid-load; Pss outside the instance pool (judged) and in it")
    for name, (pid, b) in base.items():
        if name not in after or after[name][0] != pid:
            flags.append(f"{name} (pid {pid}) is gone or was replaced")
            continue
        a = after[name][1]
        heap = (a.heap_kib - b.heap_kib) / 1024
        late = (a.heap_kib - mid[name][1].heap_kib) / 1024 if name in mid else float("nan")
        pool = (a.pool_kib - b.pool_kib) / 1024
        per100k = heap * 100_000 / requests if requests else float("nan")
        print(f"  {name:10s} Pss outside the pool {heap:+7.1f} MiB ({per100k:+.2f} MiB/100k), since "
              f"mid-load {late:+6.1f} MiB; in the pool {pool:+7.1f} MiB; fds {a.fds - b.fds:+4d}; "
              f"threads {a.threads - b.threads:+3d}")
        if a.fds > b.fds + args.fd_slack:
            flags.append(f"{name}: {a.fds - b.fds} more descriptors than at the baseline")
        if a.threads > b.threads + args.thread_slack:
            flags.append(f"{name}: {a.threads - b.threads} more threads than at the baseline")
        if late > args.pss_slack_mib:
            flags.append(f"{name}: Pss outside the instance pool grew {late:.1f} MiB in the second "
                         f"half of the load, over {args.pss_slack_mib:g} MiB")
    if failed:
        flags.append(f"{failed} of {requests} requests failed")
    if restarts:
        flags.append(f"{restarts} worker restart(s)")
    return flags


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=60, help="seconds of load (default 60)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--swap-every", type=float, default=5.0, help="seconds between swaps of `c`")
    parser.add_argument("--connections", type=int, default=4, help="wrk connections per app")
    parser.add_argument("--workers", default="2", help="tauon --workers (default 2)")
    parser.add_argument("--settle", type=float, default=90.0,
                        help="seconds of rest before the baseline, and at most after the load (idle "
                             "guest threads exit after 60 s)")
    parser.add_argument("--warm-up", type=int, default=15, help="seconds of load before the baseline")
    parser.add_argument("--pss-slack-mib", type=float, default=16.0,
                        help="growth of Pss outside the instance pool allowed per process from the "
                             "middle of the load to the rest")
    parser.add_argument("--tauon-args", default="", help="more tauon options (one string)")
    parser.add_argument("--fd-slack", type=int, default=0)
    parser.add_argument("--thread-slack", type=int, default=0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is missing; run scripts/setup-dev")
    with tempfile.TemporaryDirectory(prefix="tauon-soak-") as tmpdir:
        tmp = Path(tmpdir)
        with run_registry(tmp / "registry") as registry:
            refs = push_apps(registry)
            flags = soak(tmp, refs, args)
    if flags:
        print("== FLAGGED")
        for flag in flags:
            print(f"  {flag}")
        sys.exit(1)
    print("== within tolerance")


def soak(tmp: Path, refs: dict[str, str], args: argparse.Namespace) -> list[str]:
    kv_script = tmp / "kv.lua"
    kv_script.write_text(KV_SCRIPT)
    with run_tauon(tmp / "run", "--workers", args.workers, *args.tauon_args.split(),
                   log_level="info") as tauon:
        ports = {name: free_port() for name in ("c", "js", "kv")}
        for name, ref in (("c", refs["c-v1"]), ("js", refs["js"]), ("kv", refs["kv"])):
            extra = {"state_dir": "kv"} if name == "kv" else {}
            (tauon.watch_dir / f"{name}.json").write_text(app_file(ref, ports[name], **extra))
        urls = {"c": f"http://127.0.0.1:{ports['c']}/",
                "js": f"http://127.0.0.1:{ports['js']}/echo",
                "kv": f"http://127.0.0.1:{ports['kv']}/kv"}
        for name, url in urls.items():
            first_200(url if name != "kv" else f"http://127.0.0.1:{ports['kv']}/echo", timeout=900)
        workers = int(args.workers) if args.workers.isdigit() else None
        if workers is not None and workers > 1:
            tauon.wait_log(r"worker \d+ \(pid \d+\) serving", count=workers - 1, timeout=300)
        c_path = tauon.watch_dir / "c.json"
        warm_up(tauon, urls, c_path, refs, ports["c"], kv_script, args)
        time.sleep(args.settle)
        base = snapshot(tauon.proc.pid)
        rows = [("baseline", base)]
        restarts_before = len(re.findall(RESTART, tauon.log()))
        generations_before = len(re.findall(r"updated to generation", tauon.log()))
        log_mark = len(tauon.log())
        stop, swaps = threading.Event(), [0]
        mid: dict[str, tuple[int, Sample]] | None = None
        swapper = threading.Thread(target=swap_every, args=(c_path, [refs["c-v1"], refs["c-v2"]],
                                                            ports["c"], args.swap_every, stop, swaps))
        began = time.monotonic()
        runs = {name: start_wrk(url, args.duration, args.connections, kv_script if name == "kv" else None)
                for name, url in urls.items()}
        swapper.start()
        try:
            while any(run.poll() is None for run in runs.values()):
                time.sleep(min(args.interval, 1.0))
                elapsed = time.monotonic() - began
                if elapsed >= args.interval * len(rows) and elapsed < args.duration:
                    rows.append((f"{elapsed:.0f} s", snapshot(tauon.proc.pid)))
                    if mid is None and elapsed >= args.duration / 2:
                        mid = rows[-1][1]
        finally:
            stop.set()
            swapper.join()
        results = {name: wrk_result(run) for name, run in runs.items()}
        rows.append(("load end", snapshot(tauon.proc.pid)))
        after = back_to_baseline(tauon.proc.pid, base, args)
        rows.append(("rested", after))
        log = tauon.log()
        generations = len(re.findall(r"updated to generation", log)) - generations_before
        restarts = len(re.findall(RESTART, log)) - restarts_before
        problems = [line for line in log[log_mark:].splitlines() if re.search(r" (WARNING|ERROR) ", line)]
    requests = sum(r for r, _, _ in results.values())
    failed = sum(f for _, f, _ in results.values())
    print(f"== soak: {args.duration} s, wrk -t1 -c{args.connections} on each of c, js, kv at once; "
          f"--workers {args.workers}; `c` swapped {swaps[0]} times ({generations} generations served)")
    for name, (count, bad, what) in results.items():
        print(f"  {name:3s} {count:9d} requests ({count / args.duration:8.1f}/s), failed {bad}"
              + (f" ({what}; wrk's timeout is 2 s)" if bad else ""))
    print(f"  all {requests:9d} requests, failed {failed}")
    print(f"  tauon logged {len(problems)} warning(s) or error(s) during the load"
          + "".join(f"\n    {line[:300]}" for line in problems[:10]))
    print("== per process: Pss MiB (all / in the instance pool), open fds, threads")
    print_table(rows)
    return verdict(base, mid or rows[-2][1], after, requests, failed, restarts, args)


if __name__ == "__main__":
    main()
