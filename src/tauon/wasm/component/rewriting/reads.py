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
address, and a guest writes from wherever its buffer is (routing.py routes the even ones instead).

Only a shape seen in full is rewritten: every use of the retyped result and of those functions must
be one this module accounts for, else the component is left as it is (and still works, slower).
wasmtime validates the result when compiling it; a rejection falls back to the original (cache.py).
One more condition is checked by running the guest's allocator (probe.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tauon.wasm.component.rewriting.binfmt import STRING_ENCODINGS, Canon, Opt, Section, Sort, Ty
from tauon.wasm.component.rewriting.contract import RETYPED_READS, STREAMS_PREFIX
from tauon.wasm.component.rewriting.encode import apply_edits, canon_options
from tauon.wasm.component.rewriting.reader import CanonDef, Def, Unsupported
from tauon.wasm.component.rewriting.walker import (
    Alias,
    CanonFunc,
    ComponentInstance,
    Export,
    Import,
    Item,
    TypeDecl,
    TypeDef,
    Unread,
    instance_decls,
    walk,
)

VERSION = 3
"""Part of the compiled-component cache key: a change here must not reuse old artifacts."""


def rewrite(data: bytes) -> bytes | None:
    """The component with its byte-stream reads retyped, or None when there is nothing to do or
    the component has a shape this module does not follow."""
    try:
        return _rewrite(data)
    except (Unsupported, IndexError, KeyError):
        return None


@dataclass
class _Found:
    types: dict[int, tuple[int, int]] = field(default_factory=dict)  # type -> byte range of its definition
    streams: dict[int, int] = field(default_factory=dict)  # instance -> its instance type
    targets: set[int] = field(default_factory=set)  # component funcs of the read functions
    lowers: list[CanonDef] = field(default_factory=list)  # their lowerings
    handed_on: bool = False
    """A read function is handed to an inner component or exported: its type must stay."""


def _rewrite(data: bytes) -> bytes | None:
    w = walk(data, frozenset({Sort.TYPE, Sort.FUNC, Sort.INSTANCE}))  # core instances unread
    found = _Found()
    for item in w.items():
        _note(found, item)
    if found.handed_on or not found.targets or not found.lowers:
        return None
    edits: dict[int, bytes] = {}  # offset -> replacement for the byte run at that offset
    removed: dict[int, int] = {}  # offset -> bytes replaced there
    for type_index in set(found.streams.values()):
        if type_index not in found.types:
            return None
        span = _streams_edit(data, *found.types[type_index])
        if span is None:
            return None
        edits[span[0]] = bytes([Ty.STRING])  # result<list<u8>, E> -> result<string, E>
        removed[span[0]] = span[1] - span[0]
    for canon in found.lowers:
        kept = [(opt, arg) for opt, arg in canon.options if opt not in STRING_ENCODINGS]
        edits[canon.opts[0]] = canon_options([*kept, (Opt.LATIN1_UTF16, None)])
        removed[canon.opts[0]] = canon.opts[1] - canon.opts[0]
    return apply_edits(data, w.sections, edits, removed)


def _note(found: _Found, item: Item) -> None:
    if isinstance(item, TypeDef):
        found.types[item.index] = (item.start, item.end)
    elif isinstance(item, Import):
        if (item.desc.sort == Sort.INSTANCE and item.name.startswith(STREAMS_PREFIX)
                and item.desc.index is not None):
            found.streams[item.index] = item.desc.index
    elif isinstance(item, Alias):
        alias = item.alias
        if alias.sort == Sort.FUNC and alias.instance in found.streams and alias.name in RETYPED_READS:
            found.targets.add(item.index)
    elif isinstance(item, CanonFunc):
        if item.canon.op == Canon.LOWER and item.canon.func in found.targets:
            found.lowers.append(item.canon)
    elif isinstance(item, ComponentInstance):
        found.handed_on |= any(s == Sort.FUNC and i in found.targets for s, i in item.items)
    elif isinstance(item, Export):
        found.handed_on |= item.sort == Sort.FUNC and item.target in found.targets
    elif isinstance(item, Unread) and item.section.id == Section.START:
        raise Unsupported("a start function")


def _streams_edit(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """The byte range, in the instance type at data[start:end], of the `list<u8>` ok type of the
    result the read functions return, if only they use that result; else None."""
    defs: dict[int, Def] = {}
    exports: dict[str, int] = {}
    for decl in instance_decls(data, start, end):
        if isinstance(decl, TypeDecl):
            defs[decl.index] = decl.definition
        elif decl.desc.sort == Sort.FUNC and decl.desc.index is not None:
            exports[decl.name] = decl.desc.index
    readers = {exports[name] for name in RETYPED_READS if name in exports}
    if not readers or any(i in readers for n, i in exports.items() if n not in RETYPED_READS):
        return None  # no read function, or its function type is shared with another function
    results = {r for i in readers for r in defs[i].results}
    if len(results) != 1:
        return None
    (result,) = results
    returned = defs.get(result)
    if returned is None or returned.kind != Ty.RESULT or returned.ok is None:
        return None
    listed = defs.get(returned.refs[0])
    if listed is None or listed.kind != Ty.LIST or data[listed.start + 1] != Ty.U8:
        return None
    if any(result in other.refs for i, other in defs.items() if i not in readers):
        return None  # the result type is used elsewhere too
    return returned.ok
