"""wasi:random 0.2: secure bytes from the OS; the 'insecure' variants use the same source."""

from __future__ import annotations

import os

from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState

MAX_RANDOM = 1 << 20


def random_bytes(state: HostState, n: int) -> bytes:
    return os.urandom(min(n, MAX_RANDOM))


def random_u64(state: HostState) -> int:
    return int.from_bytes(os.urandom(8), "little")


def insecure_seed(state: HostState) -> tuple[int, int]:
    return (random_u64(state), random_u64(state))


INTERFACES = [
    HostInterface("wasi:random/random", {"get-random-bytes": random_bytes, "get-random-u64": random_u64}),
    HostInterface("wasi:random/insecure", {
        "get-insecure-random-bytes": random_bytes,
        "get-insecure-random-u64": random_u64,
    }),
    HostInterface("wasi:random/insecure-seed", {"insecure-seed": insecure_seed}),
]
