"""wasi:random 0.3 (and its 2026-03-15 release candidate), as Spin 4 links it from wasmtime-wasi.

0.3 renamed `insecure-seed` to `get-insecure-seed` and made the byte count a maximum (`max-len`): the
host may return fewer bytes, so a guest asking for more than `random.MAX_RANDOM` gets that many.
"""

from __future__ import annotations

from tauon.hostif.random import insecure_seed, random_bytes, random_u64
from tauon.hostif.registry import HostInterface, p3_name

INTERFACES = [
    HostInterface(p3_name("wasi:random/random"), {
        "get-random-bytes": random_bytes,
        "get-random-u64": random_u64,
    }),
    HostInterface(p3_name("wasi:random/insecure"), {
        "get-insecure-random-bytes": random_bytes,
        "get-insecure-random-u64": random_u64,
    }),
    HostInterface(p3_name("wasi:random/insecure-seed"), {"get-insecure-seed": insecure_seed}),
]
