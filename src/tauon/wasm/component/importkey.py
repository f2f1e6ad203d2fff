"""A digest of what a component's imports are, read from its binary without compiling it.

Components are validated section by section, in order: an import's name and type are fixed by the
sections before it (types, aliases, earlier imports, ...), never by what follows. So the top-level
sections up to and including the last import section, custom sections left out (they define
nothing), determine every import name and type. Two components with the same digest import exactly
the same things, and a linker built for one (hostif/linker.py) serves the other: apps built by one
toolchain from one SDK share their import sections byte for byte, whatever their code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tauon.wasm.sections import component_sections

_CUSTOM = 0
_IMPORT = 10


def import_key(path: Path) -> bytes | None:
    """The digest (32 bytes) of the sections that define `path`'s imports; None for a file that is not
    a well-formed component binary or that imports nothing."""
    try:
        with component_sections(path) as found:
            if found is None:
                return None
            data, sections = found
            imports = [i for i, section in enumerate(sections) if section.id == _IMPORT]
            if not imports:
                return None
            digest = hashlib.sha256(data[:8])
            for section in sections[:imports[-1] + 1]:
                if section.id != _CUSTOM:
                    digest.update(bytes((section.id,)) + (section.end - section.start).to_bytes(4, "little"))
                    digest.update(data[section.start:section.end])
            return digest.digest()
    except (OSError, ValueError):
        return None
