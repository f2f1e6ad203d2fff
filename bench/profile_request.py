#!/usr/bin/env python3
"""Where a small component's request spends tauon's CPU: py-spy samples of every serving process under
wrk load, summed by stage of the request path.

Serves one fixture (default: the 7 KB C component) from a local docker-registry with tauon's defaults
(or `--tauon-args`), loads it with `wrk -t2 -c<connections>` for `--duration` seconds, and meanwhile
runs `py-spy record --nonblocking --format raw` on the daemon and each worker (Python frames only:
`--native` needs py-spy to stop the process at every sample, which cut the rate to a sixth). With
`--gil`, only the thread holding the GIL is sampled, which is the Python work that serializes a
process; without it, threads waiting in C (idle guest threads, the loop in epoll) are counted too.
Each sample is charged to the first stage (in the order below) whose pattern appears in its stack, so
a host function called from inside the guest counts as "host functions", not "guest call". Prints the
stages' shares of the samples, the functions with most own samples, and the requests/s and CPU per
request of the same run (the profiler slows both: compare shares, not absolute figures).

Needs: docker-registry and wrk (Debian), py-spy (dev extra), root or ptrace rights.
Usage: .venv/bin/python bench/profile_request.py [--component c] [--duration 10] [--connections 8]
       [--gil] [--tauon-args '--workers 1'] [--top 25] [--keep DIR]
"""

from __future__ import annotations

import argparse
import collections
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench_components import tauon_serving  # noqa: E402
from loadtools import wrk  # noqa: E402
from support.registry import run_registry  # noqa: E402

STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("metrics / tracing / access log", ("metrics.py", "tauon/tracing/", "_log_access", "logging/")),
    ("host functions (called by the guest)", ("tauon/hostif/", "wasm/component/host.py")),
    ("guest call (wasm, lowering, lifting)", ("guest.py:call", "GuestFunc.call", "func_call")),
    ("store + instance (pool)", ("new_store", "limited_store", "instantiate", "Store.__init__")),
    ("guest thread (queue, wake-ups, GIL)", ("guestthreads.py", "slots.py")),
    ("executor (request/response conversion, bodies)", ("executors/", "hostif/pipe.py")),
    ("routing, spin values, headers", ("routes.py", "spinvalues.py", "requests.py",
                                      "_client_headers", "switchboard.py")),
    ("HTTP server (uvicorn, httptools, transport)", ("uvicorn/", "httpproto.py", "httptools",
                                                     "uvloop", "asyncio/")),
]
"""Stages of the request path, by a substring of a frame (`function (file:line)` as py-spy writes)."""


def serving_pids(root: int) -> list[int]:
    """The daemon and its worker processes (its children running tauon.workers.child)."""
    pids = [root]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            argv = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == root and b"tauon.workers.child" in argv:
            pids.append(int(proc.name))
    return pids


def stage_of(frames: list[str]) -> str:
    for stage, patterns in STAGES:
        if any(p in frame for frame in frames for p in patterns):
            return stage
    return "other (event loop idle, interpreter, native)"


def summarize(raw: Path, top: int) -> None:
    stages: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")[1:]  # the first is the process/thread name
        total += count
        stages[stage_of(frames)] += count
        own[frames[-1] if frames else "?"] += count
    print(f"  {total} samples")
    for stage, count in stages.most_common():
        print(f"  {100 * count / total:5.1f} %  {stage}")
    print(f"  functions with most own samples (top {top}):")
    for name, count in own.most_common(top):
        print(f"  {100 * count / total:5.1f} %  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--component", default="c")
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--tauon-args", default="")
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--gil", action="store_true", help="sample only the thread holding the GIL "
                        "(py-spy --gil): where the Python work that serializes a process goes")
    parser.add_argument("--keep", type=Path, help="keep py-spy's raw (collapsed) stacks in this directory")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if shutil.which("wrk") is None or not Path(spy).exists():
        sys.exit("profile_request: needs wrk (apt-get install -y wrk) and py-spy (pip install -e '.[dev]')")
    with tempfile.TemporaryDirectory(prefix="tauon-profile-") as tmpdir:
        tmp = Path(tmpdir)
        out = args.keep or tmp
        out.mkdir(parents=True, exist_ok=True)
        tauon_args = shlex.split(args.tauon_args)
        with run_registry(tmp / "registry") as registry, \
                tauon_serving(tmp, registry, [args.component], tauon_args, "p") as (urls, pid):
            url = urls[args.component]
            wrk(url, 2, args.connections, pid)  # warm up
            pids = serving_pids(pid)
            spies = [subprocess.Popen([spy, "record", "--pid", str(p), "--nonblocking", "--format", "raw",
                                       *(["--gil"] if args.gil else []),
                                       "--rate", str(args.rate), "--duration", str(args.duration + 1),
                                       "--output", str(out / f"{p}.txt")],
                                      stdout=subprocess.DEVNULL, stderr=(out / f"{p}.err").open("wb"))
                      for p in pids]
            time.sleep(1.0)
            result = wrk(url, args.duration, args.connections, pid)
            for spy_proc in spies:
                spy_proc.wait()
        print(f"== {args.component} at wrk -c{args.connections} -d{args.duration}s, tauon "
              f"{args.tauon_args or '(defaults)'}, {len(pids)} serving process(es), under py-spy: "
              f"{result['rps']:.0f} req/s, {result['cpu_ms']:.3f} CPU ms per request")
        merged = out / "all.txt"
        merged.write_text("".join((out / f"{p}.txt").read_text() for p in pids
                                  if (out / f"{p}.txt").exists()))
        summarize(merged, args.top)


if __name__ == "__main__":
    main()
