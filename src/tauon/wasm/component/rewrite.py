"""Request bodies in bulk: retype the byte lists `wasi:io/streams` reads return as latin1 strings.

wasmtime 50's component C API passes a `list<u8>` between guest and host as one 32-byte value per
byte (~25 ms per MiB), while a string crosses as one buffer. The canonical ABI lays out a `list<u8>`
and a `string` the same way (pointer + length, same core signature), and with the `latin1+utf16`
string encoding a string's bytes are exactly the list's bytes. So tauon edits the component's *import
types* (never its code): in each `wasi:io/streams@0.2.*` import, `input-stream.read` and
`blocking-read` return `result<string, stream-error>` instead of `result<list<u8>, stream-error>`, and
their `canon lower` gets `string-encoding=latin1+utf16`. wasmtime then writes the bytes into the guest
in one go (into a buffer the guest's own allocator gives it, as before); the guest sees identical core
calls and identical bytes. codec.py hands the host side bytes as before.

Writes cannot be retyped: the canonical ABI requires a latin1+utf16 string to start at an even
address, and a guest writes from wherever its buffer is (writes.py routes the even ones instead).

Only a shape seen in full is rewritten: every use of the retyped result and of those functions must
be one this module accounts for, else the component is left as it is (and still works, slower).
wasmtime validates the result when compiling it; a rejection falls back to the original (cache.py).

One more condition, checked by running it: lowering latin1 text that is not ASCII, wasmtime allocates
the UTF-8 length and then *shrinks* the buffer with the guest's `realloc`, which the list path never
does. Some allocators refuse that (componentize-py's traps), so `realloc_shrinks` instantiates each
core module that exports the allocator wit-component lowers with, alone, with every import a trap, and
shrinks an allocation; the rewrite is used only if that works.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import wasmtime

VERSION = 3
"""Part of the compiled-component cache key: a change here must not reuse old artifacts."""

STREAMS_PREFIX = "wasi:io/streams@0.2"
BYTE_FUNCS = frozenset({"[method]input-stream.read", "[method]input-stream.blocking-read"})
"""The functions whose `list<u8>` result becomes a latin1 string."""

_LATIN1_UTF16 = 0x02
_LIST, _RESULT, _U8, _STRING = 0x70, 0x6A, 0x7D, 0x73


class Unsupported(Exception):
    """A construct this reader does not follow: leave the component as it is."""


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise Unsupported("truncated")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def u32(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 35:
                raise Unsupported("bad LEB128")

    def name(self) -> str:
        size = self.u32()
        start = self.pos
        self.pos += size
        if self.pos > self.end:
            raise Unsupported("truncated name")
        return self.data[start:self.pos].decode("utf-8", "replace")

    def skip(self, n: int) -> None:
        self.pos += n


def _leb(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _valtype(r: _Reader) -> int | None:
    """A valtype: a type index, or None for a primitive."""
    b = r.data[r.pos] if r.pos < r.end else -1
    if 0x64 <= b <= 0x7F:
        r.pos += 1
        return None
    return r.u32()


def _opt_valtype(r: _Reader) -> int | None:
    flag = r.byte()
    if flag == 0x00:
        return None
    if flag != 0x01:
        raise Unsupported("bad option flag")
    return _valtype(r)


def _extern_name(r: _Reader) -> str:
    kind = r.byte()
    name = r.name()
    if kind == 0x01:
        r.name()  # version suffix
    elif kind != 0x00:
        raise Unsupported("unknown name form")
    return name


@dataclass
class _Extern:
    sort: str  # "func", "type", "instance", "component", "value", "module"
    index: int | None = None


def _externdesc(r: _Reader) -> _Extern:
    kind = r.byte()
    if kind == 0x00:
        if r.byte() != 0x11:
            raise Unsupported("core extern")
        r.u32()
        return _Extern("module")
    if kind in (0x01, 0x04, 0x05):
        return _Extern({0x01: "func", 0x04: "component", 0x05: "instance"}[kind], r.u32())
    if kind == 0x02:
        if r.byte() == 0x00:
            r.u32()
        else:
            _valtype(r)
        return _Extern("value")
    if kind == 0x03:
        bound = r.byte()
        if bound == 0x00:
            r.u32()
        elif bound != 0x01:
            raise Unsupported("type bound")
        return _Extern("type")
    raise Unsupported("externdesc")


_SORTS = {0x01: "func", 0x02: "value", 0x03: "type", 0x04: "component", 0x05: "instance"}


def _sort(r: _Reader) -> str:
    b = r.byte()
    if b == 0x00:
        r.byte()
        return "core"
    if b not in _SORTS:
        raise Unsupported("sort")
    return _SORTS[b]


@dataclass
class _Alias:
    sort: str
    instance: int | None = None
    name: str | None = None


def _alias(r: _Reader) -> _Alias:
    sort = _sort(r)
    target = r.byte()
    if target == 0x00:
        instance = r.u32()
        return _Alias(sort, instance, r.name())
    if target == 0x01:
        r.u32()
        r.name()
    elif target == 0x02:
        r.u32()
        r.u32()
    else:
        raise Unsupported("alias target")
    return _Alias(sort)


@dataclass
class _Def:
    """One type definition inside an instance type (what tauon needs of it)."""

    start: int
    kind: int
    refs: list[int] = field(default_factory=list)
    """Local type indices this definition mentions."""
    results: list[int] = field(default_factory=list)
    """For a function type: the type indices of its result (the rest of refs are params)."""
    ok: tuple[int, int] | None = None
    """For a result type: the byte range of its ok type, when that is a type index."""


def _defvaltype(r: _Reader, d: _Def) -> None:
    kind = d.kind
    if kind >= 0x73 or kind == 0x64:
        return  # a primitive (bool .. string, error-context)
    refs = d.refs
    if kind == 0x72:  # record
        for _ in range(r.u32()):
            r.name()
            _add(refs, _valtype(r))
    elif kind == 0x71:  # variant
        for _ in range(r.u32()):
            r.name()
            _add(refs, _opt_valtype(r))
            if r.byte() != 0x00:
                raise Unsupported("variant refines")
    elif kind in (0x70, 0x6B):  # list, option
        _add(refs, _valtype(r))
    elif kind == 0x6F:  # tuple
        for _ in range(r.u32()):
            _add(refs, _valtype(r))
    elif kind in (0x6E, 0x6D):  # flags, enum
        for _ in range(r.u32()):
            r.name()
    elif kind == 0x6A:  # result
        start = r.pos + 1
        ok = _opt_valtype(r)
        if ok is not None:
            d.ok = (start, r.pos)
        _add(refs, ok)
        _add(refs, _opt_valtype(r))
    elif kind in (0x69, 0x68):  # own, borrow
        refs.append(r.u32())
    else:
        raise Unsupported(f"value type 0x{kind:02x}")


def _add(refs: list[int], index: int | None) -> None:
    if index is not None:
        refs.append(index)


def _functype(r: _Reader, d: _Def) -> None:
    for _ in range(r.u32()):
        r.name()
        _add(d.refs, _valtype(r))
    form = r.byte()
    if form == 0x00:
        result = _valtype(r)
        _add(d.refs, result)
        _add(d.results, result)
    elif form == 0x01:
        if r.byte() != 0x00:
            raise Unsupported("named results")
    else:
        raise Unsupported("result list")


def _skip_deftype(r: _Reader) -> None:
    """Skip one component-level type definition (any kind)."""
    kind = r.byte()
    if kind == 0x40:
        _functype(r, _Def(0, kind))
    elif kind in (0x41, 0x42):
        for _ in range(r.u32()):
            _decl(r, component=kind == 0x41)
    elif kind == 0x3F:
        if r.byte() != 0x7F:
            raise Unsupported("resource rep")
        if r.byte() == 0x01:
            r.u32()
    else:
        _defvaltype(r, _Def(0, kind))


def _decl(r: _Reader, *, component: bool) -> None:
    tag = r.byte()
    if tag == 0x03 and component:
        _extern_name(r)
        _externdesc(r)
    elif tag == 0x00:
        raise Unsupported("core type in a type")
    elif tag == 0x01:
        _skip_deftype(r)
    elif tag == 0x02:
        _alias(r)
    elif tag == 0x04:
        _extern_name(r)
        _externdesc(r)
    else:
        raise Unsupported("declaration")


def _streams_edit(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """The byte range, in the instance type at data[start:end], of the `list<u8>` ok type of the
    result the read functions return, if only they use that result; else None."""
    r = _Reader(data, start, end)
    if r.byte() != 0x42:
        return None
    defs: dict[int, _Def] = {}
    exports: dict[str, int] = {}
    count = 0  # the instance type's own type index space
    for _ in range(r.u32()):
        tag = r.byte()
        if tag == 0x01:
            d = _Def(r.pos, r.byte())
            if d.kind == 0x40:
                _functype(r, d)
            elif d.kind in (0x41, 0x42, 0x3F):
                r.pos -= 1
                _skip_deftype(r)
            else:
                _defvaltype(r, d)
            defs[count] = d
            count += 1
        elif tag == 0x02:
            if _alias(r).sort == "type":
                count += 1
        elif tag == 0x04:
            name = _extern_name(r)
            ext = _externdesc(r)
            if ext.sort == "type":
                count += 1
            elif ext.sort == "func" and ext.index is not None:
                exports[name] = ext.index
        else:
            raise Unsupported("declaration in an interface")
    if r.pos != end:
        raise Unsupported("instance type length")
    readers = {exports[name] for name in BYTE_FUNCS if name in exports}
    if not readers or any(i in readers for n, i in exports.items() if n not in BYTE_FUNCS):
        return None  # no read function, or its function type is shared with another function
    results = {r_ for i in readers for r_ in defs[i].results}
    if len(results) != 1:
        return None
    (result,) = results
    returned = defs.get(result)
    if returned is None or returned.kind != _RESULT or returned.ok is None:
        return None
    listed = defs.get(returned.refs[0])
    if listed is None or listed.kind != _LIST or data[listed.start + 1] != _U8:
        return None
    if any(result in other.refs for i, other in defs.items() if i not in readers):
        return None  # the result type is used elsewhere too
    return returned.ok


@dataclass
class _Section:
    id: int
    start: int  # of the payload
    end: int


def _sections(data: bytes) -> list[_Section]:
    if data[:4] != b"\0asm" or data[4:8] != b"\x0d\x00\x01\x00":
        raise Unsupported("not a component")
    r = _Reader(data, 8)
    out = []
    while r.pos < r.end:
        sid = r.byte()
        size = r.u32()
        out.append(_Section(sid, r.pos, r.pos + size))
        r.skip(size)
    if r.pos != len(data):
        raise Unsupported("section sizes")
    return out


def rewrite(data: bytes) -> bytes | None:
    """The component with its byte-stream imports retyped, or None when there is nothing to do or
    the component has a shape this module does not follow."""
    try:
        return _rewrite(data)
    except (Unsupported, IndexError, KeyError):
        return None


def _rewrite(data: bytes) -> bytes | None:
    sections = _sections(data)
    types: dict[int, tuple[int, int]] = {}  # type index -> byte range of its definition
    counts = {"type": 0, "func": 0, "instance": 0}
    streams: dict[int, int] = {}  # instance index -> its instance type index
    targets: set[int] = set()  # component func indices of the byte functions
    edits: dict[int, bytes] = {}  # offset -> replacement for the byte run at that offset
    removed: dict[int, int] = {}  # offset -> bytes replaced there
    canon_edits: list[tuple[int, int, int]] = []  # (section index, opts offset, opts end)

    def bump(sort: str) -> int:
        if sort not in counts:
            return -1
        counts[sort] += 1
        return counts[sort] - 1

    for sidx, section in enumerate(sections):
        r = _Reader(data, section.start, section.end)
        if section.id == 7:
            for _ in range(r.u32()):
                start = r.pos
                _skip_deftype(r)
                types[bump("type")] = (start, r.pos)
        elif section.id == 10:
            for _ in range(r.u32()):
                name = _extern_name(r)
                ext = _externdesc(r)
                index = bump(ext.sort)
                if ext.sort == "instance" and name.startswith(STREAMS_PREFIX) and ext.index is not None:
                    streams[index] = ext.index
        elif section.id == 6:
            for _ in range(r.u32()):
                alias = _alias(r)
                index = bump(alias.sort)
                if alias.sort == "func" and alias.instance in streams and alias.name in BYTE_FUNCS:
                    targets.add(index)
        elif section.id == 8:
            for _ in range(r.u32()):
                op = r.byte()
                if op in (0x00, 0x01):
                    if r.byte() != 0x00:
                        raise Unsupported("canon")
                    func = r.u32()
                    opts_start = r.pos
                    for _ in range(r.u32()):
                        opt = r.byte()
                        if opt in (0x03, 0x04, 0x05, 0x07):
                            r.u32()
                        elif opt > 0x07:
                            raise Unsupported("canon option")
                    if op == 0x00:
                        r.u32()
                        bump("func")
                    elif func in targets:
                        canon_edits.append((sidx, opts_start, r.pos))
                elif op in (0x02, 0x03, 0x04):
                    r.u32()
                else:
                    raise Unsupported("canon builtin")
        elif section.id == 5:
            for _ in range(r.u32()):
                kind = r.byte()
                if kind == 0x00:
                    r.u32()
                    for _ in range(r.u32()):
                        r.name()
                        sort = _sort(r)
                        if sort == "func" and r.u32() in targets:
                            return None  # a byte function handed on to an inner component
                        elif sort != "func":
                            r.u32()
                elif kind == 0x01:
                    for _ in range(r.u32()):
                        _extern_name(r)
                        sort = _sort(r)
                        if sort == "func" and r.u32() in targets:
                            return None
                        elif sort != "func":
                            r.u32()
                else:
                    raise Unsupported("instance")
                bump("instance")
        elif section.id == 11:
            for _ in range(r.u32()):
                _extern_name(r)
                sort = _sort(r)
                index = r.u32()
                if sort == "func" and index in targets:
                    return None
                if r.byte() == 0x01:
                    _externdesc(r)
                bump(sort)
        elif section.id == 4:
            pass  # a nested component: its own index spaces
        elif section.id in (0, 1, 2, 3):
            pass  # custom sections and core items: no component-level indices
        else:
            raise Unsupported(f"section {section.id}")
    if not targets or not canon_edits:
        return None
    for type_index in set(streams.values()):
        if type_index not in types:
            return None
        span = _streams_edit(data, *types[type_index])
        if span is None:
            return None
        edits[span[0]] = bytes([_STRING])  # result<list<u8>, E> -> result<string, E>
        removed[span[0]] = span[1] - span[0]
    for _sidx, opts_start, opts_end in canon_edits:
        r = _Reader(data, opts_start, opts_end)
        opts = bytearray()
        n = 0
        for _ in range(r.u32()):
            opt = r.byte()
            if opt in (0x00, 0x01, 0x02):
                continue  # replaced below
            opts.append(opt)
            if opt in (0x03, 0x04, 0x05, 0x07):
                opts += _leb(r.u32())
            n += 1
        opts.append(_LATIN1_UTF16)
        edits[opts_start] = _leb(n + 1) + bytes(opts)
        removed[opts_start] = opts_end - opts_start
    return _apply(data, sections, edits, removed)


def _apply(data: bytes, sections: list[_Section], edits: dict[int, bytes],
           removed: dict[int, int]) -> bytes:
    out = bytearray(data[:8])
    for section in sections:
        body = bytearray()
        pos = section.start
        for offset in sorted(o for o in edits if section.start <= o < section.end):
            body += data[pos:offset]
            body += edits[offset]
            pos = offset + removed[offset]
        body += data[pos:section.end]
        out.append(section.id)
        out += _leb(len(body))
        out += body
    return bytes(out)


_REALLOCS = ("cabi_import_realloc", "cabi_realloc")
"""The exports wit-component lowers imports with, in its order of preference."""


def realloc_shrinks(data: bytes) -> bool:
    """True if every core module of the component that exports the import allocator can shrink an
    allocation it made, run on its own (no instance of the app is involved)."""
    try:
        modules = [data[s.start:s.end] for s in _sections(data) if s.id == 1]
    except (Unsupported, IndexError):
        return False
    config = wasmtime.Config()
    config.cranelift_opt_level = "none"  # run once, a few calls: compile fast
    engine = wasmtime.Engine(config)
    probed = 0
    for binary in sorted(modules, key=len):  # small ones (adapters) first: a refusal ends it early
        if not any(name.encode() in binary for name in _REALLOCS):
            continue  # cannot export it: skip compiling
        try:
            module = wasmtime.Module(engine, binary)
            exports = {e.name for e in module.exports}
            name = next((n for n in _REALLOCS if n in exports), None)
            if name is None:
                continue
            store = wasmtime.Store(engine)
            linker = wasmtime.Linker(engine)
            _define_fresh_state(store, linker, module)
            linker.define_unknown_imports_as_traps(module)
            realloc = linker.instantiate(store, module).exports(store)[name]
            assert isinstance(realloc, wasmtime.Func)
            first = realloc(store, 0, 0, 2, 64)
            second = realloc(store, first, 64, 2, 32)
            if not first or not second or second % 2:
                return False
            probed += 1
        except (wasmtime.WasmtimeError, wasmtime.Trap, TypeError, AssertionError):
            return False
    return probed > 0


def _define_fresh_state(store: wasmtime.Store, linker: wasmtime.Linker, module: wasmtime.Module) -> None:
    """Memories, tables and globals a module imports (an adapter imports the main module's): fresh
    ones of the declared type; globals start at zero."""
    for item in module.imports:
        ty = item.type
        value: wasmtime.Memory | wasmtime.Table | wasmtime.Global
        if isinstance(ty, wasmtime.MemoryType):
            value = wasmtime.Memory(store, ty)
        elif isinstance(ty, wasmtime.TableType):
            value = wasmtime.Table(store, ty, None)
        elif isinstance(ty, wasmtime.GlobalType):
            zero = {"i32": wasmtime.Val.i32(0), "i64": wasmtime.Val.i64(0), "f32": wasmtime.Val.f32(0.0),
                    "f64": wasmtime.Val.f64(0.0)}.get(str(ty.content))
            if zero is None:
                raise TypeError(f"global of type {ty.content}")
            value = wasmtime.Global(store, ty, zero)
        else:
            continue
        linker.define(store, item.module, item.name or "", value)


def _alias_target(r: _Reader) -> tuple[str, int | None, str | None]:
    """One alias: (sort, with a "core:" prefix for core sorts; the instance and export name it
    aliases, for export aliases)."""
    b = r.byte()
    if b == 0x00:
        core = {0x00: "func", 0x01: "table", 0x02: "memory", 0x03: "global", 0x10: "type",
                0x11: "module", 0x12: "instance"}.get(r.byte())
        if core is None:
            raise Unsupported("core sort")
        sort = "core:" + core
    elif b in _SORTS:
        sort = _SORTS[b]
    else:
        raise Unsupported("sort")
    target = r.byte()
    if target == 0x00:
        instance = r.u32()
        return sort, instance, r.name()
    if target == 0x01:
        r.u32()
        r.name()
    elif target == 0x02:
        r.u32()
        r.u32()
    else:
        raise Unsupported("alias target")
    return sort, None, None


def _apply_append(data: bytes, sections: bytes) -> bytes:
    return data + sections
