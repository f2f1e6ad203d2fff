"""The limits a compile child runs under (wasm/sandbox.py). Plain data: settings import it, and
`tauon --help` must not import wasmtime."""

from __future__ import annotations

from dataclasses import dataclass

MIN_MEMORY_MIB = 256
"""Below this the child cannot compile even small components (Python, wasmtime and the wasm bytes)."""


@dataclass(frozen=True, slots=True)
class CompileLimits:
    memory_mib: int = 1536
    """The child's data segment (RLIMIT_DATA: heap and private writable mappings). Compiling the
    37 MB python-sdk fixture peaks at ~450 MiB resident here."""
    timeout: float = 300.0
    """Wall-clock seconds one app's missing artifacts may take to compile (the python-sdk fixture
    takes ~10 s on an idle core, up to 80 s on a 2-core VM at a load average of 20)."""
