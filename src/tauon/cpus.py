"""How many CPUs tauon may use: the affinity mask, capped by a cgroup CPU quota.

`os.sched_getaffinity` sees cpusets but not quotas: under systemd's `CPUQuota=200%` or a container's
`--cpus 2` on a 64-CPU host it still says 64, and 64 serving processes sharing two CPUs' worth of time
would only add memory and contention. So, as Go's runtime and the JVM do, the quota (rounded up) caps
the count. The parsers are pure; `usable_cpus` is the thin reader over /proc and /sys.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 `cpu.max` ("200000 100000", or "max 100000" for no limit) -> CPUs, or None."""
    fields = text.split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        quota, period = int(fields[0]), int(fields[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 `cpu.cfs_quota_us` (-1: no limit) and `cpu.cfs_period_us` -> CPUs, or None."""
    try:
        quota, period = int(quota_text), int(period_text)
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def cgroup_paths(proc_cgroup: str) -> tuple[str | None, str | None]:
    """The process's (v2 unified, v1 cpu controller) cgroup paths from /proc/self/cgroup."""
    unified = cpu = None
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            unified = path
        elif "cpu" in controllers.split(","):
            cpu = path
    return unified, cpu


def budget(affinity: int, quotas: list[float | None]) -> int:
    """The affinity count capped by the tightest quota, at least 1."""
    limits = [math.ceil(q) for q in quotas if q is not None]
    return max(1, min([affinity, *limits]))


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _quotas(root: Path = CGROUP_ROOT) -> list[float | None]:
    proc = _read(Path("/proc/self/cgroup"))
    if proc is None:
        return []
    unified, cpu = cgroup_paths(proc)
    quotas: list[float | None] = []
    if unified is not None:
        # A parent's quota binds too; walk up to the root.
        node = root / unified.lstrip("/")
        while True:
            text = _read(node / "cpu.max")
            if text is not None:
                quotas.append(parse_cpu_max(text))
            if node == root or root not in node.parents:
                break
            node = node.parent
    if cpu is not None:
        for mount in ("cpu,cpuacct", "cpu"):
            base = root / mount / cpu.lstrip("/")
            quota, period = _read(base / "cpu.cfs_quota_us"), _read(base / "cpu.cfs_period_us")
            if quota is not None and period is not None:
                quotas.append(parse_cfs(quota, period))
                break
    return quotas


def usable_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by any cgroup CPU quota it runs under."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return budget(affinity, _quotas())
