"""Path resolution confined to a mount, openat-style (the rules of WASI path resolution).

A path is resolved component by component from the mount's root directory, with symlinks expanded by
hand: `..` above the root, an absolute path and a symlink to an absolute target fail with
`not-permitted`, like wasmtime's cap-std sandbox. The final open walks the resolved components with
O_NOFOLLOW on every step, so a symlink swapped in after resolution cannot lead outside the mount either.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque

MAX_SYMLINKS = 40
"""Symlink expansions per resolution before `loop` (Linux's limit)."""
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_ERRNO_CODES = {
    errno.ENOENT: "no-entry", errno.EACCES: "access", errno.EPERM: "not-permitted",
    errno.ENOTDIR: "not-directory", errno.EISDIR: "is-directory", errno.ELOOP: "loop",
    errno.ENAMETOOLONG: "name-too-long", errno.EEXIST: "exist", errno.EROFS: "read-only",
    errno.EINVAL: "invalid", errno.ENOTEMPTY: "not-empty", errno.EBADF: "bad-descriptor",
    errno.EMFILE: "insufficient-memory", errno.ENFILE: "insufficient-memory",
    errno.ENOMEM: "insufficient-memory",
    errno.EOVERFLOW: "overflow", errno.ENXIO: "no-such-device", errno.ENODEV: "no-device",
}


class FsError(Exception):
    """A wasi:filesystem `error-code` (its WIT case name) with a message for logs."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


def code_of(exc: OSError) -> str:
    return _ERRNO_CODES.get(exc.errno or 0, "io")


def open_root(host_path: str) -> int:
    """An O_PATH descriptor of a mount's root directory (the caller closes it)."""
    try:
        return os.open(host_path, _DIR_FLAGS)
    except OSError as exc:
        raise FsError(code_of(exc), f"mount {host_path}: {exc.strerror}") from None


def _walk(root_fd: int, parts: tuple[str, ...] | list[str]) -> int:
    """O_PATH descriptor of the directory `parts` below the root, never following a symlink.
    Returns `root_fd` itself for no parts (the caller must not close it then)."""
    current = root_fd
    try:
        for name in parts:
            following = os.open(name, _DIR_FLAGS, dir_fd=current)
            if current != root_fd:
                os.close(current)
            current = following
    except OSError:
        if current != root_fd:
            os.close(current)
        raise
    return current


def _lstat(root_fd: int, parent: list[str], name: str) -> os.stat_result:
    parent_fd = _walk(root_fd, parent)
    try:
        return os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    finally:
        if parent_fd != root_fd:
            os.close(parent_fd)


def _readlink(root_fd: int, parent: list[str], name: str) -> str:
    parent_fd = _walk(root_fd, parent)
    try:
        return os.readlink(name, dir_fd=parent_fd)
    finally:
        if parent_fd != root_fd:
            os.close(parent_fd)


def check_path(path: str) -> None:
    if path.startswith("/"):
        raise FsError("not-permitted", f"absolute path {path!r}")
    if "\0" in path:
        raise FsError("invalid", "path contains a NUL character")


def resolve(root_fd: int, base: tuple[str, ...], path: str, *, follow: bool) -> tuple[str, ...]:
    """The components below the mount root that `path` names, seen from the directory `base`.

    Every symlink is expanded, except a final one when `follow` is false. Raises FsError.
    """
    check_path(path)
    parts = list(base)
    pending = deque(path.split("/"))
    links = 0
    try:
        while pending:
            name = pending.popleft()
            if name in ("", "."):
                continue
            if name == "..":
                if not parts:
                    raise FsError("not-permitted", f"{path!r} leads outside the mount")
                parts.pop()
                continue
            last = all(rest in ("", ".") for rest in pending)
            info = _lstat(root_fd, parts, name)
            if stat.S_ISLNK(info.st_mode) and (follow or not last):
                links += 1
                if links > MAX_SYMLINKS:
                    raise FsError("loop", f"too many symlinks in {path!r}")
                target = _readlink(root_fd, parts, name)
                if target.startswith("/"):
                    raise FsError("not-permitted", f"{path!r}: symlink to the absolute path {target!r}")
                pending.extendleft(reversed(target.split("/")))
                continue
            if not last and not stat.S_ISDIR(info.st_mode):
                raise FsError("not-directory", f"{path!r}: {name!r} is not a directory")
            parts.append(name)
    except OSError as exc:
        raise FsError(code_of(exc), f"{path!r}: {exc.strerror}") from None
    return tuple(parts)


def open_resolved(root_fd: int, parts: tuple[str, ...], flags: int) -> int:
    """Open resolved `parts` (see `resolve`) with `flags` | O_NOFOLLOW. Raises FsError."""
    try:
        if not parts:
            return os.open(".", flags | os.O_CLOEXEC, dir_fd=root_fd)
        parent_fd = _walk(root_fd, parts[:-1])
        try:
            return os.open(parts[-1], flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        finally:
            if parent_fd != root_fd:
                os.close(parent_fd)
    except OSError as exc:
        raise FsError(code_of(exc), f"{'/'.join(parts) or '.'}: {exc.strerror}") from None


def lstat_resolved(root_fd: int, parts: tuple[str, ...]) -> os.stat_result:
    try:
        if not parts:
            return os.stat(root_fd)
        return _lstat(root_fd, list(parts[:-1]), parts[-1])
    except OSError as exc:
        raise FsError(code_of(exc), f"{'/'.join(parts)}: {exc.strerror}") from None


def readlink_resolved(root_fd: int, parts: tuple[str, ...]) -> str:
    if not parts:
        raise FsError("invalid", "the mount root is not a symlink")
    try:
        return _readlink(root_fd, list(parts[:-1]), parts[-1])
    except OSError as exc:
        raise FsError(code_of(exc), f"{'/'.join(parts)}: {exc.strerror}") from None
