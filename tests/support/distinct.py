"""Wasm made distinct: the same module or component with its own custom section appended, so its blob
digest (and every cache entry keyed by it) is its own. Custom sections may end either."""

from __future__ import annotations


def leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def distinct(wasm: bytes, marker: str) -> bytes:
    """`wasm` with a custom section named `marker` appended."""
    name = marker.encode()
    body = leb128(len(name)) + name
    return wasm + b"\x00" + leb128(len(body)) + body
