"""wasi:http/types 0.2 fields (headers and trailers) as host resources, and the bound on the header
bytes one request may make the host hold."""

from __future__ import annotations

import re
from typing import Any

from tauon.hostif.registry import HostTrap
from tauon.hostif.state import PER_REQUEST_BUDGETS, HostState
from tauon.wasm.component.codec import err, ok

FORBIDDEN_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "transfer-encoding", "upgrade", "host", "http2-settings",
})
"""wasmtime-wasi-http's default forbidden set: removed from incoming requests, refused in guest fields."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\0\n\r]")

Header = tuple[str, bytes]


def valid_header(name: str, value: bytes) -> bool:
    """A token name (RFC 9110) and a value without NUL, CR or LF, as the http crate accepts."""
    return _TOKEN.fullmatch(name) is not None and _BAD_VALUE.search(value) is None


class Fields:
    def __init__(self, entries: list[Header], *, immutable: bool = False) -> None:
        self.entries = entries
        self.immutable = immutable


MAX_FIELDS_BYTES = 16 * 1024 * 1024
"""Header bytes (names, values, and 32 bytes per entry) one request may create through fields
constructors, set, append and clone: the host's heap is shared by every app."""
_FIELDS_BYTES = "fields-bytes"
PER_REQUEST_BUDGETS.add(_FIELDS_BYTES)


def _charge(state: HostState, entries: list[Header] | list[tuple[str, bytes]]) -> None:
    """Count header bytes the guest makes the host hold; trap the request past MAX_FIELDS_BYTES."""
    used = state.extensions.get(_FIELDS_BYTES, 0) + sum(len(k) + len(v) + 32 for k, v in entries)
    state.extensions[_FIELDS_BYTES] = used
    if used > MAX_FIELDS_BYTES:
        raise HostTrap(f"the guest created more than {MAX_FIELDS_BYTES // 1024**2} MiB of header fields "
                       "in one request")


def _fields(state: HostState, rep: int) -> Fields:
    return state.table.get(rep, Fields)


def _check_mutation(fields: Fields, name: str, values: list[bytes]) -> tuple[str, Any] | None:
    if fields.immutable:
        return err("immutable")
    if not all(valid_header(name, v) for v in values) or not name:
        return err("invalid-syntax")
    if name.lower() in FORBIDDEN_HEADERS:
        return err("forbidden")
    return None


# -- fields -------------------------------------------------------------------------------------

def fields_new(state: HostState) -> int:
    return state.table.push(Fields([]))


def fields_from_list(state: HostState, entries: list[tuple[str, bytes]]) -> tuple[str, Any]:
    _charge(state, entries)
    fields = Fields([])
    for name, value in entries:
        problem = _check_mutation(fields, name, [value])
        if problem is not None:
            return problem
        fields.entries.append((name.lower(), value))
    return ok(state.table.push(fields))


def fields_get(state: HostState, rep: int, name: str) -> list[bytes]:
    key = name.lower()
    return [v for k, v in _fields(state, rep).entries if k == key]


def fields_has(state: HostState, rep: int, name: str) -> bool:
    key = name.lower()
    return any(k == key for k, _ in _fields(state, rep).entries)


def fields_set(state: HostState, rep: int, name: str, values: list[bytes]) -> tuple[str, Any]:
    fields = _fields(state, rep)
    problem = _check_mutation(fields, name, values)
    if problem is not None:
        return problem
    _charge(state, [(name, v) for v in values])
    key = name.lower()
    fields.entries = [(k, v) for k, v in fields.entries if k != key] + [(key, v) for v in values]
    return ok()


def fields_delete(state: HostState, rep: int, name: str) -> tuple[str, Any]:
    fields = _fields(state, rep)
    problem = _check_mutation(fields, name, [])
    if problem is not None:
        return problem
    key = name.lower()
    fields.entries = [(k, v) for k, v in fields.entries if k != key]
    return ok()


def fields_append(state: HostState, rep: int, name: str, value: bytes) -> tuple[str, Any]:
    fields = _fields(state, rep)
    problem = _check_mutation(fields, name, [value])
    if problem is not None:
        return problem
    _charge(state, [(name, value)])
    fields.entries.append((name.lower(), value))
    return ok()


def fields_entries(state: HostState, rep: int) -> list[tuple[str, bytes]]:
    return list(_fields(state, rep).entries)


def fields_clone(state: HostState, rep: int) -> int:
    entries = list(_fields(state, rep).entries)
    _charge(state, entries)
    return state.table.push(Fields(entries))


def child_headers(state: HostState, entries: list[Header]) -> int:
    return state.table.push(Fields(entries, immutable=True))
