"""wasi:filesystem 0.2 (types, preopens): the component's `files` mounts, read-only, as in Spin.

Each descriptor holds its own OS file descriptor plus its path below the mount root; every path
argument is resolved again from the mount root (hostif/sandbox.py), so nothing outside a mount is
reachable. Everything that would modify the filesystem fails with `not-permitted`, which is what
wasmtime answers for a preopen without write permissions.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from typing import Any

from tauon.hostif.io import InputStream, IoError, StreamFailed
from tauon.hostif.registry import HostInterface, HostTrap
from tauon.hostif.sandbox import (
    FsError,
    code_of,
    lstat_resolved,
    open_resolved,
    open_root,
    readlink_resolved,
    resolve,
)
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import err, ok

MAX_READ = 1 << 20
"""Largest chunk one `read` returns (reads may return less than asked)."""
NOT_PERMITTED = err("not-permitted")
SYNC_FLAGS = frozenset({"file-integrity-sync", "data-integrity-sync", "requested-write-sync"})


class Descriptor:
    """An open file or directory below a mount. `parts`: its path components below the mount root."""

    fds = 1  # counted against the request's descriptor bound (table.MAX_FDS)

    def __init__(self, mount: str, parts: tuple[str, ...], fd: int, is_dir: bool) -> None:
        self.mount = mount
        self.parts = parts
        self.fd = fd
        self.is_dir = is_dir

    def on_drop(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class DirectoryEntries:
    fds = 1  # scandir duplicates the directory's descriptor

    def __init__(self, entries: Iterator[os.DirEntry[str]], scan: Any) -> None:
        self.entries = entries
        self.scan = scan

    def on_drop(self) -> None:
        self.scan.close()


class FileInput(InputStream):
    """read-via-stream: positional reads on its own duplicate of the file's descriptor."""

    fds = 1

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = os.dup(fd)
        self.offset = offset

    def read(self, n: int) -> bytes | None:
        try:
            data = os.pread(self.fd, n, self.offset)
        except OSError as exc:
            raise StreamFailed(f"reading the file failed: {exc.strerror}", code_of(exc)) from None
        if not data and n:
            return None
        self.offset += len(data)
        return data

    def on_drop(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _descriptor(state: HostState, rep: int) -> Descriptor:
    descriptor = state.table.get(rep, Descriptor)
    if descriptor.fd < 0:
        raise HostTrap(f"descriptor {rep} is closed")
    return descriptor


def _directory(state: HostState, rep: int) -> Descriptor:
    descriptor = _descriptor(state, rep)
    if not descriptor.is_dir:
        raise FsError("not-directory")
    return descriptor


def _file(state: HostState, rep: int) -> Descriptor:
    descriptor = _descriptor(state, rep)
    if descriptor.is_dir:
        raise FsError("bad-descriptor")
    return descriptor


def _fs_result(func: Callable[..., Any]) -> Callable[..., tuple[str, Any]]:
    """Turn FsError (and stray OSErrors) into the function's `error-code` result."""

    def wrapper(state: HostState, *args: Any) -> tuple[str, Any]:
        try:
            return ok(func(state, *args))
        except FsError as exc:
            return err(exc.code)
        except OSError as exc:
            return err(code_of(exc))

    wrapper.__name__ = func.__name__
    return wrapper


def _resolve(descriptor: Descriptor, path: str, *, follow: bool) -> tuple[str, ...]:
    root = open_root(descriptor.mount)
    try:
        return resolve(root, descriptor.parts, path, follow=follow)
    finally:
        os.close(root)


def _type_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "regular-file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symbolic-link"
    if stat.S_ISCHR(mode):
        return "character-device"
    if stat.S_ISBLK(mode):
        return "block-device"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "unknown"


def _datetime(ns: int) -> tuple[int, int] | None:
    return None if ns < 0 else (ns // 1_000_000_000, ns % 1_000_000_000)


def _stat_record(info: os.stat_result) -> dict[str, Any]:
    return {
        "type": _type_of(info.st_mode),
        "link-count": info.st_nlink,
        "size": info.st_size,
        "data-access-timestamp": _datetime(info.st_atime_ns),
        "data-modification-timestamp": _datetime(info.st_mtime_ns),
        "status-change-timestamp": _datetime(info.st_ctime_ns),
    }


def _hash(info: os.stat_result) -> tuple[int, int]:
    """metadata-hash-value: stable for one file (device + inode + change time), opaque otherwise."""
    digest = hashlib.blake2b(
        f"{info.st_dev}:{info.st_ino}:{info.st_mtime_ns}:{info.st_size}".encode(), digest_size=16).digest()
    return (int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little"))


def _stat_at(state: HostState, rep: int, path_flags: set[str], path: str) -> os.stat_result:
    descriptor = _directory(state, rep)
    parts = _resolve(descriptor, path, follow="symlink-follow" in path_flags)
    root = open_root(descriptor.mount)
    try:
        return lstat_resolved(root, parts)
    finally:
        os.close(root)


# -- preopens -----------------------------------------------------------------------------------

def get_directories(state: HostState) -> list[tuple[int, str]]:
    preopens = []
    for mount in state.config.mounts:
        try:
            fd = os.open(mount.source, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise HostTrap(f"cannot open the files mount {mount.source}: {exc.strerror}") from None
        preopens.append((state.table.push(Descriptor(mount.source, (), fd, True)), mount.guest_path))
    return preopens


# -- descriptor: reading ------------------------------------------------------------------------

@_fs_result
def open_at(state: HostState, rep: int, path_flags: set[str], path: str, open_flags: set[str],
            flags: set[str]) -> int:
    descriptor = _directory(state, rep)
    if {"create", "truncate"} & open_flags or {"write", "mutate-directory"} & flags:
        raise FsError("not-permitted", "the files mount is read-only")
    if SYNC_FLAGS & flags:
        raise FsError("unsupported")
    if "directory" in open_flags and "exclusive" in open_flags:
        raise FsError("invalid")
    parts = _resolve(descriptor, path, follow="symlink-follow" in path_flags)
    root = open_root(descriptor.mount)
    try:
        mode = os.O_RDONLY | (os.O_DIRECTORY if "directory" in open_flags else 0)
        fd = open_resolved(root, parts, mode)
    finally:
        os.close(root)
    is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
    return state.table.push(Descriptor(descriptor.mount, parts, fd, is_dir))


@_fs_result
def read(state: HostState, rep: int, length: int, offset: int) -> tuple[bytes, bool]:
    descriptor = _file(state, rep)
    want = min(length, MAX_READ)
    if want == 0:
        return b"", offset >= os.fstat(descriptor.fd).st_size
    data = os.pread(descriptor.fd, want, offset)
    return data, len(data) < want


@_fs_result
def read_via_stream(state: HostState, rep: int, offset: int) -> int:
    return state.table.push(FileInput(_file(state, rep).fd, offset))


@_fs_result
def read_directory(state: HostState, rep: int) -> int:
    descriptor = _directory(state, rep)
    scan = os.scandir(descriptor.fd)
    return state.table.push(DirectoryEntries(iter(scan), scan))


def read_directory_entry(state: HostState, rep: int) -> tuple[str, Any]:
    entries = state.table.get(rep, DirectoryEntries)
    try:
        entry = next(entries.entries, None)
        if entry is None:
            return ok(None)
        kind = entry_type(entry)
    except OSError as exc:
        return err(code_of(exc))
    return ok({"type": kind, "name": entry.name})


def entry_type(entry: os.DirEntry[str]) -> str:
    """A directory entry's descriptor-type case, without following a symlink. Raises OSError."""
    if entry.is_symlink():
        return "symbolic-link"
    if entry.is_dir(follow_symlinks=False):
        return "directory"
    if entry.is_file(follow_symlinks=False):
        return "regular-file"
    return _type_of(entry.stat(follow_symlinks=False).st_mode)


@_fs_result
def get_type(state: HostState, rep: int) -> str:
    return _type_of(os.fstat(_descriptor(state, rep).fd).st_mode)


@_fs_result
def get_flags(state: HostState, rep: int) -> set[str]:
    _descriptor(state, rep)
    return {"read"}


@_fs_result
def stat_(state: HostState, rep: int) -> dict[str, Any]:
    return _stat_record(os.fstat(_descriptor(state, rep).fd))


@_fs_result
def stat_at(state: HostState, rep: int, path_flags: set[str], path: str) -> dict[str, Any]:
    return _stat_record(_stat_at(state, rep, path_flags, path))


@_fs_result
def metadata_hash(state: HostState, rep: int) -> tuple[int, int]:
    return _hash(os.fstat(_descriptor(state, rep).fd))


@_fs_result
def metadata_hash_at(state: HostState, rep: int, path_flags: set[str], path: str) -> tuple[int, int]:
    return _hash(_stat_at(state, rep, path_flags, path))


@_fs_result
def readlink_at(state: HostState, rep: int, path: str) -> str:
    descriptor = _directory(state, rep)
    parts = _resolve(descriptor, path, follow=False)
    root = open_root(descriptor.mount)
    try:
        target = readlink_resolved(root, parts)
    finally:
        os.close(root)
    if target.startswith("/"):  # cap-std refuses to reveal links that point outside the sandbox
        raise FsError("not-permitted", f"{path!r} links to an absolute path")
    return target


def is_same_object(state: HostState, rep: int, other: int) -> bool:
    a = os.fstat(_descriptor(state, rep).fd)
    b = os.fstat(_descriptor(state, other).fd)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@_fs_result
def no_op(state: HostState, rep: int, *args: Any) -> None:
    _descriptor(state, rep)  # advise, sync, sync-data: nothing to do on a read-only file


def denied(state: HostState, *args: Any) -> tuple[str, Any]:
    return NOT_PERMITTED


def filesystem_error_code(state: HostState, rep: int) -> str | None:
    """The error-code of a failed file stream's error; None for other streams' errors."""
    return state.table.get(rep, IoError).fs_code


_METHODS: dict[str, Callable[..., Any]] = {
    "open-at": open_at,
    "read": read,
    "read-via-stream": read_via_stream,
    "read-directory": read_directory,
    "get-type": get_type,
    "get-flags": get_flags,
    "stat": stat_,
    "stat-at": stat_at,
    "metadata-hash": metadata_hash,
    "metadata-hash-at": metadata_hash_at,
    "readlink-at": readlink_at,
    "is-same-object": is_same_object,
    "advise": no_op,
    "sync": no_op,
    "sync-data": no_op,
}
_MUTATING = ("write-via-stream", "append-via-stream", "set-size", "set-times", "write", "create-directory-at",
             "set-times-at", "link-at", "remove-directory-at", "rename-at", "symlink-at", "unlink-file-at")

_FUNCS: dict[str, Callable[..., Any]] = {
    f"[method]descriptor.{name}": impl for name, impl in _METHODS.items()}
_FUNCS.update({f"[method]descriptor.{name}": denied for name in _MUTATING})
_FUNCS["[method]directory-entry-stream.read-directory-entry"] = read_directory_entry
_FUNCS["filesystem-error-code"] = filesystem_error_code

INTERFACES = [
    HostInterface("wasi:filesystem/types", _FUNCS, ("descriptor", "directory-entry-stream")),
    HostInterface("wasi:filesystem/preopens", {"get-directories": get_directories}),
]
