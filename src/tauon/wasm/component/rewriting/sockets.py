"""Retype the `network` parameter of the wasi:sockets bind and connect functions as a plain `u32`.

wasmtime 50's component C API cannot call a host function that takes a second borrowed resource
after `self`: `tcp-socket.start-connect(self, network: borrow<network>, ...)` traps inside wasmtime
("BUG: deferred host scope has no call context") before the host sees the call. The `network`
argument carries nothing tauon needs (there is one network, and what a guest may reach is decided by
`allowed_outbound_hosts`), so tauon edits the component's *import types* (never its code): in each
`wasi:sockets/tcp@0.2.*` and `wasi:sockets/udp@0.2.*` import, the `network` parameter of
`start-bind` and `start-connect` becomes `u32`. A borrow and a `u32` have the same core ABI (one i32),
so the guest makes identical calls; the host receives the guest's handle number and ignores it.

Only a shape seen in full is edited; anything else leaves the component as it is (wasmtime validates
the result, and cache.py falls back to the original if it is refused).
"""

from __future__ import annotations

from tauon.wasm.component.binary import (
    Reader,
    Unsupported,
    apply_edits,
    extern_name,
    externdesc,
    read_alias,
    read_sections,
    skip_deftype,
    valtype,
)

VERSION = 1
"""Part of the compiled-component cache key."""

PREFIXES = ("wasi:sockets/tcp@0.2", "wasi:sockets/udp@0.2")
FUNCS = frozenset({"[method]tcp-socket.start-bind", "[method]tcp-socket.start-connect",
                   "[method]udp-socket.start-bind"})
_U32 = 0x79


def retype(data: bytes) -> bytes | None:
    """The component with those parameters retyped, or None (nothing to do, or a shape not followed)."""
    try:
        return _retype(data)
    except (Unsupported, IndexError, KeyError):
        return None


def _retype(data: bytes) -> bytes | None:
    sections = read_sections(data)
    types: dict[int, tuple[int, int]] = {}
    count = 0
    targets: set[int] = set()
    for section in sections:
        r = Reader(data, section.start, section.end)
        if section.id == 7:
            for _ in range(r.u32()):
                start = r.pos
                skip_deftype(r)
                types[count] = (start, r.pos)
                count += 1
        elif section.id == 10:
            for _ in range(r.u32()):
                name = extern_name(r)
                ext = externdesc(r)
                if ext.sort == "type":
                    count += 1
                elif ext.sort == "instance" and name.startswith(PREFIXES) and ext.index is not None:
                    targets.add(ext.index)
        elif section.id == 6:
            for _ in range(r.u32()):
                if read_alias(r).sort == "type":
                    count += 1
        elif section.id in (0, 1, 2, 3, 4, 5, 8, 9, 11):
            continue  # no component-level type definitions before the imports that matter
        else:
            raise Unsupported(f"section {section.id}")
    edits: dict[int, bytes] = {}
    removed: dict[int, int] = {}
    for index in targets:
        if index not in types:
            return None
        for start, end in _network_params(data, *types[index]):
            edits[start] = bytes([_U32])
            removed[start] = end - start
    if not edits:
        return None
    return apply_edits(data, sections, edits, removed)


def _network_params(data: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """Byte ranges of the `network` parameter types of FUNCS in the instance type at data[start:end]."""
    r = Reader(data, start, end)
    if r.byte() != 0x42:
        raise Unsupported("not an instance type")
    funcs: dict[int, list[tuple[str, int, int, int | None]]] = {}  # type index -> (name, range, type)
    used: dict[int, list[str]] = {}  # local func type index -> export names using it
    count = 0
    for _ in range(r.u32()):
        tag = r.byte()
        if tag == 0x01:
            if data[r.pos] == 0x40:
                r.pos += 1
                params = []
                for _ in range(r.u32()):
                    name = r.name()
                    at = r.pos
                    ref = valtype(r)
                    params.append((name, at, r.pos, ref))
                funcs[count] = params
                _skip_result(r)
            else:
                skip_deftype(r)
            count += 1
        elif tag == 0x02:
            if read_alias(r).sort == "type":
                count += 1
        elif tag == 0x04:
            name = extern_name(r)
            ext = externdesc(r)
            if ext.sort == "type":
                count += 1
            elif ext.sort == "func" and ext.index is not None:
                used.setdefault(ext.index, []).append(name)
        else:
            raise Unsupported("declaration in an interface")
    if r.pos != end:
        raise Unsupported("instance type length")
    ranges = []
    for index, names in used.items():
        if not any(n in FUNCS for n in names):
            continue
        if not all(n in FUNCS for n in names):
            raise Unsupported("a socket function type shared with another function")
        params = funcs[index]
        if len(params) < 2 or params[1][0] != "network" or params[1][3] is None:
            raise Unsupported("unexpected socket function signature")
        ranges.append((params[1][1], params[1][2]))
    return ranges


def _skip_result(r: Reader) -> None:
    form = r.byte()
    if form == 0x00:
        valtype(r)
    elif form == 0x01:
        if r.byte() != 0x00:
            raise Unsupported("named results")
    else:
        raise Unsupported("result list")
