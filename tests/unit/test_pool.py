"""The pooling instance allocator (wasm/pool.py) on real wasmtime engines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import wasmtime

from tauon.executors.failures import classify_failure
from tauon.wasm.engine import WasmEngine
from tauon.wasm.pool import PoolSettings, can_reserve, is_exhausted

MEMORY_WAT = "(module (memory (export \"memory\") 1) (func (export \"f\")))"


def instantiate(engine: WasmEngine, module: wasmtime.Module) -> tuple[wasmtime.Store, wasmtime.Instance]:
    store = wasmtime.Store(engine.engine)
    store.set_epoch_deadline(1_000_000)
    return store, wasmtime.Instance(store, module, [])


def test_the_engine_pools_instances_and_a_full_pool_is_recognised(tmp_path: Path) -> None:
    engine = WasmEngine(tmp_path, pool=PoolSettings(instances=1))
    assert engine.pool == PoolSettings(instances=1)
    module = wasmtime.Module(engine.engine, MEMORY_WAT)
    first = instantiate(engine, module)
    with pytest.raises(wasmtime.WasmtimeError) as raised:
        instantiate(engine, module)  # the one memory slot is taken
    assert is_exhausted(raised.value)
    kind, _ = classify_failure(raised.value, memory_used=None, memory_limit=1 << 20)
    assert kind == "busy"
    del first  # the slot comes back with the store...
    instantiate(engine, module)  # ...and the next instance gets it


def test_other_instantiation_failures_are_not_a_full_pool(tmp_path: Path) -> None:
    engine = WasmEngine(tmp_path, pool=PoolSettings(instances=4))
    module = wasmtime.Module(engine.engine, '(module (import "env" "missing" (func)))')
    store = wasmtime.Store(engine.engine)
    with pytest.raises(wasmtime.WasmtimeError) as raised:
        wasmtime.Instance(store, module, [])
    assert not is_exhausted(raised.value)


def test_without_the_address_space_the_engine_falls_back_to_on_demand(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # 10**6 slots of 4 GiB is more than the 128 TiB a process can address: wasmtime would abort.
    huge = PoolSettings(instances=10**6)
    assert not can_reserve(huge)
    assert can_reserve(PoolSettings(instances=4))
    with caplog.at_level(logging.WARNING):
        engine = WasmEngine(tmp_path, pool=huge)
    assert not engine.pool.enabled
    assert "cannot reserve address space for a pool of 1000000 instances" in caplog.text
    module = wasmtime.Module(engine.engine, MEMORY_WAT)
    stores = [instantiate(engine, module) for _ in range(3)]  # on demand: no slot limit
    assert len(stores) == 3


def test_pool_off_means_on_demand(tmp_path: Path) -> None:
    engine = WasmEngine(tmp_path, pool=PoolSettings(instances=0))
    assert engine.pool.describe() == "on-demand"
    assert PoolSettings().describe() == "pooling(1000,32MiB,32 warm)"
    assert PoolSettings(warm_slots=4).describe() == "pooling(1000,32MiB,4 warm)"
    module = wasmtime.Module(engine.engine, MEMORY_WAT)
    assert len([instantiate(engine, module) for _ in range(3)]) == 3
