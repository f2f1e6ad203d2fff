"""wasmtime's pooling instance allocator: how tauon configures it, and how to recognise exhaustion.

tauon creates a fresh instance for every request, as Spin does. With wasmtime's default (on-demand)
allocator every instance maps its linear memory anew and every reset unmaps it, which on a VM costs
page faults and cross-CPU TLB shootdowns for each request. The pooling allocator keeps pre-reserved
slots, reuses a slot for the same module, and resets the first `keep_resident` bytes of a memory in
place (the pages stay resident) instead of handing them back to the kernel. For the 10-40 MB
JavaScript and Python components that halves the cost of a request (bench/bench_components.py).

The price is bounded and stated: at most `instances` instances (and as many memories and tables) exist
at once across all apps, and up to `keep_resident` bytes per warm slot stay resident between requests.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # settings import this module: keep wasmtime out of `tauon --help`
    import wasmtime

MIB = 1 << 20

SLOT_BYTES = (4 << 30) + (64 << 20)
"""Address space one memory slot reserves: 4 GiB (so compiled code needs no bounds checks) plus
wasmtime's guard regions."""

_MAP_NORESERVE = 0x4000  # Linux; not exposed by Python 3.11's mmap module

CORE_PER_COMPONENT = 24
TABLES_PER_COMPONENT = 4

WARM_SLOTS = 32
"""Unused slots kept warm (reused first by the same component), across all serving processes. With
`keep_resident` they bound the memory kept resident between requests: 32 x 32 MiB at most by default,
1 GiB, under the 4 GiB MemoryMax of contrib/tauon.service (wasmtime's own default of 100 per process
would allow 3.2 GiB each)."""


def warm_slots_per_process(processes: int) -> int:
    """Each process's share of WARM_SLOTS, so the resident bound does not grow with `--workers`."""
    return max(1, -(-WARM_SLOTS // max(1, processes)))


@dataclass(frozen=True, slots=True)
class PoolSettings:
    instances: int = 1000
    """Instances alive at once across all apps (0: no pool, wasmtime's on-demand allocator)."""
    keep_resident_mib: int = 32
    """MiB at the start of each linear memory reset in place rather than returned to the kernel."""
    warm_slots: int = WARM_SLOTS
    """Unused slots this process keeps warm (warm_slots_per_process)."""

    @property
    def enabled(self) -> bool:
        return self.instances > 0

    def describe(self) -> str:
        if not self.enabled:
            return "on-demand"
        return f"pooling({self.instances},{self.keep_resident_mib}MiB,{self.warm_slots} warm)"


def configure(config: wasmtime.Config, pool: PoolSettings) -> None:
    """Switch `config` to the pooling allocator sized by `pool` (no-op when disabled)."""
    if not pool.enabled:
        return
    from wasmtime import _bindings as ffi

    pc = ffi.wasmtime_pooling_allocation_config_new()
    try:
        n = pool.instances
        # Measured on the SDK fixtures: one component instance holds 1 linear memory, 2 tables and
        # 3 (C) to 14 (componentize-py) core instances, plus up to 2 of tauon's (routing.py).
        # Memories are the costly slots (address space), so `n` counts them; the cheap counters
        # get room for the largest components, with some to spare.
        ffi.wasmtime_pooling_allocation_config_total_component_instances_set(pc, n)
        ffi.wasmtime_pooling_allocation_config_total_memories_set(pc, n)
        ffi.wasmtime_pooling_allocation_config_total_core_instances_set(pc, n * CORE_PER_COMPONENT)
        ffi.wasmtime_pooling_allocation_config_total_tables_set(pc, n * TABLES_PER_COMPONENT)
        ffi.wasmtime_pooling_allocation_config_total_stacks_set(pc, n)
        ffi.wasmtime_pooling_allocation_config_max_unused_warm_slots_set(pc, pool.warm_slots)
        # Per-app memory limits are enforced by each store's limiter; the pool only needs the slot
        # to be able to hold any memory a 32-bit guest can address.
        ffi.wasmtime_pooling_allocation_config_max_memory_size_set(pc, 4 << 30)
        keep = pool.keep_resident_mib * MIB
        ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(pc, keep)
        ffi.wasmtime_pooling_allocation_config_table_keep_resident_set(pc, min(keep, MIB))
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pc)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pc)


def can_reserve(pool: PoolSettings) -> bool:
    """Whether the pool's address space can be reserved. wasmtime's C API aborts the process when
    that fails at Engine creation (e.g. under `ulimit -v`), so tauon asks the kernel first."""
    try:
        probe = mmap.mmap(-1, pool.instances * SLOT_BYTES, prot=0,
                          flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
    except (OSError, OverflowError, ValueError):
        return False
    probe.close()
    return True


def is_exhausted(error: BaseException | str) -> bool:
    """Whether an instantiation failed because the pool is full (a busy server, not a guest fault)."""
    text = str(error)
    return "concurrent" in text and "limit" in text and "reached" in text
