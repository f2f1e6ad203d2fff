"""Bodies in bulk by routing: a guest's stream writes and reads go to string-typed imports.

A `list<u8>` crosses wasmtime 50's C API as one 32-byte value per byte (~25 ms per MiB in, ~40 out); a
string crosses as one buffer. reads.py retypes reads where the guest's allocator allows it; this
module retypes nothing and instead *adds*, at the end of the component:

- an import `tauon:bytes/streams@0.1.0` (its resources are wasi:io/streams' own) with
  - `output-stream.write` and `blocking-write-and-flush` taking `contents: string`, lowered with
    `string-encoding=latin1+utf16`: the bytes as they are;
  - `input-stream.read` and `blocking-read` returning `result<string, stream-error>`, lowered
    latin1+utf16 too, with the guest's `cabi_realloc` behind `keep_realloc_module` (wasmtime shrinks
    the block after writing non-ASCII latin1, which componentize-py's allocator refuses);
  - `input-stream.read-ascii` and `blocking-read-ascii`, the same reads lowered UTF-8 with the
    allocator as it is, for reads whose allocator only hands out the caller's buffer (the preview1
    adapter's `cabi_import_realloc`: the text must land at its start and fit it exactly); the host
    passes only ASCII through them (hostif/io.py), which UTF-8 lays out byte for byte;
- a small core module of trampolines, one per lowering of those functions:
  - a write goes to the string import when the pointer is even (a latin1+utf16 string must start at
    an even address) and the length below 2^31, else to the original list import;
  - a read goes to the string import, then to the original list import if that answered `closed`:
    the end, or from an ASCII read "no ASCII run here" (the list read then answers itself);
- an instance of it whose element segment puts those trampolines into the slots of wit-component's
  shim table through which the guest calls the imports (after wit-component's own fix-up has filled
  them, since instances are created in order).

Appending keeps every existing index valid. Only wit-component's layouts are recognised: one
`wasi:io/streams@0.2.*` import, every lowering of the routed functions going through the shim table,
and a fix-up module whose function imports "0".."n-1" fill table slots 0..n-1 (given as `actual` +
`shim`, or, in newer releases, as one instance holding both). Anything else leaves the component as
it is. Reads retyped by reads.py already are left alone.
"""
from __future__ import annotations

from collections import Counter

import wasmtime

from tauon.wasm.component.rewriting.binfmt import Opt, Section, Sort, Ty
from tauon.wasm.component.rewriting.contract import BYTES_IMPORT
from tauon.wasm.component.rewriting.encode import (
    alias_export,
    alias_outer,
    borrow,
    canon_lower,
    core_instance_of,
    core_instantiate,
    decl_alias,
    decl_export_func,
    decl_export_type_eq,
    decl_type,
    functype,
    import_instance,
    instance_type,
    leb,
    module_section,
    result,
    section,
)
from tauon.wasm.component.rewriting.reader import Unsupported
from tauon.wasm.component.rewriting.routing_scan import Lowered, Scan, ShimTable, fixup_slots, scan
from tauon.wasm.component.rewriting.trampolines import keep_realloc_module, trampolines

VERSION = 7
"""Part of the compiled-component cache key."""

_SHAPES = {
    # resource: (its functions' second parameter, that parameter's type, the result's ok type)
    "output-stream": ("contents", bytes([Ty.STRING]), None),  # contents: string -> result<_, stream-error>
    "input-stream": ("len", bytes([Ty.U64]), bytes([Ty.STRING])),  # len: u64 -> result<string, stream-error>
}


def route_streams(data: bytes, *, reads: bool = True) -> bytes | None:
    """The component with its aligned writes (and, with `reads`, its reads) routed to the string
    import, or None."""
    try:
        return _route(data, reads)
    except (Unsupported, IndexError, KeyError, ValueError, wasmtime.WasmtimeError):
        return None


def _route(data: bytes, reads: bool) -> bytes | None:
    found = scan(data, reads)
    if len(found.streams) != 1 or not found.lowered:
        return None
    table, slots = fixup_slots(data, found)
    if len({entry.memory for entry in found.lowered if entry.reads}) > 1:
        raise Unsupported("reads on several memories")
    names = sorted({entry.routed_name for entry in found.lowered})
    spaces = Counter(found.spaces)  # the next index of each sort, taken as definitions are appended
    out, f0 = _string_import(found, spaces, names)
    keep, wrapped = _wrapped_reallocs(found.lowered, spaces)
    lowers, lowered_at = _string_lowerings(found.lowered, spaces, [f0 + names.index(entry.routed_name)
                                                                   for entry in found.lowered], wrapped)
    routes = _routing_instance(found.lowered, spaces, table, slots, lowered_at)
    return b"".join([data, out, keep, lowers, routes])  # appended: every existing index stays valid


def _take(spaces: Counter[Sort], sort: Sort, count: int = 1) -> int:
    spaces[sort] += count
    return spaces[sort] - count


def _string_import(found: Scan, spaces: Counter[Sort], names: list[str]) -> tuple[bytes, int]:
    """The import of BYTES_IMPORT with the functions in `names`, aliased as component funcs f0 + k:
    (what to append, f0)."""
    streams = found.streams[0]
    resources = sorted({"input-stream" if entry.reads else "output-stream" for entry in found.lowered})
    shared = [*resources, "stream-error"]
    # The resource and error types of the streams import, as component types t0, t0+1, ...
    t0 = _take(spaces, Sort.TYPE, len(shared))
    out = section(Section.ALIAS, [alias_export(Sort.TYPE, streams, n) for n in shared])
    out += section(Section.TYPE, [_instance_type(t0, resources, names)])
    import_type = _take(spaces, Sort.TYPE)
    out += section(Section.IMPORT, [import_instance(BYTES_IMPORT, import_type)])
    instance = _take(spaces, Sort.INSTANCE)
    out += section(Section.ALIAS, [alias_export(Sort.FUNC, instance, n) for n in names])
    return out, _take(spaces, Sort.FUNC, len(names))


def _instance_type(t0: int, resources: list[str], names: list[str]) -> bytes:
    """The import's instance type: wasi's resources (component types t0.. in `resources` order) and
    stream-error (the type after them), then the string-typed functions in `names`."""
    decls: list[bytes] = []  # every declaration here defines a type: its index is its position
    local: dict[str, int] = {}  # name -> type index inside the instance type
    for k, resource in enumerate([*resources, "stream-error"]):
        decls.append(decl_alias(alias_outer(Sort.TYPE, 1, t0 + k)))
        decls.append(decl_export_type_eq(resource, len(decls) - 1))
        local[resource] = len(decls) - 1
    func_type: dict[str, int] = {}
    for resource in resources:
        param, param_type, ok_type = _SHAPES[resource]
        decls.append(decl_type(borrow(local[resource])))
        decls.append(decl_type(result(ok_type, leb(local["stream-error"]))))
        decls.append(decl_type(functype([("self", leb(len(decls) - 2)), (param, param_type)],
                                        leb(len(decls) - 1))))
        func_type[resource] = len(decls) - 1
    for name in names:
        resource = "input-stream" if name.startswith("[method]input-stream.") else "output-stream"
        decls.append(decl_export_func(name, func_type[resource]))
    return instance_type(decls)


def _wrapped_reallocs(lowered: list[Lowered], spaces: Counter[Sort]) -> tuple[bytes, dict[int, int]]:
    """Reads lower latin1+utf16 with the guest's allocators behind keep_realloc_module: one instance
    of it wraps them all. (What to append, and each guest allocator's wrapper as a core func.)"""
    reallocs = sorted({entry.realloc for entry in lowered
                       if entry.reads and not entry.ascii and entry.realloc is not None})
    if not reallocs:
        return b"", {}
    module = _take(spaces, Sort.CORE_MODULE)
    given = _take(spaces, Sort.CORE_INSTANCE)
    keep = _take(spaces, Sort.CORE_INSTANCE)
    out = module_section(keep_realloc_module(len(reallocs)))
    out += section(Section.CORE_INSTANCE, [
        core_instance_of((f"realloc-{j}", Sort.CORE_FUNC, realloc) for j, realloc in enumerate(reallocs)),
        core_instantiate(module, [("", given)])])
    out += section(Section.ALIAS, [alias_export(Sort.CORE_FUNC, keep, f"realloc-{j}")
                                   for j in range(len(reallocs))])
    return out, {realloc: _take(spaces, Sort.CORE_FUNC) for realloc in reallocs}


def _string_lowerings(lowered: list[Lowered], spaces: Counter[Sort], funcs: list[int],
                      wrapped: dict[int, int]) -> tuple[bytes, int]:
    """One string lowering per original lowering (of component func `funcs[k]`), on the same memory,
    as core funcs from the returned index on. Writes and reads lower latin1+utf16 (the bytes as they
    are); ASCII reads lower UTF-8 (the default) into the caller's buffer with its own allocator: the
    host passes only ASCII."""
    lowers = []
    for entry, func in zip(lowered, funcs, strict=True):
        options: list[tuple[Opt, int | None]]
        if not entry.reads:
            options = [(Opt.LATIN1_UTF16, None), (Opt.MEMORY, entry.memory)]
        elif entry.ascii:
            options = [(Opt.MEMORY, entry.memory), (Opt.REALLOC, entry.realloc or 0)]
        else:
            options = [(Opt.LATIN1_UTF16, None), (Opt.MEMORY, entry.memory),
                       (Opt.REALLOC, wrapped[entry.realloc or 0])]
        lowers.append(canon_lower(func, options))
    return section(Section.CANON, lowers), _take(spaces, Sort.CORE_FUNC, len(lowered))


def _routing_instance(lowered: list[Lowered], spaces: Counter[Sort], table: ShimTable, slots: list[int],
                      lowered_at: int) -> bytes:
    """The trampolines module and its instance, which fills the shim table's slots with them."""
    module = _take(spaces, Sort.CORE_MODULE)
    out = module_section(trampolines(lowered, slots))
    table_index = table.index
    if table_index is None:  # the shim instance's table, aliased as a core table
        table_index = _take(spaces, Sort.CORE_TABLE)
        out += section(Section.ALIAS, [alias_export(Sort.CORE_TABLE, table.shim_instance or 0, "$imports")])
    exports = [("table", Sort.CORE_TABLE, table_index)]
    read_memory = next((entry.memory for entry in lowered if entry.reads), None)
    if read_memory is not None:
        exports.append(("memory", Sort.CORE_MEMORY, read_memory))
    for k, entry in enumerate(lowered):
        exports.append((f"slow-{k}", Sort.CORE_FUNC, entry.core))
        exports.append((f"fast-{k}", Sort.CORE_FUNC, lowered_at + k))
    given = _take(spaces, Sort.CORE_INSTANCE)
    _take(spaces, Sort.CORE_INSTANCE)
    instances = [core_instance_of(exports), core_instantiate(module, [("", given)])]
    return out + section(Section.CORE_INSTANCE, instances)
