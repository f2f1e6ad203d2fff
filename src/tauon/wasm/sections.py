"""The top-level sections of a wasm binary, found by their headers alone (bodies are skipped with a
seek), for questions that a few sections answer without reading or parsing a whole component."""

from __future__ import annotations

import os
from typing import BinaryIO, NamedTuple

MAGIC = b"\x00asm"
COMPONENT_LAYER = b"\x01\x00"


class Section(NamedTuple):
    id: int
    offset: int
    """Of the body, from the start of the file."""
    size: int


def component_sections(f: BinaryIO) -> tuple[bytes, list[Section]] | None:
    """(the 8-byte preamble, every top-level section) of a component binary; None when `f` does not
    start with a component's preamble. Raises ValueError for a malformed or truncated section."""
    preamble = f.read(8)
    if len(preamble) != 8 or preamble[:4] != MAGIC or preamble[6:8] != COMPONENT_LAYER:
        return None
    end = f.seek(0, os.SEEK_END)
    f.seek(len(preamble))
    sections: list[Section] = []
    while head := f.read(1):
        size = _leb_u32(f)
        offset = f.tell()
        if offset + size > end:
            raise ValueError("a section runs past the end of the file")
        sections.append(Section(head[0], offset, size))
        f.seek(offset + size)
    return preamble, sections


def read_body(f: BinaryIO, section: Section) -> bytes:
    f.seek(section.offset)
    body = f.read(section.size)
    if len(body) != section.size:
        raise ValueError("truncated section")
    return body


def _leb_u32(f: BinaryIO) -> int:
    result = shift = 0
    while shift < 35:
        byte = f.read(1)
        if not byte:
            raise ValueError("truncated section header")
        result |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return result
        shift += 7
    raise ValueError("section size is not a u32")
