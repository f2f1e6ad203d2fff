"""Reading a component binary: LEB128, names and the grammar of the constructs the rewriters follow
(types, externs, aliases, canonical functions, instances), with no I/O.

Anything outside what these readers follow raises `Unsupported`, and callers then leave the component
as it is: the format is read to find a few known shapes, never to validate (wasmtime does that).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tauon.wasm.component.rewriting.binfmt import (
    ABSENT,
    CANON_FUNC,
    CORE_PREFIX,
    CORE_SORT_BY_BYTE,
    HEADER,
    OPTS_WITH_INDEX,
    PRESENT,
    RESOURCE_REP_I32,
    RESULT_NAMED,
    RESULT_SINGLE,
    SORT_BY_BYTE,
    STRING_ENCODINGS,
    VALTYPE_PRIMITIVES,
    AliasTarget,
    Bound,
    Canon,
    Decl,
    Extern,
    InstanceKind,
    NameForm,
    Opt,
    Sort,
    Ty,
)


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

    def peek(self) -> int:
        return self.data[self.pos] if self.pos < self.end else -1

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


@dataclass(slots=True)
class SectionSpan:
    id: int
    start: int  # of the payload
    end: int


def read_sections(data: bytes) -> list[SectionSpan]:
    if data[:8] != HEADER:
        raise Unsupported("not a component")
    r = Reader(data, len(HEADER))
    out = []
    while r.pos < r.end:
        sid = r.byte()
        size = r.u32()
        out.append(SectionSpan(sid, r.pos, r.pos + size))
        r.skip(size)
    if r.pos != len(data):
        raise Unsupported("section sizes")
    return out


def valtype(r: Reader) -> int | None:
    """A valtype: a type index, or None for a primitive."""
    if r.peek() in VALTYPE_PRIMITIVES:
        r.pos += 1
        return None
    return r.u32()


def opt_valtype(r: Reader) -> int | None:
    flag = r.byte()
    if flag == ABSENT:
        return None
    if flag != PRESENT:
        raise Unsupported("bad option flag")
    return valtype(r)


def extern_name(r: Reader) -> str:
    form = r.byte()
    name = r.name()
    if form == NameForm.VERSIONED:
        r.name()  # version suffix
    elif form != NameForm.PLAIN:
        raise Unsupported("unknown name form")
    return name


@dataclass(slots=True)
class ExternDesc:
    sort: Sort
    index: int | None = None
    """The type index of a func, component or instance."""


_EXTERN_SORTS = {Extern.FUNC: Sort.FUNC, Extern.COMPONENT: Sort.COMPONENT, Extern.INSTANCE: Sort.INSTANCE}


def externdesc(r: Reader) -> ExternDesc:
    kind = r.byte()
    if kind == Extern.CORE_MODULE:
        if r.byte() != Sort.CORE_MODULE.core_byte:
            raise Unsupported("core extern")
        r.u32()
        return ExternDesc(Sort.CORE_MODULE)
    if kind in _EXTERN_SORTS:
        return ExternDesc(_EXTERN_SORTS[Extern(kind)], r.u32())
    if kind == Extern.VALUE:
        if r.byte() == Bound.EQ:
            r.u32()
        else:
            valtype(r)
        return ExternDesc(Sort.VALUE)
    if kind == Extern.TYPE:
        bound = r.byte()
        if bound == Bound.EQ:
            r.u32()
        elif bound != Bound.SUB_RESOURCE:
            raise Unsupported("type bound")
        return ExternDesc(Sort.TYPE)
    raise Unsupported("externdesc")


def read_sort(r: Reader) -> Sort:
    b = r.byte()
    if b == CORE_PREFIX:
        core = CORE_SORT_BY_BYTE.get(r.byte())
        if core is None:
            raise Unsupported("core sort")
        return core
    if b not in SORT_BY_BYTE:
        raise Unsupported("sort")
    return SORT_BY_BYTE[b]


@dataclass(slots=True)
class AliasDef:
    sort: Sort
    instance: int | None = None
    """For an export alias (core or not): the instance aliased, and the export's name."""
    name: str | None = None


def read_alias(r: Reader) -> AliasDef:
    sort = read_sort(r)
    target = r.byte()
    if target in (AliasTarget.EXPORT, AliasTarget.CORE_EXPORT):
        instance = r.u32()
        return AliasDef(sort, instance, r.name())
    if target != AliasTarget.OUTER:
        raise Unsupported("alias target")
    r.u32()  # outer count
    r.u32()  # index there
    return AliasDef(sort)


@dataclass
class CanonDef:
    """One canonical definition: a lift (a component func), a lower or a resource builtin (core
    funcs)."""

    op: Canon
    func: int | None = None
    options: list[tuple[Opt, int | None]] = field(default_factory=list)
    """The canonical options in order, each with its index argument if it has one."""
    opts: tuple[int, int] = (0, 0)
    """Byte range of the option vector (its count included)."""

    @property
    def lifts(self) -> bool:
        return self.op == Canon.LIFT

    def option(self, opt: Opt) -> int | None:
        return next((arg for o, arg in self.options if o == opt), None)

    @property
    def memory(self) -> int | None:
        return self.option(Opt.MEMORY)

    @property
    def realloc(self) -> int | None:
        return self.option(Opt.REALLOC)

    @property
    def encoded(self) -> bool:
        """A string-encoding option is present."""
        return any(o in STRING_ENCODINGS for o, _ in self.options)


_RESOURCE_BUILTINS = (Canon.RESOURCE_NEW, Canon.RESOURCE_DROP, Canon.RESOURCE_REP)


def read_canon(r: Reader) -> CanonDef:
    op = r.byte()
    if op in _RESOURCE_BUILTINS:
        r.u32()
        return CanonDef(Canon(op))
    if op not in (Canon.LIFT, Canon.LOWER) or r.byte() != CANON_FUNC:
        raise Unsupported("canon builtin")
    canon = CanonDef(Canon(op), func=r.u32())
    start = r.pos
    for _ in range(r.u32()):
        code = r.byte()
        if code not in Opt.__members__.values():
            raise Unsupported("canon option")
        opt = Opt(code)
        canon.options.append((opt, r.u32() if opt in OPTS_WITH_INDEX else None))
    canon.opts = (start, r.pos)
    if op == Canon.LIFT:
        r.u32()  # the lifted function's type
    return canon


def read_instance(r: Reader) -> list[tuple[Sort, int]]:
    """One component instance definition: the (sort, index) of everything it is made of (the
    arguments of an instantiation, or the items of an inline instance)."""
    kind = r.byte()
    if kind == InstanceKind.INSTANTIATE:
        r.u32()  # the component instantiated
    elif kind != InstanceKind.FROM_EXPORTS:
        raise Unsupported("instance")
    items = []
    for _ in range(r.u32()):
        if kind == InstanceKind.INSTANTIATE:
            r.name()
        else:
            extern_name(r)
        sort = read_sort(r)
        items.append((sort, r.u32()))
    return items


@dataclass(slots=True)
class Param:
    name: str
    start: int
    end: int
    """Byte range of the parameter's type."""
    ref: int | None
    """Its type index, or None for a primitive."""


@dataclass
class Def:
    """One type definition inside an instance type (what tauon needs of it)."""

    start: int
    """Where its opcode is."""
    kind: int
    refs: list[int] = field(default_factory=list)
    """Local type indices this definition mentions."""
    params: list[Param] = field(default_factory=list)
    """For a function type: its parameters."""
    results: list[int] = field(default_factory=list)
    """For a function type: the type indices of its result (the rest of refs are params)."""
    ok: tuple[int, int] | None = None
    """For a result type: the byte range of its ok type, when that is a type index."""


def _add(refs: list[int], index: int | None) -> None:
    if index is not None:
        refs.append(index)


def _named_valtypes(r: Reader, refs: list[int]) -> None:
    for _ in range(r.u32()):
        r.name()
        _add(refs, valtype(r))


def defvaltype(r: Reader, d: Def) -> None:
    kind, refs = d.kind, d.refs
    if kind >= Ty.PRIMITIVE_MIN or kind == Ty.ERROR_CONTEXT:
        return
    if kind == Ty.RECORD:
        _named_valtypes(r, refs)
    elif kind == Ty.VARIANT:
        for _ in range(r.u32()):
            r.name()
            _add(refs, opt_valtype(r))
            if r.byte() != ABSENT:
                raise Unsupported("variant refines")
    elif kind in (Ty.LIST, Ty.OPTION):
        _add(refs, valtype(r))
    elif kind == Ty.TUPLE:
        for _ in range(r.u32()):
            _add(refs, valtype(r))
    elif kind in (Ty.FLAGS, Ty.ENUM):
        for _ in range(r.u32()):
            r.name()
    elif kind == Ty.RESULT:
        start = r.pos + 1
        ok = opt_valtype(r)
        if ok is not None:
            d.ok = (start, r.pos)
        _add(refs, ok)
        _add(refs, opt_valtype(r))
    elif kind in (Ty.OWN, Ty.BORROW):
        refs.append(r.u32())
    else:
        raise Unsupported(f"value type 0x{kind:02x}")


def functype(r: Reader, d: Def) -> None:
    for _ in range(r.u32()):
        name = r.name()
        at = r.pos
        ref = valtype(r)
        d.params.append(Param(name, at, r.pos, ref))
        _add(d.refs, ref)
    form = r.byte()
    if form == RESULT_SINGLE:
        result = valtype(r)
        _add(d.refs, result)
        _add(d.results, result)
    elif form == RESULT_NAMED:
        if r.byte() != 0:
            raise Unsupported("named results")
    else:
        raise Unsupported("result list")


def read_deftype(r: Reader) -> Def:
    """One type definition (any kind); what tauon needs of value and function types."""
    d = Def(r.pos, r.byte())
    if d.kind == Ty.FUNC:
        functype(r, d)
    elif d.kind in (Ty.COMPONENT, Ty.INSTANCE):
        for _ in range(r.u32()):
            _skip_decl(r, component=d.kind == Ty.COMPONENT)
    elif d.kind == Ty.RESOURCE:
        if r.byte() != RESOURCE_REP_I32:
            raise Unsupported("resource rep")
        if r.byte() == PRESENT:
            r.u32()  # destructor
    else:
        defvaltype(r, d)
    return d


def _skip_decl(r: Reader, *, component: bool) -> None:
    tag = r.byte()
    if tag == Decl.CORE_TYPE:
        raise Unsupported("core type in a type")
    if tag == Decl.TYPE:
        read_deftype(r)
    elif tag == Decl.ALIAS:
        read_alias(r)
    elif tag == Decl.EXPORT or (tag == Decl.IMPORT and component):
        extern_name(r)
        externdesc(r)
    else:
        raise Unsupported("declaration")
