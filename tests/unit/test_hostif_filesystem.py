"""wasi:filesystem host functions on a real directory tree: reads work, writes and escapes do not."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tauon.hostif import filesystem as fs
from tauon.hostif import io
from tauon.hostif.state import HostConfig, HostState
from tauon.model.mount import Mount

READ = {"read"}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    root = tmp_path / "mount"
    (root / "static" / "deep").mkdir(parents=True)
    (root / "hello.txt").write_text("hello, files\n")
    (root / "static" / "data.bin").write_bytes(bytes(range(256)) * 10)
    (root / "static" / "deep" / "leaf.txt").write_text("leaf")
    os.symlink("../hello.txt", root / "static" / "link-in")
    os.symlink("deep", root / "static" / "dir-link")
    os.symlink("../../outside/secret.txt", root / "static" / "link-out")
    os.symlink(str(outside / "secret.txt"), root / "abs-link")
    os.symlink("loop-b", root / "loop-a")
    os.symlink("loop-a", root / "loop-b")
    return root


@pytest.fixture
def state(tree: Path) -> Iterator[HostState]:
    config = HostConfig(label="app/c", logger=logging.getLogger("test"), mounts=(Mount(str(tree), "/"),))
    host = HostState(config, timeout=5.0)
    yield host
    host.finish()


@pytest.fixture
def root(state: HostState) -> int:
    [(rep, guest)] = fs.get_directories(state)
    assert guest == "/"
    return int(rep)


def open_file(state: HostState, root: int, path: str, follow: bool = True, **kw: Any) -> tuple[str, Any]:
    result: tuple[str, Any] = fs.open_at(state, root, {"symlink-follow"} if follow else set(), path,
                                         kw.get("open_flags", set()), kw.get("flags", READ))
    return result


def read_all(state: HostState, rep: int) -> bytes:
    out, offset = b"", 0
    while True:
        tag, value = fs.read(state, rep, 1000, offset)
        assert tag == "ok"
        data, eof = value
        out += data
        offset += len(data)
        if eof:
            return bytes(out)


def test_open_and_read_a_file(state: HostState, root: int) -> None:
    tag, rep = open_file(state, root, "hello.txt")
    assert tag == "ok"
    assert read_all(state, rep) == b"hello, files\n"
    assert fs.get_type(state, rep) == ("ok", "regular-file")
    assert fs.get_flags(state, rep) == ("ok", {"read"})
    tag, info = fs.stat_(state, rep)
    assert tag == "ok" and info["size"] == 13 and info["type"] == "regular-file"
    assert info["data-modification-timestamp"][0] > 0


def test_read_via_stream(state: HostState, root: int, tree: Path) -> None:
    _, rep = open_file(state, root, "static/data.bin")
    tag, stream = fs.read_via_stream(state, rep, 10)
    assert tag == "ok"
    data = b""
    while True:
        tag, chunk = io.input_blocking_read(state, stream, 700)
        if tag == "err":
            assert chunk == ("closed", None)
            break
        data += chunk
    assert data == (tree / "static" / "data.bin").read_bytes()[10:]


def test_directories_listing_and_nested_open(state: HostState, root: int) -> None:
    tag, static = open_file(state, root, "static", open_flags={"directory"})
    assert tag == "ok"
    assert fs.get_type(state, static) == ("ok", "directory")
    _, entries = fs.read_directory(state, static)
    names = {}
    while (entry := fs.read_directory_entry(state, entries)[1]) is not None:
        names[entry["name"]] = entry["type"]
    assert names == {"data.bin": "regular-file", "deep": "directory", "link-in": "symbolic-link",
                     "dir-link": "symbolic-link", "link-out": "symbolic-link"}
    # relative to a nested descriptor, `..` may climb back to the mount root but no further
    _, rep = open_file(state, static, "../hello.txt")
    assert read_all(state, rep) == b"hello, files\n"
    _, leaf = open_file(state, static, "dir-link/leaf.txt")
    assert read_all(state, leaf) == b"leaf"
    assert open_file(state, static, "../../outside/secret.txt") == ("err", "not-permitted")


@pytest.mark.parametrize("path, code", [
    ("../outside/secret.txt", "not-permitted"),
    ("/etc/passwd", "not-permitted"),
    ("static/../../outside/secret.txt", "not-permitted"),
    ("static/link-out", "not-permitted"),   # relative symlink climbing out of the mount
    ("abs-link", "not-permitted"),          # symlink to an absolute path
    ("loop-a", "loop"),
    ("absent.txt", "no-entry"),
    ("hello.txt/x", "not-directory"),
])
def test_escapes_and_bad_paths_are_refused(state: HostState, root: int, path: str, code: str) -> None:
    assert open_file(state, root, path) == ("err", code)


def test_symlinks_inside_the_mount_are_followed_only_when_asked(state: HostState, root: int) -> None:
    _, rep = open_file(state, root, "static/link-in")
    assert read_all(state, rep) == b"hello, files\n"
    assert open_file(state, root, "static/link-in", follow=False) == ("err", "loop")  # O_NOFOLLOW
    assert fs.readlink_at(state, root, "static/link-in") == ("ok", "../hello.txt")
    assert fs.readlink_at(state, root, "abs-link") == ("err", "not-permitted")
    assert fs.readlink_at(state, root, "hello.txt") == ("err", "invalid")
    tag, info = fs.stat_at(state, root, set(), "static/link-in")
    assert (tag, info["type"]) == ("ok", "symbolic-link")
    tag, info = fs.stat_at(state, root, {"symlink-follow"}, "static/link-in")
    assert (tag, info["type"], info["size"]) == ("ok", "regular-file", 13)


@pytest.mark.parametrize("open_flags, flags", [
    ({"create"}, READ), ({"truncate"}, READ), (set(), {"read", "write"}), (set(), {"mutate-directory"}),
    ({"create", "exclusive"}, {"write"}),
])
def test_opening_for_write_is_not_permitted(state: HostState, root: int, tree: Path,
                                            open_flags: set[str], flags: set[str]) -> None:
    assert open_file(state, root, "new.txt", open_flags=open_flags, flags=flags) == ("err", "not-permitted")
    assert open_file(state, root, "hello.txt", open_flags=open_flags, flags=flags) == ("err", "not-permitted")
    assert not (tree / "new.txt").exists()
    assert (tree / "hello.txt").read_text() == "hello, files\n"


def test_mutating_functions_are_not_permitted(state: HostState, root: int, tree: Path) -> None:
    _, rep = open_file(state, root, "hello.txt")
    funcs = fs._FUNCS
    assert funcs["[method]descriptor.write"](state, rep, b"x", 0) == ("err", "not-permitted")
    assert funcs["[method]descriptor.write-via-stream"](state, rep, 0) == ("err", "not-permitted")
    assert funcs["[method]descriptor.create-directory-at"](state, root, "d") == ("err", "not-permitted")
    assert funcs["[method]descriptor.unlink-file-at"](state, root, "hello.txt") == ("err", "not-permitted")
    rename = funcs["[method]descriptor.rename-at"]
    assert rename(state, root, "hello.txt", root, "x") == ("err", "not-permitted")
    assert sorted(p.name for p in tree.iterdir()) == ["abs-link", "hello.txt", "loop-a", "loop-b", "static"]


def test_descriptor_kind_errors(state: HostState, root: int) -> None:
    _, rep = open_file(state, root, "hello.txt")
    assert fs.read(state, root, 10, 0) == ("err", "bad-descriptor")
    assert fs.read_directory(state, rep) == ("err", "not-directory")
    assert open_file(state, rep, "x") == ("err", "not-directory")
    assert open_file(state, root, "hello.txt", open_flags={"directory"}) == ("err", "not-directory")


def test_identity_and_metadata_hash(state: HostState, root: int) -> None:
    _, a = open_file(state, root, "hello.txt")
    _, b = open_file(state, root, "static/link-in")
    _, c = open_file(state, root, "static/data.bin")
    assert fs.is_same_object(state, a, b) and not fs.is_same_object(state, a, c)
    assert fs.metadata_hash(state, a) == fs.metadata_hash(state, b)
    assert fs.metadata_hash(state, a) != fs.metadata_hash(state, c)
    followed = fs.metadata_hash_at(state, root, {"symlink-follow"}, "static/link-in")
    assert followed == fs.metadata_hash(state, a)


def test_descriptors_are_closed_at_the_end_of_the_request(tree: Path) -> None:
    config = HostConfig(label="app/c", logger=logging.getLogger("test"), mounts=(Mount(str(tree), "/"),))
    before = len(os.listdir("/proc/self/fd"))
    host = HostState(config, timeout=5.0)
    [(root, _)] = fs.get_directories(host)
    _, rep = open_file(host, root, "static/data.bin")
    fs.read_via_stream(host, rep, 0)
    fs.read_directory(host, root)
    assert len(os.listdir("/proc/self/fd")) > before
    host.finish()
    assert len(os.listdir("/proc/self/fd")) == before


def test_a_failed_file_stream_reports_its_filesystem_error_code(state: HostState, tree: Path) -> None:
    # pread on a directory descriptor fails with EISDIR: the stream error must say so.
    directory_fd = os.open(tree / "static", os.O_RDONLY)
    try:
        stream = state.table.push(fs.FileInput(directory_fd, 0))
    finally:
        os.close(directory_fd)
    tag, payload = io.input_read(state, stream, 16)
    assert tag == "err" and payload[0] == "last-operation-failed"
    error = payload[1]
    assert fs.filesystem_error_code(state, error) == "is-directory"
    assert "reading the file failed" in io.error_to_debug_string(state, error)
    # An error from another kind of stream has no filesystem code.
    other = state.table.push(io.IoError("the other end has gone away"))
    assert fs.filesystem_error_code(state, other) is None
