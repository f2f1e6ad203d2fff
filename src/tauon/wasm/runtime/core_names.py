"""A core module's import and export names: read the imports, and rewrite both sections' names.

tauon renames every import of a component's core module to where the wiring traced it (an export of an
earlier core instance, a `canon lower` trampoline or a resource builtin), so that a wasmtime linker
resolves the whole import list in one C call per core instance instead of one call per import, and
keeps only the exports something uses, under short names, so that adding an instance to a linker
costs little (see `wiring.py`, `linking.py`). Only names change: descriptors and indices are copied
byte for byte, and every other section is untouched, so the module's code, types and validity are as
before.

The modules come from components wasmtime has already validated; anything this reader does not follow
raises UnsupportedComponent (the component then runs on the wasmtime path).
"""

from __future__ import annotations

from tauon.wasm.runtime.model import UnsupportedComponent

_IMPORT_SECTION = 2
_EXPORT_SECTION = 7
_START_SECTION = 8
_HEADER = b"\0asm\x01\0\0\0"


class _Cursor:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise UnsupportedComponent("a core module is truncated")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def leb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise UnsupportedComponent("a core module has a bad LEB128 number")

    def name(self) -> str:
        size = self.leb()
        start, self.pos = self.pos, self.pos + size
        if self.pos > len(self.data):
            raise UnsupportedComponent("a core module is truncated in a name")
        try:
            return self.data[start:self.pos].decode("utf-8")
        except UnicodeDecodeError:
            raise UnsupportedComponent("a core module has an import name that is not UTF-8") from None


def _skip_reftype(c: _Cursor) -> None:
    if c.byte() in (0x63, 0x64):  # (ref null? heaptype): an abstract type byte or a type index (s33)
        c.leb()


def _skip_limits(c: _Cursor) -> None:
    flags = c.byte()
    if flags & ~0x0F:
        raise UnsupportedComponent(f"core limits flags 0x{flags:02x}")
    c.leb()
    if flags & 0x01:  # a maximum
        c.leb()
    if flags & 0x08:  # a custom page size (log2)
        c.leb()


def _skip_desc(c: _Cursor) -> None:
    kind = c.byte()
    if kind == 0x00:  # func: type index
        c.leb()
    elif kind == 0x01:  # table: reftype, limits
        _skip_reftype(c)
        _skip_limits(c)
    elif kind == 0x02:  # memory
        _skip_limits(c)
    elif kind == 0x03:  # global: valtype, mutability
        _skip_reftype(c)
        c.byte()
    elif kind == 0x04:  # tag: attribute, type index
        c.byte()
        c.leb()
    else:
        raise UnsupportedComponent(f"core import kind 0x{kind:02x}")


def _section(data: bytes, wanted: int) -> tuple[int, int, int] | None:
    """(section start, contents start, end) of a section, or None when the module has none."""
    if not data.startswith(_HEADER):
        raise UnsupportedComponent("a core module does not start with the wasm header")
    c = _Cursor(data, len(_HEADER))
    while c.pos < len(data):
        section = c.pos
        sid = c.byte()
        size = c.leb()
        start = c.pos
        if start + size > len(data):
            raise UnsupportedComponent("a core module section runs past its end")
        if sid == wanted:
            return section, start, start + size
        c.pos = start + size
    return None


def _entries(data: bytes) -> tuple[tuple[int, int, int] | None, list[tuple[str, str, bytes]]]:
    span = _section(data, _IMPORT_SECTION)
    if span is None:
        return None, []
    c = _Cursor(data[:span[2]], span[1])
    entries = []
    for _ in range(c.leb()):
        module, name = c.name(), c.name()
        start = c.pos
        _skip_desc(c)
        entries.append((module, name, data[start:c.pos]))
    if c.pos != span[2]:
        raise UnsupportedComponent("a core module's import section has trailing bytes")
    return span, entries


def has_start(data: bytes) -> bool:
    """Whether the module has a start function (instantiating it runs guest code)."""
    return _section(data, _START_SECTION) is not None


def read_imports(data: bytes) -> list[tuple[str, str]]:
    """The (module, name) of each import of a core module, in order."""
    return [(module, name) for module, name, _ in _entries(data)[1]]


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


def _name(text: str) -> bytes:
    raw = text.encode("utf-8")
    return _leb(len(raw)) + raw


def _replace(data: bytes, span: tuple[int, int, int], sid: int, body: bytes) -> bytes:
    section, _, end = span
    return data[:section] + bytes([sid]) + _leb(len(body)) + body + data[end:]


def rename_imports(data: bytes, names: list[tuple[str, str]]) -> bytes:
    """The module with its imports renamed to `names` (one (module, name) per import, in order)."""
    span, entries = _entries(data)
    if len(names) != len(entries):
        raise ValueError(f"{len(names)} names for {len(entries)} imports")
    if span is None:
        return data
    body = bytearray(_leb(len(entries)))
    for (module, name), (_, _, desc) in zip(names, entries, strict=True):
        body += _name(module) + _name(name) + desc
    return _replace(data, span, _IMPORT_SECTION, bytes(body))


def rename_exports(data: bytes, names: dict[str, str]) -> bytes:
    """The module exporting only the exports named in `names`, each renamed to its value."""
    span = _section(data, _EXPORT_SECTION)
    if span is None:
        if names:
            raise UnsupportedComponent(f"a core module has no export {next(iter(names))!r}")
        return data
    c = _Cursor(data[:span[2]], span[1])
    kept = []
    for _ in range(c.leb()):
        name = c.name()
        start = c.pos
        c.byte()  # kind
        c.leb()  # index
        if name in names:
            kept.append(_name(names[name]) + data[start:c.pos])
    if c.pos != span[2]:
        raise UnsupportedComponent("a core module's export section has trailing bytes")
    if len(kept) != len(names):
        raise UnsupportedComponent("a core module lacks an export its component uses")
    return _replace(data, span, _EXPORT_SECTION, _leb(len(kept)) + b"".join(kept))
