"""WASI 0.3 and Spin 4 host functions that hand the guest streams, futures or pending calls, driven
through the component runtime's host-side API (`async_host`): the host function's results are the
real readers and Deferreds the runtime lowers into a guest. Services are real (key-value and SQLite
on a state dir, variables), as are the files of a mount and the log records of guest output.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.spin_services import app_services, component, host_state
from tauon.hostif import (
    p3_clocks,
    p3_filesystem,
    p3_stdio,
    p3_streams,
    spin_kv_p3,
    spin_sqlite_p3,
    spin_variables_p3,
)
from tauon.hostif.registry import HostTrap
from tauon.hostif.spin_kv import _store
from tauon.hostif.state import HostConfig, HostState
from tauon.model.mount import Mount
from tauon.wasm.runtime.async_host import Deferred, FutureReader, StreamReader, stream

KV = spin_kv_p3.V3_FUNCS
SQL = spin_sqlite_p3.V3_1_FUNCS
FS = {name.removeprefix("[method]descriptor."): impl for name, impl in p3_filesystem._FUNCS.items()}


def ok(result: tuple[str, Any]) -> Any:
    assert result[0] == "ok", result
    return result[1]


def drained(reader: StreamReader) -> Any:
    return reader.read_all(timeout=10)


@pytest.fixture
def kv_state(tmp_path: Path) -> Iterator[HostState]:
    with app_services(tmp_path, component(key_value_stores=["default"], databases=["default"])) as services:
        state = host_state(services)
        yield state
        state.finish()


def test_key_value_v3_round_trip_and_keys_as_a_stream(kv_state: HostState) -> None:
    store = ok(KV["[static]store.open"](kv_state, "default"))
    for key in ("a", "b", "c"):
        ok(KV["[method]store.set"](kv_state, store, key, key.encode() * 2))
    assert ok(KV["[method]store.get"](kv_state, store, "b")) == b"bb"
    assert ok(KV["[method]store.get"](kv_state, store, "missing")) is None
    assert ok(KV["[method]store.exists"](kv_state, store, "c")) is True
    ok(KV["[method]store.delete"](kv_state, store, "c"))
    keys, done = KV["[method]store.get-keys"](kv_state, store)
    assert isinstance(keys, StreamReader) and isinstance(done, FutureReader)
    assert sorted(drained(keys)) == ["a", "b"]
    assert done.read(timeout=10) == ("ok", None)


def test_key_value_v3_acl_and_errors_are_the_v3_variants(tmp_path: Path) -> None:
    with app_services(tmp_path, component(key_value_stores=["default"])) as services:
        state = host_state(services)
        assert KV["[static]store.open"](state, "other") == ("err", "access-denied")
        state.finish()
    with app_services(tmp_path, component()) as services:
        assert KV["[static]store.open"](host_state(services), "default") == ("err", "access-denied")


def test_many_keys_fit_their_stream_without_a_reader_waiting(kv_state: HostState) -> None:
    store = ok(KV["[static]store.open"](kv_state, "default"))
    many = [f"k{i:05}" for i in range(70_000)]  # more than a pipe's default capacity
    _store(kv_state, store).set_many((k, b"") for k in many)
    keys, done = KV["[method]store.get-keys"](kv_state, store)  # returns at once: nothing blocks
    assert sorted(drained(keys)) == many
    assert done.read(timeout=10) == ("ok", None)


def test_variables_v3_resolves_and_validates_like_v2(tmp_path: Path) -> None:
    comp = component(config={"greeting": "{{ word }}"})
    with app_services(tmp_path, comp, app_variables={"word": {"default": "hi"}},
                      env={"SPIN_VARIABLE_WORD": "from-env"}) as services:
        get = spin_variables_p3.INTERFACES[0].funcs["get"]
        state = host_state(services)
        assert get(state, "greeting") == ("ok", "from-env")
        assert get(state, "nope")[1][0] == "undefined"
        assert get(state, "Bad-Name")[1][0] == "invalid-name"


def test_sqlite_3_1_execute_async_streams_rows_and_reports_errors(kv_state: HostState) -> None:
    conn = ok(SQL["[static]connection.open-async"](kv_state, "default"))
    ok(SQL["[method]connection.execute-async"](kv_state, conn, "CREATE TABLE t (i, s, b, n)", []))
    ok(SQL["[method]connection.execute-async"](
        kv_state, conn, "INSERT INTO t VALUES (?, ?, ?, ?)", [("integer", 7), ("text", "x"), ("blob", b"\0"),
                                                              "null"]))
    assert SQL["[method]connection.last-insert-rowid-async"](kv_state, conn) == 1
    assert SQL["[method]connection.changes-async"](kv_state, conn) == 1
    columns, rows, done = ok(SQL["[method]connection.execute-async"](kv_state, conn, "SELECT * FROM t", []))
    assert columns == ["i", "s", "b", "n"]
    assert drained(rows) == [([("integer", 7), ("text", "x"), ("blob", b"\0"), "null"],)]
    assert done.read(timeout=10) == ("ok", None)
    error = SQL["[method]connection.execute-async"](kv_state, conn, "SELECT * FROM nowhere", [])
    assert error[0] == "err" and error[1][0] == "io" and "nowhere" in error[1][1]
    assert SQL["[static]connection.open-async"](kv_state, "elsewhere") == ("err", "access-denied")


def test_wait_for_completes_after_its_duration_and_not_before() -> None:
    state = HostState(HostConfig(label="a/c", logger=logging.getLogger("test")), timeout=10.0)
    start = time.monotonic()
    waited = p3_clocks.wait_for(state, 200_000_000)
    assert isinstance(waited, Deferred) and not waited.done
    assert p3_clocks.wait_for(state, 0).done  # nothing to wait for: complete at once
    deadline = time.monotonic() + 10
    while not waited.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert waited.done and time.monotonic() - start >= 0.2
    assert p3_clocks.wait_until(state, time.monotonic_ns() - 1).done


def test_a_wait_past_the_request_deadline_ends_soon_after_it() -> None:
    state = HostState(HostConfig(label="a/c", logger=logging.getLogger("test")), timeout=0.1)
    waited = p3_clocks.wait_for(state, 3600 * 10**9)
    deadline = time.monotonic() + 10
    while not waited.done and time.monotonic() < deadline:
        time.sleep(0.02)
    assert waited.done


def test_guest_stdout_written_through_a_stream_is_logged_line_by_line(
        caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tauon.test.p3-stdio")
    state = HostState(HostConfig(label="app.json/web", logger=logger), timeout=10.0)
    reader, writer = stream()
    done = p3_stdio._stdout(state, reader)
    with caplog.at_level(logging.INFO, logger=logger.name):
        writer.write(b"hello ", timeout=5)
        writer.write(b"world\nsecond line\npartial", timeout=5)
        writer.close()
        assert done.read(timeout=10) == ("ok", None)
        state.finish()
    lines = [r.getMessage() for r in caplog.records if r.name == logger.name]
    assert lines == ["app.json/web stdout: hello world", "app.json/web stdout: second line",
                     "app.json/web stdout: partial"]


def test_stdin_is_empty_for_http_components() -> None:
    state = HostState(HostConfig(label="a/c", logger=logging.getLogger("test")), timeout=10.0)
    data, done = p3_stdio.read_via_stream(state)
    assert drained(data) == b""
    assert done.read(timeout=10) == ("ok", None)


@pytest.fixture
def mount_state(tmp_path: Path) -> Iterator[HostState]:
    root = tmp_path / "mount"
    (root / "sub").mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(300_000))  # several pipe-fulls
    (root / "hello.txt").write_text("hello")
    os.symlink("hello.txt", root / "link")
    config = HostConfig(label="app/c", logger=logging.getLogger("test"), mounts=(Mount(str(root), "/"),))
    state = HostState(config, timeout=10.0)
    yield state
    state.finish()


def preopen(state: HostState) -> int:
    [(root, guest_path)] = p3_filesystem.INTERFACES[1].funcs["get-directories"](state)
    assert guest_path == "/"
    return int(root)


def open_at(state: HostState, root: int, path: str, **kw: Any) -> tuple[str, Any]:
    result: tuple[str, Any] = FS["open-at"](state, root, {"symlink-follow"}, path,
                                           kw.get("open_flags", set()), kw.get("flags", {"read"}))
    return result


def test_files_read_through_a_stream_at_the_guests_pace(mount_state: HostState, tmp_path: Path) -> None:
    root = preopen(mount_state)
    big = ok(open_at(mount_state, root, "big.bin"))
    data, done = FS["read-via-stream"](mount_state, big, 1000)
    assert drained(data) == (tmp_path / "mount" / "big.bin").read_bytes()[1000:]
    assert done.read(timeout=10) == ("ok", None)
    data, done = FS["read-via-stream"](mount_state, root, 0)  # a directory
    assert drained(data) == b""
    assert done.read(timeout=10) == ("err", "bad-descriptor")


def test_directories_list_as_a_stream_of_entries(mount_state: HostState) -> None:
    root = preopen(mount_state)
    entries, done = FS["read-directory"](mount_state, root)
    assert sorted(drained(entries), key=lambda e: e["name"]) == [
        {"type": "regular-file", "name": "big.bin"}, {"type": "regular-file", "name": "hello.txt"},
        {"type": "symbolic-link", "name": "link"}, {"type": "directory", "name": "sub"}]
    assert done.read(timeout=10) == ("ok", None)


def test_mounts_are_read_only_and_errors_are_0_3_codes(mount_state: HostState) -> None:
    root = preopen(mount_state)
    assert open_at(mount_state, root, "new.txt", open_flags={"create"}) == ("err", "not-permitted")
    assert open_at(mount_state, root, "missing.txt") == ("err", "no-entry")
    assert open_at(mount_state, root, "../escape") == ("err", "not-permitted")
    assert FS["unlink-file-at"](mount_state, root, "hello.txt") == ("err", "not-permitted")
    hello = ok(open_at(mount_state, root, "hello.txt"))
    reader, writer = stream()
    assert FS["write-via-stream"](mount_state, hello, reader, 0).read(timeout=10) == ("err", "not-permitted")
    assert writer.write(b"x", timeout=5) == 0  # the host dropped the guest's bytes
    assert ok(FS["get-type"](mount_state, hello)) == "regular-file"
    stat = ok(FS["stat-at"](mount_state, root, set(), "link"))
    assert stat["type"] == "symbolic-link"
    assert p3_filesystem.descriptor_type("unknown") == ("other", None)
    assert p3_filesystem.error_code("would-block") == ("other", None)


def test_a_request_moves_at_most_so_many_streams_on_worker_threads_at_once(mount_state: HostState) -> None:
    root = preopen(mount_state)
    big = ok(open_at(mount_state, root, "big.bin"))
    held = [FS["read-via-stream"](mount_state, big, 0) for _ in range(p3_streams.WORKERS_PER_REQUEST)]
    data, done = FS["read-via-stream"](mount_state, big, 0)  # each of those waits for its reader
    assert drained(data) == b""
    assert done.read(timeout=10) == ("err", "insufficient-memory")
    reader, _writer = stream()
    assert p3_stdio._stdout(mount_state, reader).read(timeout=10) == ("err", "pipe")
    for data, _ in held:  # the guest drops them: the workers end and give their slots back
        data.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        data, done = FS["read-via-stream"](mount_state, big, 299_990)
        if done.read(timeout=10) == ("ok", None):
            break
        time.sleep(0.05)
    assert len(drained(data)) == 10


def test_pending_waits_are_bounded_per_request() -> None:
    state = HostState(HostConfig(label="a/c", logger=logging.getLogger("test")), timeout=0.5)
    waits = [p3_clocks.wait_for(state, 10**9) for _ in range(p3_clocks.MAX_PENDING_WAITS)]
    with pytest.raises(HostTrap, match="waits pending"):
        p3_clocks.wait_for(state, 10**9)
    assert p3_clocks.wait_for(state, 0).done  # one that needs no timer is not counted against it
    deadline = time.monotonic() + 20  # they fire (at the request's deadline): the count goes down
    while not all(w.done for w in waits) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(w.done for w in waits)
    assert not p3_clocks.wait_for(state, 10**9).done
