"""Tell a core module from a component by its first bytes. Pure except `classify_file`.

Binary wasm starts with `\\0asm` and a 4-byte little-endian field: core modules carry version 1 in
the low half and layer 0 in the high half; components carry layer 1 (and a draft version). Spin (and
wasmtime) also accept the WAT text format, whose first form is `(module` or `(component`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from tauon.errors import LoadError

WasmKind = Literal["module", "component"]

MAGIC = b"\0asm"
HEAD_BYTES = 4096
"""Enough of a WAT file to skip a licence comment before the first form."""

_WAT_NOISE = re.compile(rb"(?:\s+|;;[^\n]*\n?|\(;.*?;\))*", re.DOTALL)


def classify_bytes(head: bytes) -> WasmKind:
    """Classify from the start of the file; raise ValueError (with the reason) if it is not wasm."""
    if head.startswith(MAGIC):
        if len(head) < 8:
            raise ValueError("truncated WebAssembly header (fewer than 8 bytes)")
        layer = int.from_bytes(head[6:8], "little")
        if layer == 0:
            return "module"
        if layer == 1:
            return "component"
        raise ValueError(f"unknown WebAssembly layer {layer} in the header")
    noise = _WAT_NOISE.match(head)
    text = head[noise.end() :] if noise else head
    if text.startswith(b"(component"):
        return "component"
    if text.startswith(b"(module") or text.startswith(b"("):
        # WAT allows a module's fields without the enclosing `(module ...)`.
        return "module"
    raise ValueError("not WebAssembly: no \\0asm magic and no WAT text form")


def classify_file(path: Path) -> WasmKind:
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD_BYTES)
    except FileNotFoundError as exc:
        raise LoadError(f"{path}: wasm file is missing") from exc
    try:
        return classify_bytes(head)
    except ValueError as exc:
        raise LoadError(f"{path}: {exc}", hint="the component source must be a .wasm (or .wat) file") from exc
