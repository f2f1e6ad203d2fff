"""Reading and editing a component binary: just enough of the component model's binary format for
rewrite.py and routing.py (sections, LEB128, types, imports, aliases), with no I/O.

Anything outside what these readers follow raises `Unsupported`, and callers then leave the component
as it is: the format is read to find a few known shapes, never to validate (wasmtime does that).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class Unsupported(Exception):
    """A construct this reader does not follow: leave the component as it is."""


class Reader:
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


def leb(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def valtype(r: Reader) -> int | None:
    """A valtype: a type index, or None for a primitive."""
    b = r.data[r.pos] if r.pos < r.end else -1
    if 0x64 <= b <= 0x7F:
        r.pos += 1
        return None
    return r.u32()


def opt_valtype(r: Reader) -> int | None:
    flag = r.byte()
    if flag == 0x00:
        return None
    if flag != 0x01:
        raise Unsupported("bad option flag")
    return valtype(r)


def extern_name(r: Reader) -> str:
    kind = r.byte()
    name = r.name()
    if kind == 0x01:
        r.name()  # version suffix
    elif kind != 0x00:
        raise Unsupported("unknown name form")
    return name


@dataclass
class Extern:
    sort: str  # "func", "type", "instance", "component", "value", "module"
    index: int | None = None


def externdesc(r: Reader) -> Extern:
    kind = r.byte()
    if kind == 0x00:
        if r.byte() != 0x11:
            raise Unsupported("core extern")
        r.u32()
        return Extern("module")
    if kind in (0x01, 0x04, 0x05):
        return Extern({0x01: "func", 0x04: "component", 0x05: "instance"}[kind], r.u32())
    if kind == 0x02:
        if r.byte() == 0x00:
            r.u32()
        else:
            valtype(r)
        return Extern("value")
    if kind == 0x03:
        bound = r.byte()
        if bound == 0x00:
            r.u32()
        elif bound != 0x01:
            raise Unsupported("type bound")
        return Extern("type")
    raise Unsupported("externdesc")


SORTS = {0x01: "func", 0x02: "value", 0x03: "type", 0x04: "component", 0x05: "instance"}


def read_sort(r: Reader) -> str:
    b = r.byte()
    if b == 0x00:
        r.byte()
        return "core"
    if b not in SORTS:
        raise Unsupported("sort")
    return SORTS[b]


@dataclass
class Alias:
    sort: str
    instance: int | None = None
    name: str | None = None


def read_alias(r: Reader) -> Alias:
    """One alias; every core sort reads as "core" (with no instance or name)."""
    sort, instance, name = alias_target(r)
    if sort.startswith("core:"):
        return Alias("core")
    return Alias(sort, instance, name)


@dataclass
class Canon:
    """One canonical definition: `op` 0x00 lift (a component func), 0x01 lower, 0x02-0x04 resource
    new/drop/rep (core funcs)."""

    op: int
    func: int | None = None
    memory: int | None = None
    realloc: int | None = None
    encoded: bool = False
    """A string-encoding option is present."""
    opts: tuple[int, int] = (0, 0)
    """Byte range of the option vector."""

    @property
    def lifts(self) -> bool:
        return self.op == 0x00


def read_canon(r: Reader) -> Canon:
    op = r.byte()
    if op in (0x02, 0x03, 0x04):
        r.u32()
        return Canon(op)
    if op not in (0x00, 0x01) or r.byte() != 0x00:
        raise Unsupported("canon builtin")
    canon = Canon(op, func=r.u32())
    start = r.pos
    for _ in range(r.u32()):
        opt = r.byte()
        if opt == 0x03:
            canon.memory = r.u32()
        elif opt == 0x04:
            canon.realloc = r.u32()
        elif opt in (0x05, 0x07):
            r.u32()
        elif opt in (0x00, 0x01, 0x02):
            canon.encoded = True
        elif opt != 0x06:
            raise Unsupported("canon option")
    canon.opts = (start, r.pos)
    if op == 0x00:
        r.u32()  # the lifted function's type
    return canon


@dataclass
class Def:
    """One type definition inside an instance type (what tauon needs of it)."""

    start: int
    kind: int
    refs: list[int] = field(default_factory=list)
    """Local type indices this definition mentions."""
    results: list[int] = field(default_factory=list)
    """For a function type: the type indices of its result (the rest of refs are params)."""
    ok: tuple[int, int] | None = None
    """For a result type: the byte range of its ok type, when that is a type index."""


def defvaltype(r: Reader, d: Def) -> None:
    kind = d.kind
    if kind >= 0x73 or kind == 0x64:
        return  # a primitive (bool .. string, error-context)
    refs = d.refs
    if kind == 0x72:  # record
        for _ in range(r.u32()):
            r.name()
            _add(refs, valtype(r))
    elif kind == 0x71:  # variant
        for _ in range(r.u32()):
            r.name()
            _add(refs, opt_valtype(r))
            if r.byte() != 0x00:
                raise Unsupported("variant refines")
    elif kind in (0x70, 0x6B):  # list, option
        _add(refs, valtype(r))
    elif kind == 0x6F:  # tuple
        for _ in range(r.u32()):
            _add(refs, valtype(r))
    elif kind in (0x6E, 0x6D):  # flags, enum
        for _ in range(r.u32()):
            r.name()
    elif kind == 0x6A:  # result
        start = r.pos + 1
        ok = opt_valtype(r)
        if ok is not None:
            d.ok = (start, r.pos)
        _add(refs, ok)
        _add(refs, opt_valtype(r))
    elif kind in (0x69, 0x68):  # own, borrow
        refs.append(r.u32())
    else:
        raise Unsupported(f"value type 0x{kind:02x}")


def _add(refs: list[int], index: int | None) -> None:
    if index is not None:
        refs.append(index)


def functype(r: Reader, d: Def) -> None:
    for _ in range(r.u32()):
        r.name()
        _add(d.refs, valtype(r))
    form = r.byte()
    if form == 0x00:
        result = valtype(r)
        _add(d.refs, result)
        _add(d.results, result)
    elif form == 0x01:
        if r.byte() != 0x00:
            raise Unsupported("named results")
    else:
        raise Unsupported("result list")


def skip_deftype(r: Reader) -> None:
    """Skip one component-level type definition (any kind)."""
    kind = r.byte()
    if kind == 0x40:
        functype(r, Def(0, kind))
    elif kind in (0x41, 0x42):
        for _ in range(r.u32()):
            decl(r, component=kind == 0x41)
    elif kind == 0x3F:
        if r.byte() != 0x7F:
            raise Unsupported("resource rep")
        if r.byte() == 0x01:
            r.u32()
    else:
        defvaltype(r, Def(0, kind))


def decl(r: Reader, *, component: bool) -> None:
    tag = r.byte()
    if tag == 0x03 and component:
        extern_name(r)
        externdesc(r)
    elif tag == 0x00:
        raise Unsupported("core type in a type")
    elif tag == 0x01:
        skip_deftype(r)
    elif tag == 0x02:
        read_alias(r)
    elif tag == 0x04:
        extern_name(r)
        externdesc(r)
    else:
        raise Unsupported("declaration")


@dataclass
class Section:
    id: int
    start: int  # of the payload
    end: int


def read_sections(data: bytes) -> list[Section]:
    if data[:4] != b"\0asm" or data[4:8] != b"\x0d\x00\x01\x00":
        raise Unsupported("not a component")
    r = Reader(data, 8)
    out = []
    while r.pos < r.end:
        sid = r.byte()
        size = r.u32()
        out.append(Section(sid, r.pos, r.pos + size))
        r.skip(size)
    if r.pos != len(data):
        raise Unsupported("section sizes")
    return out


def apply_edits(data: bytes, sections: list[Section], edits: dict[int, bytes],
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
        out += leb(len(body))
        out += body
    return bytes(out)


CORE_SORTS = {0x00: "func", 0x01: "table", 0x02: "memory", 0x03: "global", 0x10: "type",
              0x11: "module", 0x12: "instance"}


def alias_target(r: Reader) -> tuple[str, int | None, str | None]:
    """One alias: (sort, with a "core:" prefix for core sorts; the instance and export name it
    aliases, for export aliases, core or not)."""
    b = r.byte()
    if b == 0x00:
        core = CORE_SORTS.get(r.byte())
        if core is None:
            raise Unsupported("core sort")
        sort = "core:" + core
    elif b in SORTS:
        sort = SORTS[b]
    else:
        raise Unsupported("sort")
    target = r.byte()
    if target in (0x00, 0x01):  # an export of a component instance, or of a core instance
        instance = r.u32()
        return sort, instance, r.name()
    if target == 0x02:
        r.u32()
        r.u32()
    else:
        raise Unsupported("alias target")
    return sort, None, None


def read_instance(r: Reader) -> list[tuple[str, int]]:
    """One component instance definition: the (sort, index) of everything it is made of (the
    arguments of an instantiation, or the items of an inline instance)."""
    kind = r.byte()
    if kind == 0x00:
        r.u32()  # the component instantiated
    elif kind != 0x01:
        raise Unsupported("instance")
    items = []
    for _ in range(r.u32()):
        if kind == 0x00:
            r.name()
        else:
            extern_name(r)
        sort = read_sort(r)
        items.append((sort, r.u32()))
    return items
