#!/usr/bin/env python3
"""How tauon's serving processes share a listener's keep-alive connections under wrk load.

Every serving process accepts from the same listening socket, so which one takes a new connection is
whichever wakes first; wrk's connections then stay where they landed for the whole run. This serves
one fixture (default: js) from a local docker-registry with tauon's defaults (or `--tauon-args`), runs
`wrk -t2 -c<N>` `--repeat` times per connection count, and prints, for each run, the established
connections per serving process (from `ss`, sampled mid-run) beside the run's requests/s and p99. An
uneven split (e.g. 55/9 at c=64) puts the tail on the busier process.

Needs: docker-registry, wrk and ss (Debian: iproute2), scripts/build-components.
Usage: .venv/bin/python bench/connection_split.py [--component js] [--connections 8,64] [--repeat 3]
       [--duration 4] [--tauon-args ARGS]
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from bench_components import tauon_serving  # noqa: E402
from support.registry import run_registry  # noqa: E402


def split(port: int) -> list[int]:
    """Established connections on `port` per owning process, largest first."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)


def one_run(url: str, port: int, connections: int, duration: int) -> str:
    seen: list[list[int]] = []

    def sample() -> None:  # mid-run, once every connection is open and busy
        time.sleep(duration / 2)
        seen.append(split(port))

    sampler = threading.Thread(target=sample)
    sampler.start()
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    sampler.join()
    rps = re.search(r"Requests/sec:\s+(\S+)", out)
    p99 = re.search(r"^\s*99%[ \t]+(\S+)", out, re.M)  # the latency table's row, not a Stdev % ending "99%"
    per_process = "/".join(str(n) for n in seen[0]) if seen else "?"
    return (f"c={connections:<4} connections per process {per_process:<10} "
            f"req/s {rps.group(1) if rps else '?':>9}   p99 {p99.group(1) if p99 else '?'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--component", default="js")
    parser.add_argument("--connections", default="8,64")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4)
    parser.add_argument("--tauon-args", default="")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tauon-split-") as tmp, \
            run_registry(Path(tmp) / "registry") as registry, \
            tauon_serving(Path(tmp), registry, [args.component], shlex.split(args.tauon_args),
                          "split") as (urls, _pid):
        url = urls[args.component]
        port = int(url.split(":")[2].split("/")[0])
        print(f"== {args.component}: keep-alive connections per serving process under wrk -t2, "
              f"{args.duration} s runs (tauon {args.tauon_args or 'defaults'})")
        for connections in [int(c) for c in args.connections.split(",")]:
            for _ in range(args.repeat):
                print("  " + one_run(url, port, connections, args.duration), flush=True)


if __name__ == "__main__":
    main()
