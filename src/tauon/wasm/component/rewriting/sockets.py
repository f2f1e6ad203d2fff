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

from tauon.wasm.component.rewriting.binfmt import Sort, Ty
from tauon.wasm.component.rewriting.contract import SOCKET_FUNCS, SOCKET_PREFIXES
from tauon.wasm.component.rewriting.encode import apply_edits
from tauon.wasm.component.rewriting.reader import Def, Unsupported
from tauon.wasm.component.rewriting.walker import Import, TypeDecl, TypeDef, instance_decls, walk

VERSION = 1
"""Part of the compiled-component cache key."""


def retype(data: bytes) -> bytes | None:
    """The component with those parameters retyped, or None (nothing to do, or a shape not followed)."""
    try:
        return _retype(data)
    except (Unsupported, IndexError, KeyError):
        return None


def _retype(data: bytes) -> bytes | None:
    w = walk(data, frozenset({Sort.TYPE}))  # only the type index space matters here
    types: dict[int, tuple[int, int]] = {}
    targets: set[int] = set()  # instance types of the socket imports
    for item in w.items():
        if isinstance(item, TypeDef):
            types[item.index] = (item.start, item.end)
        elif (isinstance(item, Import) and item.desc.sort == Sort.INSTANCE
              and item.name.startswith(SOCKET_PREFIXES) and item.desc.index is not None):
            targets.add(item.desc.index)
    edits: dict[int, bytes] = {}
    removed: dict[int, int] = {}
    for index in targets:
        if index not in types:
            return None
        for start, end in _network_params(data, *types[index]):
            edits[start] = bytes([Ty.U32])
            removed[start] = end - start
    if not edits:
        return None
    return apply_edits(data, w.sections, edits, removed)


def _network_params(data: bytes, start: int, end: int) -> list[tuple[int, int]]:
    """Byte ranges of the `network` parameter types of SOCKET_FUNCS in the instance type at
    data[start:end]."""
    funcs: dict[int, Def] = {}  # local type index -> its function type
    used: dict[int, list[str]] = {}  # local func type index -> export names using it
    for decl in instance_decls(data, start, end):
        if isinstance(decl, TypeDecl):
            if decl.definition.kind == Ty.FUNC:
                funcs[decl.index] = decl.definition
        elif decl.desc.sort == Sort.FUNC and decl.desc.index is not None:
            used.setdefault(decl.desc.index, []).append(decl.name)
    ranges = []
    for index, names in used.items():
        if not any(n in SOCKET_FUNCS for n in names):
            continue
        if not all(n in SOCKET_FUNCS for n in names):
            raise Unsupported("a socket function type shared with another function")
        params = funcs[index].params
        if len(params) < 2 or params[1].name != "network" or params[1].ref is None:
            raise Unsupported("unexpected socket function signature")
        ranges.append((params[1].start, params[1].end))
    return ranges
