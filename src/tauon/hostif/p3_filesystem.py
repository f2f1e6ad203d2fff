"""wasi:filesystem 0.3 (and its 2026-03-15 release candidate): the component's `files` mounts,
read-only, as Spin 4 mounts them (crates/factor-wasi: preopened directories with read permissions).

The operations are the 0.2 host's (`filesystem.py`: every path resolved again from the mount root,
nothing outside a mount reachable, everything that would modify the filesystem `not-permitted`), with
0.3's shapes: most methods are async (they complete when called); `descriptor-type` and `error-code`
carry `other(option<string>)` where 0.2 had `unknown`; reading a file or a directory returns a stream
and a future for the outcome instead of a stream resource. A file's bytes are read into its stream by
a pooled worker thread, at the pace the guest reads them, until the request's deadline.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from tauon.hostif import filesystem as p2
from tauon.hostif.p3_streams import (
    STRING,
    U8,
    future_of,
    remaining,
    run_stream_worker,
    stream_of,
    unit_result,
)
from tauon.hostif.registry import HostInterface, p3_name
from tauon.hostif.sandbox import FsError, code_of
from tauon.hostif.state import HostState
from tauon.wasm.canon.types import OptionType, RecordType, VariantType
from tauon.wasm.runtime.async_host import (
    FutureReader,
    FutureWriter,
    StreamReader,
    StreamWriter,
    future,
    stream,
)

ERROR_CODES = ("access", "already", "bad-descriptor", "busy", "deadlock", "quota", "exist",
               "file-too-large", "illegal-byte-sequence", "in-progress", "interrupted", "invalid", "io",
               "is-directory", "loop", "too-many-links", "message-size", "name-too-long", "no-device",
               "no-entry", "no-lock", "insufficient-memory", "insufficient-space", "not-directory",
               "not-empty", "not-recoverable", "unsupported", "no-tty", "no-such-device", "overflow",
               "not-permitted", "pipe", "read-only", "invalid-seek", "text-file-busy", "cross-device")
_KNOWN_CODES = frozenset(ERROR_CODES)
_OTHER = ("other", OptionType(STRING))
ERROR_CODE = VariantType((*((code, None) for code in ERROR_CODES), _OTHER))
DESCRIPTOR_TYPES = ("block-device", "character-device", "directory", "fifo", "symbolic-link",
                    "regular-file", "socket")
DESCRIPTOR_TYPE = VariantType((*((kind, None) for kind in DESCRIPTOR_TYPES), _OTHER))
DIRECTORY_ENTRY = RecordType((("type", DESCRIPTOR_TYPE), ("name", STRING)))
DONE = unit_result(ERROR_CODE)
MAX_ENTRIES = 65536
"""Entries one `read-directory` lists (a mount is the app's own files; past this, the stream ends with
`insufficient-memory`)."""
NOT_PERMITTED = ("err", "not-permitted")


def error_code(code: str) -> str | tuple[str, None]:
    """0.2's error-code case as 0.3's (the same names; anything else is `other`)."""
    return code if code in _KNOWN_CODES else ("other", None)


def descriptor_type(kind: str) -> str | tuple[str, None]:
    return kind if kind in DESCRIPTOR_TYPES else ("other", None)


def _p3(p2_func: Callable[..., tuple[str, Any]],
        convert: Callable[[Any], Any] | None = None) -> Callable[..., tuple[str, Any]]:
    """A 0.2 `result<T, error-code>` function with 0.3's error codes (and `convert` on the ok value)."""

    def call(state: HostState, *args: Any) -> tuple[str, Any]:
        tag, value = p2_func(state, *args)
        if tag == "err":
            return ("err", error_code(value))
        return ("ok", convert(value) if convert is not None else value)

    return call


def _stat(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "type": descriptor_type(record["type"])}


def read_via_stream(state: HostState, rep: int, offset: int) -> tuple[StreamReader, FutureReader]:
    """`read-via-stream: func(offset) -> tuple<stream<u8>, future<result<_, error-code>>>`."""
    try:
        fd = os.dup(p2._file(state, rep).fd)
    except FsError as exc:
        return stream_of(U8, b""), future_of(DONE, ("err", error_code(exc.code)))
    except OSError as exc:
        return stream_of(U8, b""), future_of(DONE, ("err", error_code(code_of(exc))))
    reader, writer = stream(U8)
    done_reader, done_writer = future(DONE)
    if not run_stream_worker(state, _pump_file, fd, offset, writer, done_writer, state.deadline):
        os.close(fd)  # too many streams at once in this request
        writer.close()
        done_writer.write(("err", "insufficient-memory"))
    return reader, done_reader


def _pump_file(fd: int, offset: int, writer: StreamWriter, done: FutureWriter, deadline: float) -> None:
    outcome: tuple[str, Any] = ("ok", None)
    try:
        while True:
            data = os.pread(fd, p2.MAX_READ, offset)
            if not data:
                break
            written = writer.write(data, timeout=remaining(deadline))
            offset += written
            if written < len(data):  # the guest dropped its end
                break
    except OSError as exc:
        outcome = ("err", error_code(code_of(exc)))
    except TimeoutError:  # the request is over
        outcome = ("err", "interrupted")
    finally:
        os.close(fd)
        writer.close()
    done.write(outcome)


def read_directory(state: HostState, rep: int) -> tuple[StreamReader, FutureReader]:
    """`read-directory: func() -> tuple<stream<directory-entry>, future<result<_, error-code>>>`."""
    entries: list[dict[str, Any]] = []
    outcome: tuple[str, Any] = ("ok", None)
    try:
        with os.scandir(p2._directory(state, rep).fd) as scan:
            for entry in scan:
                if len(entries) >= MAX_ENTRIES:
                    outcome = ("err", "insufficient-memory")
                    break
                entries.append({"type": descriptor_type(p2.entry_type(entry)), "name": entry.name})
    except FsError as exc:
        outcome = ("err", error_code(exc.code))
    except OSError as exc:
        outcome = ("err", error_code(code_of(exc)))
    return stream_of(DIRECTORY_ENTRY, entries), future_of(DONE, outcome)


def _write_denied(state: HostState, rep: int, data: StreamReader, *args: Any) -> FutureReader:
    """`write-via-stream` / `append-via-stream` on a read-only mount: the guest's bytes are refused."""
    data.close()
    p2._descriptor(state, rep)
    return future_of(DONE, NOT_PERMITTED)


def _denied(state: HostState, *args: Any) -> tuple[str, Any]:
    return NOT_PERMITTED


_METHODS: dict[str, Callable[..., Any]] = {
    "read-via-stream": read_via_stream,
    "write-via-stream": _write_denied,
    "append-via-stream": _write_denied,
    "read-directory": read_directory,
    "open-at": _p3(p2.open_at),
    "get-type": _p3(p2.get_type, descriptor_type),
    "get-flags": _p3(p2.get_flags),
    "stat": _p3(p2.stat_, _stat),
    "stat-at": _p3(p2.stat_at, _stat),
    "metadata-hash": _p3(p2.metadata_hash),
    "metadata-hash-at": _p3(p2.metadata_hash_at),
    "readlink-at": _p3(p2.readlink_at),
    "is-same-object": p2.is_same_object,
    "advise": _p3(p2.no_op),
    "sync": _p3(p2.no_op),
    "sync-data": _p3(p2.no_op),
}
_MUTATING = ("set-size", "set-times", "create-directory-at", "set-times-at", "link-at",
             "remove-directory-at", "rename-at", "symlink-at", "unlink-file-at")

_FUNCS: dict[str, Callable[..., Any]] = {
    f"[method]descriptor.{name}": impl for name, impl in _METHODS.items()}
_FUNCS.update({f"[method]descriptor.{name}": _denied for name in _MUTATING})

INTERFACES = [
    HostInterface(p3_name("wasi:filesystem/types"), _FUNCS, ("descriptor",)),
    HostInterface(p3_name("wasi:filesystem/preopens"), {"get-directories": p2.get_directories}),
]
