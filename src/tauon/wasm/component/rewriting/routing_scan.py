"""What routing.py needs to know of a component before appending to it: the lowerings of the stream
functions it routes, wit-component's shim table and fix-up, and the index spaces' sizes (one walk)."""

from __future__ import annotations

from dataclasses import dataclass, field

import wasmtime

from tauon.wasm.component.rewriting.binfmt import ELEM_ACTIVE_TABLE0, END, I32_CONST, Canon, Section, Sort
from tauon.wasm.component.rewriting.contract import (
    BYTES_IMPORT,
    READ_FUNCS,
    STREAMS_PREFIX,
    WRITE_FUNCS,
    ascii_read,
)
from tauon.wasm.component.rewriting.encode import leb
from tauon.wasm.component.rewriting.reader import Unsupported
from tauon.wasm.component.rewriting.walker import (
    Alias,
    CanonFunc,
    CoreInstance,
    CoreModule,
    Import,
    Item,
    Unread,
    walk,
)

GROWING_REALLOC = "cabi_realloc"
"""The allocator export whose reads lower latin1 (wit-component lowers a module's imports with it, and
the language runtimes behind it are malloc's kind); any other, such as the preview1 adapter's
`cabi_import_realloc`, which only hands out the caller's buffer, gets the ASCII read."""


@dataclass(frozen=True)
class Lowered:
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
        return ascii_read(self.name) if self.ascii else self.name


@dataclass
class Scan:
    spaces: dict[Sort, int] = field(default_factory=dict)
    """How many of each sort the component defines: the indices of what is appended start there."""
    streams: list[int] = field(default_factory=list)
    byte_funcs: dict[int, str] = field(default_factory=dict)  # component func -> name
    lowered: list[Lowered] = field(default_factory=list)
    inline: dict[int, dict[str, tuple[Sort | None, int]]] = field(default_factory=dict)
    """Core instances made of exports: their exports."""
    instantiated: list[tuple[int, dict[str, int]]] = field(default_factory=list)  # (module, args)
    modules: dict[int, tuple[int, int]] = field(default_factory=dict)  # core module -> byte range
    core_func_names: dict[int, str] = field(default_factory=dict)  # core func -> export it aliases
    routed: tuple[str, ...] = WRITE_FUNCS + READ_FUNCS  # the streams functions looked for


def scan(data: bytes, reads: bool) -> Scan:
    found = Scan(routed=WRITE_FUNCS + READ_FUNCS if reads else WRITE_FUNCS)
    w = walk(data)
    for item in w.items():
        _note(found, item)
    found.spaces = dict(w.spaces)
    return found


def _note(found: Scan, item: Item) -> None:
    if isinstance(item, CoreModule):
        found.modules[item.index] = (item.start, item.end)
    elif isinstance(item, CoreInstance):
        if item.module is not None:
            found.instantiated.append((item.module, item.args))
        else:
            found.inline[item.index] = item.exports
    elif isinstance(item, Alias):
        alias = item.alias
        if alias.sort == Sort.CORE_FUNC and alias.name is not None:
            found.core_func_names[item.index] = alias.name
        elif alias.sort == Sort.FUNC and alias.instance in found.streams and alias.name in found.routed:
            found.byte_funcs[item.index] = alias.name
    elif isinstance(item, CanonFunc):
        _note_canon(found, item)
    elif isinstance(item, Import):
        if item.desc.sort == Sort.INSTANCE and item.name.startswith(STREAMS_PREFIX):
            found.streams.append(item.index)
        if item.name == BYTES_IMPORT:
            raise Unsupported("already routed")
    elif isinstance(item, Unread) and item.section.id in (Section.CORE_TYPE, Section.START):
        raise Unsupported(f"section {item.section.id}")


def _note_canon(found: Scan, item: CanonFunc) -> None:
    canon = item.canon
    name = found.byte_funcs.get(canon.func) if canon.op == Canon.LOWER and canon.func is not None else None
    if name is None:
        return
    if name in READ_FUNCS:
        if canon.encoded:
            return  # retyped to a string already (reads.py): not routed
        if canon.memory is None or canon.realloc is None:
            raise Unsupported("a read lowered without its memory and allocator")
        ascii = found.core_func_names.get(canon.realloc) != GROWING_REALLOC
        found.lowered.append(Lowered(name, item.index, canon.memory, canon.realloc, ascii=ascii))
        return
    if canon.memory is None or canon.encoded:
        raise Unsupported("a write lowered without its memory, or as a string")
    found.lowered.append(Lowered(name, item.index, canon.memory, canon.realloc))


@dataclass(frozen=True)
class ShimTable:
    """Where the shim table is: a core table index already, or the export of the shim instance
    (older wit-component passes the shim instance itself to the fix-up)."""

    index: int | None = None
    shim_instance: int | None = None


def fixup_slots(data: bytes, found: Scan) -> tuple[ShimTable, list[int]]:
    """(the shim table, the table slot of each lowering), from wit-component's fix-up: either
    `(with "actual" funcs) (with "shim" instance)` or, in newer releases, one `(with "" args)` holding
    the numbered funcs and the `$imports` table."""
    wanted = {lowered.core for lowered in found.lowered}
    for module, args in found.instantiated:
        if set(args) == {"actual", "shim"}:
            funcs, func_module, table = args["actual"], "actual", ShimTable(shim_instance=args["shim"])
        elif set(args) == {""}:
            funcs, func_module = args[""], ""
            sort, index = found.inline.get(funcs, {}).get("$imports", (None, -1))
            if sort != Sort.CORE_TABLE:
                continue
            table = ShimTable(index=index)
        else:
            continue
        exports = found.inline.get(funcs, {})
        slot_of = {idx: int(name) for name, (sort, idx) in exports.items()
                   if sort == Sort.CORE_FUNC and idx in wanted and name.isdigit()}
        if set(slot_of) != wanted:
            continue
        if module not in found.modules or not _identity_fixup(data, *found.modules[module], func_module):
            raise Unsupported("fix-up module")
        return table, [slot_of[lowered.core] for lowered in found.lowered]
    raise Unsupported("no fix-up instance")


def _identity_fixup(data: bytes, start: int, end: int, func_module: str) -> bool:
    """True if the fix-up module's function imports are `func_module` "0".."n-1" and its one element
    segment puts import k in table slot k."""
    module = wasmtime.Module(wasmtime.Engine(), data[start:end])
    funcs = [(i.module, i.name) for i in module.imports if isinstance(i.type, wasmtime.FuncType)]
    if funcs != [(func_module, str(k)) for k in range(len(funcs))]:
        return False
    expected = (bytes([ELEM_ACTIVE_TABLE0, I32_CONST, 0, END]) + leb(len(funcs))
                + b"".join(leb(k) for k in range(len(funcs))))
    return expected in data[start:end]  # an active segment at offset 0: func 0, 1, ... n-1
