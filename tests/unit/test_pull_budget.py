"""A pull has an overall deadline and a minimum rate: a registry that dribbles one byte at a time (each
byte resetting the read timeout) cannot keep a pull, its slot and readiness forever."""

from __future__ import annotations

import time

import pytest

from support.daemon import dribbling_server
from tauon.registry.budget import PullBudget
from tauon.registry.client import RegistryClient, RegistryUnreachable
from tauon.registry.reference import parse_reference

DIGEST = "sha256:" + "0" * 64


def fetch(host: str, budget: PullBudget, *, timeout: float = 10.0) -> float:
    client = RegistryClient(parse_reference(f"{host}/a/b:v1"), insecure=True, timeout=timeout, budget=budget)
    started = time.monotonic()
    try:
        with client.open_blob(DIGEST) as chunks:
            for _ in chunks:
                pass
    finally:
        client.close()
    return time.monotonic() - started


def test_the_deadline_ends_a_pull_whose_reads_never_time_out() -> None:
    with dribbling_server(interval=0.2) as host, pytest.raises(RegistryUnreachable) as info:
        fetch(host, PullBudget(1.5, error=RegistryUnreachable))
    assert "did not finish within 2s" in str(info.value) and "--pull-deadline" in str(info.value)


def test_a_read_blocked_at_the_deadline_is_cut() -> None:
    """A byte every 3 s, a read timeout of 10 s, a deadline of 1 s: the blocked read is cut at 1 s."""
    started = time.monotonic()
    with dribbling_server(interval=3.0) as host, pytest.raises(RegistryUnreachable, match="did not finish"):
        fetch(host, PullBudget(1.0, error=RegistryUnreachable), timeout=10.0)
    assert time.monotonic() - started < 2.5


def test_a_stalled_body_fails_before_the_deadline() -> None:
    with dribbling_server(interval=0.2) as host, pytest.raises(RegistryUnreachable) as info:
        fetch(host, PullBudget(60.0, stall_window=1.0, stall_bytes=100, error=RegistryUnreachable))
    assert "stalled while sending blob" in str(info.value)


def test_a_request_after_the_deadline_is_not_sent() -> None:
    budget = PullBudget(0.0, error=RegistryUnreachable)
    with dribbling_server() as host, pytest.raises(RegistryUnreachable, match="did not finish within 0s"):
        fetch(host, budget)
