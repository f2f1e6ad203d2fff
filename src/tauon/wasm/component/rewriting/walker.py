"""The one walk over a component's top-level sections and index spaces that every rewriter uses.

`walk` yields each definition as a typed item carrying the index it takes in its sort's index space
(component and core sorts counted apart, every section that adds indices counted, exports included),
so a rewriter only says what it looks for. Nested components are not entered (their index spaces are
their own); core type sections and custom sections are yielded whole, unread. `instance_decls` does
the same inside one instance type, for its own type index space.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from tauon.wasm.component.rewriting.binfmt import (
    CORE_SORT_BY_BYTE,
    EXPORT_TYPED,
    Decl,
    InstanceKind,
    Section,
    Sort,
    Ty,
)
from tauon.wasm.component.rewriting.reader import (
    AliasDef,
    CanonDef,
    Def,
    ExternDesc,
    Reader,
    SectionSpan,
    Unsupported,
    extern_name,
    externdesc,
    read_alias,
    read_canon,
    read_deftype,
    read_instance,
    read_sections,
    read_sort,
)


@dataclass(slots=True)
class Unread:
    """A section not read: custom, core types, a nested component, or a start function."""

    section: SectionSpan


@dataclass(slots=True)
class CoreModule:
    index: int
    start: int
    end: int


@dataclass(slots=True)
class CoreInstance:
    index: int
    module: int | None
    """The module instantiated, or None for an instance made of exports."""
    args: dict[str, int]
    """Instantiation arguments: import module name -> core instance."""
    exports: dict[str, tuple[Sort | None, int]]
    """For an instance made of exports: name -> (core sort, None if unknown; index)."""


@dataclass(slots=True)
class ComponentInstance:
    index: int
    items: list[tuple[Sort, int]]


@dataclass(slots=True)
class Alias:
    index: int
    alias: AliasDef


@dataclass(slots=True)
class TypeDef:
    index: int
    start: int
    end: int


@dataclass(slots=True)
class CanonFunc:
    index: int
    """In the component func space for a lift, else in the core func space."""
    canon: CanonDef


@dataclass(slots=True)
class Import:
    index: int
    name: str
    desc: ExternDesc


@dataclass(slots=True)
class Export:
    index: int
    name: str
    sort: Sort
    target: int


Item = (Unread | CoreModule | CoreInstance | ComponentInstance | Alias | TypeDef | CanonFunc | Import
        | Export)


class Walk:
    """A walk's index spaces: how many of each sort are defined so far (the next index)."""

    def __init__(self, data: bytes, sorts: frozenset[Sort] | None = None) -> None:
        self.data = data
        self.sorts = sorts
        """The sorts whose definitions are wanted (None: all); sections that cannot add to their
        index spaces are yielded Unread, and the other spaces then count short."""
        self.sections = read_sections(data)
        self.spaces: Counter[Sort] = Counter()
        self.entries: list[tuple[SectionSpan, list[tuple[int, int]]]] = []
        """Each section read so far with the byte range of each of its entries (empty if unread)."""

    def take(self, sort: Sort) -> int:
        self.spaces[sort] += 1
        return self.spaces[sort] - 1

    def items(self) -> Iterator[Item]:
        for span in self.sections:
            r = Reader(self.data, span.start, span.end)
            ranges: list[tuple[int, int]] = []
            self.entries.append((span, ranges))
            if span.id == Section.CORE_MODULE:
                yield CoreModule(self.take(Sort.CORE_MODULE), span.start, span.end)
            elif span.id == Section.COMPONENT:
                self.take(Sort.COMPONENT)
                yield Unread(span)
            elif span.id in (Section.CUSTOM, Section.CORE_TYPE, Section.START) or not self._wanted(span):
                yield Unread(span)
            elif span.id in _ENTRY_READERS:
                read_entry = _ENTRY_READERS[Section(span.id)]
                for _ in range(r.u32()):
                    start = r.pos
                    item = read_entry(self, r)
                    ranges.append((start, r.pos))
                    yield item
            else:
                raise Unsupported(f"section {span.id}")

    def _wanted(self, span: SectionSpan) -> bool:
        adds = _SECTION_SORTS.get(span.id)
        return self.sorts is None or adds is None or not adds.isdisjoint(self.sorts)


_SECTION_SORTS: dict[int, frozenset[Sort]] = {
    Section.CORE_INSTANCE: frozenset({Sort.CORE_INSTANCE}),
    Section.INSTANCE: frozenset({Sort.INSTANCE}),
    Section.TYPE: frozenset({Sort.TYPE}),
    Section.CANON: frozenset({Sort.FUNC, Sort.CORE_FUNC}),
}
"""The sorts a section's entries can define, where that is not any sort (aliases, imports, exports)."""


def walk(data: bytes, sorts: frozenset[Sort] | None = None) -> Walk:
    """A walk over `data` (iterate `.items()`; `.spaces` then holds the counts), reading only the
    sections that can define `sorts` when given (what a rewriter does not look at is not parsed)."""
    return Walk(data, sorts)


def _core_instance(w: Walk, r: Reader) -> CoreInstance:
    kind = r.byte()
    args: dict[str, int] = {}
    exports: dict[str, tuple[Sort | None, int]] = {}
    module = None
    if kind == InstanceKind.INSTANTIATE:
        module = r.u32()
        for _ in range(r.u32()):
            arg = r.name()
            if r.byte() != Sort.CORE_INSTANCE.core_byte:
                raise Unsupported("core instantiate argument")
            args[arg] = r.u32()
    elif kind == InstanceKind.FROM_EXPORTS:
        for _ in range(r.u32()):
            export = r.name()
            sort = CORE_SORT_BY_BYTE.get(r.byte())
            exports[export] = (sort, r.u32())
    else:
        raise Unsupported("core instance")
    return CoreInstance(w.take(Sort.CORE_INSTANCE), module, args, exports)


def _instance(w: Walk, r: Reader) -> ComponentInstance:
    items = read_instance(r)
    return ComponentInstance(w.take(Sort.INSTANCE), items)


def _alias(w: Walk, r: Reader) -> Alias:
    alias = read_alias(r)
    return Alias(w.take(alias.sort), alias)


def _type(w: Walk, r: Reader) -> TypeDef:
    start = r.pos
    read_deftype(r)
    return TypeDef(w.take(Sort.TYPE), start, r.pos)


def _canon(w: Walk, r: Reader) -> CanonFunc:
    canon = read_canon(r)
    return CanonFunc(w.take(Sort.FUNC if canon.lifts else Sort.CORE_FUNC), canon)


def _import(w: Walk, r: Reader) -> Import:
    name = extern_name(r)
    desc = externdesc(r)
    return Import(w.take(desc.sort), name, desc)


def _export(w: Walk, r: Reader) -> Export:
    name = extern_name(r)
    sort = read_sort(r)
    target = r.u32()
    if r.byte() == EXPORT_TYPED:
        externdesc(r)
    return Export(w.take(sort), name, sort, target)  # an export is a new index of its sort


_ENTRY_READERS: dict[Section, Callable[[Walk, Reader], Item]] = {
    Section.CORE_INSTANCE: _core_instance,
    Section.INSTANCE: _instance,
    Section.ALIAS: _alias,
    Section.TYPE: _type,
    Section.CANON: _canon,
    Section.IMPORT: _import,
    Section.EXPORT: _export,
}


@dataclass(slots=True)
class TypeDecl:
    index: int
    definition: Def


@dataclass(slots=True)
class ExportDecl:
    name: str
    desc: ExternDesc


def instance_decls(data: bytes, start: int, end: int) -> Iterator[TypeDecl | ExportDecl]:
    """The type definitions (with their local type index) and exports of the instance type at
    data[start:end]; aliases only count. Raises Unsupported for anything else."""
    r = Reader(data, start, end)
    if r.byte() != Ty.INSTANCE:
        raise Unsupported("not an instance type")
    types = 0  # the instance type's own type index space
    for _ in range(r.u32()):
        tag = r.byte()
        if tag == Decl.TYPE:
            yield TypeDecl(types, read_deftype(r))
            types += 1
        elif tag == Decl.ALIAS:
            types += read_alias(r).sort == Sort.TYPE
        elif tag == Decl.EXPORT:
            name = extern_name(r)
            desc = externdesc(r)
            types += desc.sort == Sort.TYPE
            yield ExportDecl(name, desc)
        else:
            raise Unsupported("declaration in an interface")
    if r.pos != end:
        raise Unsupported("instance type length")
