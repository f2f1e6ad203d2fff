"""Spin key-value host functions (v2, v1, wasi:keyvalue draft2) on a real state dir: ACL, errors, atomics."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.spin_services import app_services, component, host_state
from tauon.hostif import spin_kv as kv
from tauon.hostif.spin_common import MAX_HANDLES, NO_SERVICES
from tauon.hostif.state import HostState

V2 = kv.V2_FUNCS
V1 = kv.V1_FUNCS
STORE = kv.STORE_FUNCS
ATOMICS = kv.ATOMICS_FUNCS
BATCH = kv.BATCH_FUNCS


@pytest.fixture
def state(tmp_path: Path) -> Iterator[HostState]:
    with app_services(tmp_path, component(key_value_stores=["default"])) as services:
        state = host_state(services)
        yield state
        state.finish()


def ok(result: tuple[str, Any]) -> Any:
    assert result[0] == "ok", result
    return result[1]


def test_v2_store_operations_and_spins_table(state: HostState, tmp_path: Path) -> None:
    rep = ok(V2["[static]store.open"](state, "default"))
    assert ok(V2["[method]store.get"](state, rep, "k")) is None  # v2 reports a miss as none
    assert ok(V2["[method]store.set"](state, rep, "k", b"\x00v")) is None
    assert ok(V2["[method]store.get"](state, rep, "k")) == b"\x00v"
    assert ok(V2["[method]store.exists"](state, rep, "k")) is True
    assert ok(V2["[method]store.get-keys"](state, rep)) == ["k"]
    with sqlite3.connect(tmp_path / "sqlite_key_value.db") as conn:
        assert conn.execute("SELECT store, key, value FROM spin_key_value").fetchall() == [
            ("default", "k", b"\x00v")]
    ok(V2["[method]store.delete"](state, rep, "k"))
    assert ok(V2["[method]store.exists"](state, rep, "k")) is False


def test_v2_acl_unlisted_is_access_denied_and_unknown_is_no_such_store(tmp_path: Path) -> None:
    with app_services(tmp_path, component()) as services:  # lists no store: "default" exists but is denied
        assert V2["[static]store.open"](host_state(services), "default") == ("err", "access-denied")
    with app_services(tmp_path, component(key_value_stores=["default"])) as services:
        assert V2["[static]store.open"](host_state(services), "other") == ("err", "access-denied")
    with app_services(tmp_path, component(key_value_stores=["default"])) as services:
        # A listed but undefined label fails at load (AppServices.open); widen the ACL by hand to reach it.
        widened = dataclasses.replace(services, key_value_labels=frozenset({"default", "cache"}))
        assert V2["[static]store.open"](host_state(widened), "cache") == ("err", "no-such-store")
        assert STORE["open"](host_state(widened), "cache") == ("err", "no-such-store")
        assert V1["open"](host_state(widened), "cache") == ("err", "no-such-store")


def test_v2_store_table_full_and_handles_released_on_drop(state: HostState) -> None:
    reps = [ok(V2["[static]store.open"](state, "default")) for _ in range(MAX_HANDLES)]
    assert V2["[static]store.open"](state, "default") == ("err", "store-table-full")
    state.table.drop(reps[0])  # the guest dropped one handle: a slot is free again
    ok(V2["[static]store.open"](state, "default"))


def test_v1_handles_no_such_key_invalid_store_and_close(state: HostState) -> None:
    handle = ok(V1["open"](state, "default"))
    assert isinstance(handle, int)
    assert V1["get"](state, handle, "nope") == ("err", "no-such-key")
    ok(V1["set"](state, handle, "a", b"1"))
    assert ok(V1["get"](state, handle, "a")) == b"1"
    assert ok(V1["exists"](state, handle, "a")) is True
    assert ok(V1["get-keys"](state, handle)) == ["a"]
    ok(V1["delete"](state, handle, "a"))
    assert V1["close"](state, handle) is None
    assert V1["get"](state, handle, "a") == ("err", "invalid-store")
    assert V1["get"](state, 9999, "a") == ("err", "invalid-store")
    assert V1["open"](state, "nope") == ("err", "access-denied")


def test_wasi_keyvalue_store_and_batch(state: HostState) -> None:
    bucket = ok(STORE["open"](state, "default"))
    ok(STORE["[method]bucket.set"](state, bucket, "x", b"1"))
    assert ok(STORE["[method]bucket.get"](state, bucket, "x")) == b"1"
    assert ok(STORE["[method]bucket.exists"](state, bucket, "y")) is False
    ok(BATCH["set-many"](state, bucket, [("y", b"2"), ("z", b"3")]))
    assert ok(BATCH["get-many"](state, bucket, ["z", "nope"])) == [("z", b"3"), ("nope", None)]
    assert sorted(ok(STORE["[method]bucket.list-keys"](state, bucket, None))[0]) == ["x", "y", "z"]
    assert STORE["[method]bucket.list-keys"](state, bucket, "c1") == (
        "err", ("other", "list_keys: cursor not supported"))
    ok(BATCH["delete-many"](state, bucket, ["x", "y"]))
    ok(STORE["[method]bucket.delete"](state, bucket, "z"))
    assert ok(STORE["[method]bucket.list-keys"](state, bucket, None)) == ([], None)
    assert STORE["open"](state, "elsewhere") == ("err", "access-denied")


def test_wasi_keyvalue_atomics_increment_and_compare_and_swap(state: HostState) -> None:
    bucket = ok(STORE["open"](state, "default"))
    assert ok(ATOMICS["increment"](state, bucket, "n", 5)) == 5
    assert ok(ATOMICS["increment"](state, bucket, "n", -2)) == 3
    assert ok(STORE["[method]bucket.get"](state, bucket, "n")) == (3).to_bytes(8, "little", signed=True)

    cas = ok(ATOMICS["[static]cas.new"](state, bucket, "c"))
    assert ok(ATOMICS["[method]cas.current"](state, cas)) is None
    assert ATOMICS["swap"](state, cas, b"first") == ("ok", None)  # absent as expected: inserted
    stale = ok(ATOMICS["[static]cas.new"](state, bucket, "c"))  # never read: expects "absent"
    tag, (case, fresh) = ATOMICS["swap"](state, stale, b"lost")
    assert (tag, case) == ("err", "cas-failed")
    assert ok(ATOMICS["[method]cas.current"](state, fresh)) == b"first"  # the new cas holds the value
    assert ATOMICS["swap"](state, fresh, b"second") == ("ok", None)
    assert ok(STORE["[method]bucket.get"](state, bucket, "c")) == b"second"
    assert len(state.table) == 1  # swapped cas handles were consumed: only the bucket is live


def test_atomics_increment_of_a_non_counter_is_other(state: HostState) -> None:
    bucket = ok(STORE["open"](state, "default"))
    ok(STORE["[method]bucket.set"](state, bucket, "s", b"text"))
    tag, (case, text) = ATOMICS["increment"](state, bucket, "s", 1)
    assert (tag, case) == ("err", "other") and "8-byte" in text


def test_without_services_open_fails_with_other() -> None:
    state = host_state(None)
    assert V2["[static]store.open"](state, "default") == ("err", ("other", NO_SERVICES))
    assert V1["open"](state, "default") == ("err", ("io", NO_SERVICES))
    assert STORE["open"](state, "default") == ("err", ("other", NO_SERVICES))
