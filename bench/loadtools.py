"""Load-test helpers shared by the benchmarks: wait for the first 200, run wrk and read its figures."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
"""wrk's latency units, in milliseconds."""


def first_200(url: str, start: float | None = None, timeout: float = 300.0) -> float:
    """Seconds from `start` (perf_counter; default: now) until `url` answers 200."""
    start = time.perf_counter() if start is None else start
    deadline = start + timeout
    with httpx.Client(timeout=30) as http:
        while time.perf_counter() < deadline:
            try:
                if http.get(url).status_code == 200:
                    return time.perf_counter() - start
            except httpx.HTTPError:
                pass
            time.sleep(0.002)
    raise RuntimeError(f"{url} never answered 200")


WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
WRK_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
WRK_TOTAL = re.compile(r"(\d+) requests in")
WRK_PCT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) and its live children (tauon's --workers)
    have used so far."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(proc.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wrk(url: str, duration: int, connections: int, pid: int | None = None) -> dict[str, float]:
    """One wrk run; with `pid`, also the server's CPU milliseconds per request (a figure that other
    load on the machine disturbs less than requests/s)."""
    before = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pid) - before if pid else float("nan")
    rps = WRK_RPS.search(out)
    non2xx = WRK_NON2XX.search(out)
    sock = WRK_SOCKET.search(out)
    pct = {int(p): float(v) * UNITS[u] for p, v, u in WRK_PCT.findall(out)}
    total = WRK_TOTAL.search(out)
    requests = int(total.group(1)) if total else 0
    return {"requests": float(requests), "rps": float(rps.group(1)) if rps else 0.0,
            "p50": pct.get(50, float("nan")),
            "cpu_ms": cpu * 1000 / requests if requests else float("nan"),
            "p99": pct.get(99, float("nan")),
            "errors": float((int(non2xx.group(1)) if non2xx else 0)
                            + (sum(int(g) for g in sock.groups()) if sock else 0))}
