"""The top-level sections of a component binary, found by their headers alone, for questions that a
few sections answer without parsing a whole component. The file is mapped, not read: only the pages
holding section headers and the bodies asked for are touched (a 37 MB component has a thousand
sections, its import sections in the first 24 KB)."""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from tauon.wasm.component.rewriting.reader import Reader, Unsupported

MAGIC = b"\x00asm"
COMPONENT_LAYER = b"\x01\x00"


class Section(NamedTuple):
    id: int
    start: int
    """Of the body, in the file."""
    end: int


@contextmanager
def component_sections(path: Path) -> Iterator[tuple[mmap.mmap, list[Section]] | None]:
    """(the file mapped, every top-level section) of the component binary at `path`, the mapping
    valid inside the block (slice it for a body); None when the file does not start with a
    component's preamble. Raises OSError, and ValueError for a malformed or truncated section."""
    with path.open("rb") as f:
        if os.fstat(f.fileno()).st_size < 8:
            yield None
            return
        mapped = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
    with mapped:
        yield (mapped, scan(mapped)) if is_component(mapped) else None


def is_component(data: mmap.mmap | bytes) -> bool:
    return data[:4] == MAGIC and data[6:8] == COMPONENT_LAYER


def scan(data: mmap.mmap | bytes) -> list[Section]:
    """The sections of a component binary (its preamble checked by the caller)."""
    sections: list[Section] = []
    r = Reader(data, 8)  # type: ignore[arg-type]  # it only indexes and slices
    try:
        while r.pos < r.end:
            section_id = r.byte()
            size = r.u32()
            if r.pos + size > r.end:
                raise ValueError("a section runs past the end of the file")
            sections.append(Section(section_id, r.pos, r.pos + size))
            r.pos += size
    except Unsupported as exc:  # a truncated or overlong size
        raise ValueError(str(exc)) from None
    return sections
