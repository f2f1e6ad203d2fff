"""Bodies in bulk by routing: a guest's stream writes and reads go to string-typed imports.

A `list<u8>` crosses wasmtime 50's C API as one 32-byte value per byte (~25 ms per MiB in, ~40 out); a
string crosses as one buffer. rewrite.py retypes reads where the guest's allocator allows it; this
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
it is. Reads retyped by rewrite.py already are left alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import wasmtime

from tauon.wasm.component.binary import (
    CORE_SORTS,
    Reader,
    Unsupported,
    alias_target,
    extern_name,
    externdesc,
    leb,
    read_canon,
    read_instance,
    read_sections,
    read_sort,
    skip_deftype,
)
from tauon.wasm.component.rewrite import STREAMS_PREFIX

VERSION = 7
"""Part of the compiled-component cache key."""
BYTES_IMPORT = "tauon:bytes/streams@0.1.0"
WRITE_FUNCS = ("[method]output-stream.write", "[method]output-stream.blocking-write-and-flush")
READ_FUNCS = ("[method]input-stream.read", "[method]input-stream.blocking-read")
ASCII_SUFFIX = "-ascii"
GROWING_REALLOC = "cabi_realloc"
"""The allocator export whose reads lower latin1 (wit-component lowers a module's imports with it, and
the language runtimes behind it are malloc's kind); any other, such as the preview1 adapter's
`cabi_import_realloc`, which only hands out the caller's buffer, gets the ASCII read."""


@dataclass(frozen=True)
class _Lowered:
    """One `canon lower` of a stream write or read: the guest calls core func `core` for `name`."""

    name: str
    core: int
    memory: int
    realloc: int | None = None
    ascii: bool = False
    """A read whose allocator only hands out the caller's own buffer (below): routed to the ASCII read."""

    @property
    def reads(self) -> bool:
        return self.name in READ_FUNCS

    @property
    def routed_name(self) -> str:
        """The function of the appended import this lowering goes to."""
        return self.name + ASCII_SUFFIX if self.ascii else self.name


@dataclass
class _Scan:
    comp: dict[str, int] = field(default_factory=lambda: {"type": 0, "func": 0, "instance": 0})
    core: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CORE_SORTS.values(), 0))
    streams: list[int] = field(default_factory=list)
    byte_funcs: dict[int, str] = field(default_factory=dict)  # component func -> name
    lowered: list[_Lowered] = field(default_factory=list)
    inline: dict[int, dict[str, tuple[str, int]]] = field(default_factory=dict)  # core inst -> exports
    instantiated: list[tuple[int, dict[str, int]]] = field(default_factory=list)  # (module, args)
    modules: dict[int, tuple[int, int]] = field(default_factory=dict)  # core module -> byte range
    core_func_names: dict[int, str] = field(default_factory=dict)  # core func -> export it aliases
    routed: tuple[str, ...] = WRITE_FUNCS + READ_FUNCS  # the streams functions looked for

    def bump(self, space: dict[str, int], sort: str) -> int:
        if sort not in space:
            return -1
        space[sort] += 1
        return space[sort] - 1


def _scan(data: bytes, reads: bool) -> _Scan:
    scan = _Scan(routed=WRITE_FUNCS + READ_FUNCS if reads else WRITE_FUNCS)
    for section in read_sections(data):
        r = Reader(data, section.start, section.end)
        sid = section.id
        if sid == 1:
            scan.modules[scan.bump(scan.core, "module")] = (section.start, section.end)
        elif sid == 2:
            for _ in range(r.u32()):
                kind = r.byte()
                index = scan.core["instance"]
                if kind == 0x00:
                    module = r.u32()
                    args = {}
                    for _ in range(r.u32()):
                        name = r.name()
                        if r.byte() != 0x12:
                            raise Unsupported("core instantiate argument")
                        args[name] = r.u32()
                    scan.instantiated.append((module, args))
                elif kind == 0x01:
                    exports = {}
                    for _ in range(r.u32()):
                        name = r.name()
                        sort = CORE_SORTS.get(r.byte(), "?")
                        exports[name] = (sort, r.u32())
                    scan.inline[index] = exports
                else:
                    raise Unsupported("core instance")
                scan.bump(scan.core, "instance")
        elif sid == 3:
            raise Unsupported("core type section")
        elif sid == 6:
            for _ in range(r.u32()):
                sort, instance, aliased = alias_target(r)
                if sort.startswith("core:"):
                    index = scan.bump(scan.core, sort[5:])
                    if sort == "core:func" and aliased is not None:
                        scan.core_func_names[index] = aliased
                    continue
                index = scan.bump(scan.comp, sort)
                if sort == "func" and instance in scan.streams and aliased in scan.routed:
                    scan.byte_funcs[index] = aliased
        elif sid == 7:
            for _ in range(r.u32()):
                skip_deftype(r)
                scan.bump(scan.comp, "type")
        elif sid == 8:
            _scan_canon(r, scan)
        elif sid == 10:
            for _ in range(r.u32()):
                name = extern_name(r)
                ext = externdesc(r)
                if ext.sort == "module":
                    scan.bump(scan.core, "module")
                    continue
                index = scan.bump(scan.comp, ext.sort)
                if ext.sort == "instance" and name.startswith(STREAMS_PREFIX):
                    scan.streams.append(index)
                if name == BYTES_IMPORT:
                    raise Unsupported("already routed")
        elif sid == 5:
            for _ in range(r.u32()):
                read_instance(r)
                scan.bump(scan.comp, "instance")
        elif sid == 11:
            for _ in range(r.u32()):
                extern_name(r)
                sort = read_sort(r)
                r.u32()
                if r.byte() == 0x01:
                    externdesc(r)
                scan.bump(scan.comp, sort)  # an export is a new index of its sort
        elif sid in (0, 4):
            pass  # custom sections; nested components have their own index spaces
        else:
            raise Unsupported(f"section {sid}")
    return scan


def _scan_canon(r: Reader, scan: _Scan) -> None:
    for _ in range(r.u32()):
        canon = read_canon(r)
        if canon.lifts:
            scan.bump(scan.comp, "func")
            continue
        index = scan.bump(scan.core, "func")
        name = scan.byte_funcs.get(canon.func) if canon.op == 0x01 and canon.func is not None else None
        if name is None:
            continue
        if name in READ_FUNCS:
            if canon.encoded:
                continue  # retyped to a string already (rewrite.py): not routed
            if canon.memory is None or canon.realloc is None:
                raise Unsupported("a read lowered without its memory and allocator")
            ascii = scan.core_func_names.get(canon.realloc) != GROWING_REALLOC
            scan.lowered.append(_Lowered(name, index, canon.memory, canon.realloc, ascii=ascii))
            continue
        if canon.memory is None or canon.encoded:
            raise Unsupported("a write lowered without its memory, or as a string")
        scan.lowered.append(_Lowered(name, index, canon.memory, canon.realloc))


@dataclass(frozen=True)
class _Table:
    """Where the shim table is: a core table index already, or the export of the shim instance
    (older wit-component passes the shim instance itself to the fix-up)."""

    index: int | None = None
    shim_instance: int | None = None


def _fixup_slots(data: bytes, scan: _Scan) -> tuple[_Table, list[int]]:
    """(the shim table, the table slot of each lowered write), from wit-component's fix-up: either
    `(with "actual" funcs) (with "shim" instance)` or, in newer releases, one `(with "" args)` holding
    the numbered funcs and the `$imports` table."""
    wanted = {lowered.core for lowered in scan.lowered}
    for module, args in scan.instantiated:
        if set(args) == {"actual", "shim"}:
            funcs, func_module, table = args["actual"], "actual", _Table(shim_instance=args["shim"])
        elif set(args) == {""}:
            funcs, func_module = args[""], ""
            sort, index = scan.inline.get(funcs, {}).get("$imports", ("", -1))
            if sort != "table":
                continue
            table = _Table(index=index)
        else:
            continue
        exports = scan.inline.get(funcs, {})
        slot_of = {idx: int(name) for name, (sort, idx) in exports.items()
                   if sort == "func" and idx in wanted and name.isdigit()}
        if set(slot_of) != wanted:
            continue
        if module not in scan.modules or not _identity_fixup(data, *scan.modules[module], func_module):
            raise Unsupported("fix-up module")
        return table, [slot_of[lowered.core] for lowered in scan.lowered]
    raise Unsupported("no fix-up instance")


def _identity_fixup(data: bytes, start: int, end: int, func_module: str) -> bool:
    """True if the fix-up module's function imports are `func_module` "0".."n-1" and its one element
    segment puts import k in table slot k."""
    module = wasmtime.Module(wasmtime.Engine(), data[start:end])
    funcs = [(i.module, i.name) for i in module.imports if isinstance(i.type, wasmtime.FuncType)]
    if funcs != [(func_module, str(k)) for k in range(len(funcs))]:
        return False
    expected = (bytes([0x00, 0x41, 0x00, 0x0B]) + leb(len(funcs))
                + b"".join(leb(k) for k in range(len(funcs))))
    return expected in data[start:end]  # an active segment at offset 0: func 0, 1, ... n-1


def keep_realloc_module(count: int = 1) -> bytes:
    """A core module wrapping `count` guest allocators (imports "" "realloc-j") as the allocators the
    routed reads lower with (exports "realloc-j"): shrinking a block answers the block itself;
    everything else is the guest's.

    Lowering latin1 text that is not ASCII, wasmtime allocates its UTF-8 length, writes the latin1
    bytes, then shrinks the block to their count, which some guests' allocators refuse
    (componentize-py's traps). The block simply stays as large as it was: allocators that free by
    pointer (malloc's kind, which these runtimes use) free all of it; one that frees by the size the
    guest believes (the list's length) can only lose the unused tail, never hand out bytes twice."""
    parts = ["(module"]
    for j in range(count):
        parts.append(f'(import "" "realloc-{j}" (func $realloc{j} (param i32 i32 i32 i32) (result i32)))')
    for j in range(count):
        parts.append(
            f'(func (export "realloc-{j}") (param $old i32) (param $old_size i32) (param $align i32) '
            '(param $size i32) (result i32) '
            '(if (result i32) (i32.and (i32.ne (local.get $old) (i32.const 0)) '
            '(i32.le_u (local.get $size) (local.get $old_size))) '
            '(then (local.get $old)) '
            f'(else (call $realloc{j} (local.get $old) (local.get $old_size) (local.get $align) '
            '(local.get $size)))))')
    parts.append(")")
    return bytes(wasmtime.wat2wasm(" ".join(parts)))


def _trampolines(lowered: list[_Lowered], slots: list[int]) -> bytes:
    parts = ['(module (type $w (func (param i32 i32 i32 i32))) (type $r (func (param i32 i64 i32)))',
             '(import "" "table" (table 0 funcref))']
    if any(entry.reads for entry in lowered):
        parts.append('(import "" "memory" (memory 0))')
    for k, entry in enumerate(lowered):
        ty = "$r" if entry.reads else "$w"
        parts.append(f'(import "" "slow-{k}" (func $slow{k} (type {ty})))')
        parts.append(f'(import "" "fast-{k}" (func $fast{k} (type {ty})))')
    for k, (entry, slot) in enumerate(zip(lowered, slots, strict=True)):
        if entry.reads:
            # The string read first; `closed` from it (result and variant discriminants both 1)
            # means "not ASCII here, or the end": the list read answers instead.
            parts.append(
                f'(func $route{k} (type $r) (call $fast{k} (local.get 0) (local.get 1) (local.get 2)) '
                '(if (i32.and (i32.load8_u (local.get 2)) (i32.load8_u offset=4 (local.get 2))) '
                f'(then (call $slow{k} (local.get 0) (local.get 1) (local.get 2)))))')
        else:
            # Even pointer and a length without the UTF-16 tag bit: the string import; else the list.
            parts.append(
                f'(func $route{k} (type $w) (if (i32.and (i32.or (local.get 1) '
                '(i32.shr_u (local.get 2) (i32.const 31))) (i32.const 1)) '
                f'(then (call $slow{k} (local.get 0) (local.get 1) (local.get 2) (local.get 3))) '
                f'(else (call $fast{k} (local.get 0) (local.get 1) (local.get 2) (local.get 3)))))')
        parts.append(f'(elem (table 0) (i32.const {slot}) func $route{k})')
    parts.append(")")
    return bytes(wasmtime.wat2wasm(" ".join(parts)))


def _name(text: str) -> bytes:
    raw = text.encode()
    return leb(len(raw)) + raw


def route_streams(data: bytes, *, reads: bool = True) -> bytes | None:
    """The component with its aligned writes (and, with `reads`, its reads) routed to the string
    import, or None."""
    try:
        return _route(data, reads)
    except (Unsupported, IndexError, KeyError, ValueError, wasmtime.WasmtimeError):
        return None


def _section(sid: int, entries: list[bytes]) -> bytes:
    body = leb(len(entries)) + b"".join(entries)
    return bytes([sid]) + leb(len(body)) + body


_EQ = b"\x03\x00"  # externdesc type, bound eq
_SHAPES = {
    # resource: (its functions' second parameter, that parameter's type, the result's ok part)
    "output-stream": ("contents", b"\x73", b"\x00"),  # contents: string -> result<_, stream-error>
    "input-stream": ("len", b"\x77", b"\x01\x73"),    # len: u64 -> result<string, stream-error>
}


def _instance_type(t0: int, resources: list[str], names: list[str]) -> bytes:
    """The import's instance type: wasi's resources (component types t0.. in `resources` order) and
    stream-error (the type after them), then the string-typed functions in `names`."""
    decls: list[bytes] = []
    local: dict[str, int] = {}  # name -> type index inside the instance type
    for k, resource in enumerate([*resources, "stream-error"]):
        decls.append(b"\x02\x03\x02\x01" + leb(t0 + k))                           # alias outer 1
        decls.append(b"\x04\x00" + _name(resource) + _EQ + leb(len(decls) - 1))  # export it (eq)
        local[resource] = len(decls) - 1
    func_type: dict[str, int] = {}
    for resource in resources:
        param, param_type, ok_type = _SHAPES[resource]
        decls.append(b"\x01\x68" + leb(local[resource]))                            # borrow
        decls.append(b"\x01\x6a" + ok_type + b"\x01" + leb(local["stream-error"]))   # result
        decls.append(b"\x01\x40\x02" + _name("self") + leb(len(decls) - 2) + _name(param)
                     + param_type + b"\x00" + leb(len(decls) - 1))                  # func
        func_type[resource] = len(decls) - 1
    for name in names:
        resource = "input-stream" if name.startswith("[method]input-stream.") else "output-stream"
        decls.append(b"\x04\x00" + _name(name) + b"\x01" + leb(func_type[resource]))
    return b"\x42" + leb(len(decls)) + b"".join(decls)


def _route(data: bytes, reads: bool) -> bytes | None:
    scan = _scan(data, reads)
    if len(scan.streams) != 1 or not scan.lowered:
        return None
    table, slots = _fixup_slots(data, scan)
    if len({entry.memory for entry in scan.lowered if entry.reads}) > 1:
        raise Unsupported("reads on several memories")
    streams = scan.streams[0]
    names = sorted({entry.routed_name for entry in scan.lowered})
    resources = sorted({"input-stream" if entry.reads else "output-stream" for entry in scan.lowered})
    t0, f0, i0 = scan.comp["type"], scan.comp["func"], scan.comp["instance"]
    core_func0, core_table, core_module, core_instance = (
        scan.core["func"], scan.core["table"], scan.core["module"], scan.core["instance"])

    out = bytearray()
    # The resource and error types of the streams import, as component types t0, t0+1, ...
    out += _section(6, [b"\x03\x00" + leb(streams) + _name(n) for n in [*resources, "stream-error"]])
    t_instance = t0 + len(resources) + 1
    out += _section(7, [_instance_type(t0, resources, names)])                       # t_instance
    out += _section(10, [b"\x00" + _name(BYTES_IMPORT) + b"\x05" + leb(t_instance)])  # instance i0
    out += _section(6, [b"\x01\x00" + leb(i0) + _name(n) for n in names])            # funcs f0 + k
    # One string lowering per original lowering, on the same memory. Writes lower latin1+utf16: the
    # bytes as they are.
    # Reads lower latin1+utf16 too, with the guest's allocators behind keep_realloc_module (one
    # instance of it, made here first, wraps them all: core funcs core_func0 + j).
    reallocs = sorted({entry.realloc for entry in scan.lowered
                       if entry.reads and not entry.ascii and entry.realloc is not None})
    if reallocs:
        keep = keep_realloc_module(len(reallocs))
        out += bytes([1]) + leb(len(keep)) + keep                                    # core_module
        given = b"".join(_name(f"realloc-{j}") + b"\x00" + leb(realloc) for j, realloc in enumerate(reallocs))
        out += _section(2, [b"\x01" + leb(len(reallocs)) + given,
                            b"\x00" + leb(core_module) + b"\x01" + _name("") + b"\x12" + leb(core_instance)])
        out += _section(6, [b"\x00\x00\x01" + leb(core_instance + 1) + _name(f"realloc-{j}")
                            for j in range(len(reallocs))])
        core_module += 1
        core_instance += 2
    wrapped = {realloc: core_func0 + j for j, realloc in enumerate(reallocs)}
    lowered_at = core_func0 + len(reallocs)  # the string lowerings: core funcs lowered_at + k
    lowers = []
    for entry in scan.lowered:
        if not entry.reads:
            options = b"\x02\x02\x03" + leb(entry.memory)
        elif entry.ascii:  # UTF-8 (the default) into the caller's buffer: the host passes only ASCII
            options = b"\x02\x03" + leb(entry.memory) + b"\x04" + leb(entry.realloc or 0)
        else:
            options = b"\x03\x02\x03" + leb(entry.memory) + b"\x04" + leb(wrapped[entry.realloc or 0])
        lowers.append(b"\x01\x00" + leb(f0 + names.index(entry.routed_name)) + options)
    out += _section(8, lowers)
    module = _trampolines(scan.lowered, slots)
    out += bytes([1]) + leb(len(module)) + module                                    # core module
    if table.index is None:  # the shim instance's table, aliased as core table `core_table`
        out += _section(6, [b"\x00\x01\x01" + leb(table.shim_instance or 0) + _name("$imports")])
    exports = [_name("table") + b"\x01" + leb(core_table if table.index is None else table.index)]
    read_memory = next((entry.memory for entry in scan.lowered if entry.reads), None)
    if read_memory is not None:
        exports.append(_name("memory") + b"\x02" + leb(read_memory))
    for k, entry in enumerate(scan.lowered):
        exports.append(_name(f"slow-{k}") + b"\x00" + leb(entry.core))
        exports.append(_name(f"fast-{k}") + b"\x00" + leb(lowered_at + k))
    out += _section(2, [b"\x01" + leb(len(exports)) + b"".join(exports),
                        b"\x00" + leb(core_module) + b"\x01" + _name("") + b"\x12" + leb(core_instance)])
    return data + bytes(out)  # appended: every existing index stays valid
