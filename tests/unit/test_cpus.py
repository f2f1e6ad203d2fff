"""The CPU budget behind `--workers auto` and the default `--running-guests`: quotas cap affinity."""

from __future__ import annotations

from pathlib import Path

import pytest

from tauon import cpus
from tauon.cpus import budget, cgroup_paths, parse_cfs, parse_cpu_max


def test_cpu_max() -> None:
    assert parse_cpu_max("200000 100000\n") == 2.0
    assert parse_cpu_max("150000 100000") == 1.5
    assert parse_cpu_max("max 100000\n") is None
    assert parse_cpu_max("") is None
    assert parse_cpu_max("lots 100000") is None


def test_cfs() -> None:
    assert parse_cfs("50000\n", "100000\n") == 0.5
    assert parse_cfs("-1\n", "100000\n") is None
    assert parse_cfs("x", "100000") is None


def test_cgroup_paths_hybrid_and_unified() -> None:
    hybrid = "4:memory:/a\n3:cpu,cpuacct:/svc/tauon\n0::/unified/tauon\n"
    assert cgroup_paths(hybrid) == ("/unified/tauon", "/svc/tauon")
    assert cgroup_paths("0::/system.slice/tauon.service\n") == ("/system.slice/tauon.service", None)
    assert cgroup_paths("") == (None, None)


def test_budget_rounds_quota_up_and_never_below_one() -> None:
    assert budget(64, [2.0]) == 2
    assert budget(64, [1.5, None]) == 2  # a partial CPU still gets a process
    assert budget(4, [16.0]) == 4  # a quota above the mask does not add CPUs
    assert budget(8, [None]) == 8
    assert budget(8, [3.0, 0.2]) == 1  # the tightest quota (a parent's) wins


def test_reads_the_quota_of_the_process_cgroup_and_its_parents(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    service = tmp_path / "system.slice" / "tauon.service"
    service.mkdir(parents=True)
    (service / "cpu.max").write_text("max 100000\n")
    (tmp_path / "system.slice" / "cpu.max").write_text("300000 100000\n")
    real_read = cpus._read

    def fake_proc(path: Path) -> str | None:
        if path == Path("/proc/self/cgroup"):
            return "0::/system.slice/tauon.service\n"
        return real_read(path)

    monkeypatch.setattr(cpus, "_read", fake_proc)
    assert cpus._quotas(tmp_path) == [None, 3.0]
    monkeypatch.setattr(cpus, "_quotas", lambda: [3.0])
    monkeypatch.setattr(cpus.os, "sched_getaffinity", lambda pid: set(range(16)))
    assert cpus.usable_cpus() == 3
