"""KeyedLocks: one holder per key at a time, and no entry left behind once nobody uses a key."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tauon.wasm import componentize
from tauon.wasm.component import cache
from tauon.wasm.engine import WasmEngine
from tauon.wasm.keylocks import KeyedLocks

EMPTY_COMPONENT = b"\x00asm\x0d\x00\x01\x00"
EMPTY_MODULE = b"\x00asm\x01\x00\x00\x00"


def test_entries_go_when_their_last_user_does() -> None:
    locks = KeyedLocks()
    for i in range(1000):
        with locks.hold(f"digest-{i}"):
            assert len(locks) == 1
    assert len(locks) == 0


def test_one_holder_per_key_and_waiters_keep_the_entry() -> None:
    locks = KeyedLocks()
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with locks.hold("k"):
            order.append("first in")
            inside.set()
            release.wait(10)
            order.append("first out")

    def second() -> None:
        with locks.hold("k"):
            order.append("second in")

    t1 = threading.Thread(target=first)
    t1.start()
    assert inside.wait(10)
    t2 = threading.Thread(target=second)
    t2.start()
    deadline = time.monotonic() + 10
    while locks._entries["k"].users < 2:  # the second thread is waiting on the same entry
        assert time.monotonic() < deadline, "the second holder never queued"
        time.sleep(0.001)
    with locks.hold("other"):  # another key is not blocked
        assert len(locks) == 2
    release.set()
    t1.join(10)
    t2.join(10)
    assert order == ["first in", "first out", "second in"]
    assert len(locks) == 0


def test_a_failing_holder_releases_its_entry() -> None:
    locks = KeyedLocks()
    with pytest.raises(RuntimeError), locks.hold("k"):
        raise RuntimeError("compile failed")
    assert len(locks) == 0
    with locks.hold("k"):  # and the lock is free again
        pass


def test_compiling_many_components_leaves_no_lock_behind(tmp_path: Path) -> None:
    """The real compile path: each distinct digest (a new app version) used to leave a lock forever."""
    engine = WasmEngine(tmp_path / "cache")
    wasm = tmp_path / "empty.wasm"
    wasm.write_bytes(EMPTY_COMPONENT)
    module = tmp_path / "empty-module.wasm"
    module.write_bytes(EMPTY_MODULE)
    for i in range(50):
        cache.compile_component(engine, wasm, f"sha256:{i:064x}")
        engine.compile_module(module, f"sha256:{i:064x}")
        with componentize.key_lock(f"conversion-{i}"):
            pass
    assert len(cache._compiling) == 0
    assert len(engine._compiling) == 0
    assert len(componentize._converting) == 0
