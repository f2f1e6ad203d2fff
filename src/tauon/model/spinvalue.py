"""One of Spin's per-request values: computed by app/spinvalues.py, handed to the guest by executors."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpinValue:
    """One of Spin's per-request values (spin-spec §3.4), under its header and its WAGI env name."""

    header: str
    wagi: str
    value: str
