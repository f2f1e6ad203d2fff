"""Facts about the primitive types that lifting and lowering share: struct formats, value ranges,
`array` type codes for bulk list copies, float bit casts and NaN canonicalization."""

from __future__ import annotations

import math
import struct
import sys
from array import array
from dataclasses import dataclass

from tauon.wasm.canon.errors import CanonTrap

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF
LITTLE_ENDIAN = sys.byteorder == "little"

CANONICAL_NAN32 = struct.unpack("<f", struct.pack("<I", 0x7FC00000))[0]
CANONICAL_NAN64 = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000000))[0]

_F32 = struct.Struct("<f")
_I32 = struct.Struct("<I")
_F64 = struct.Struct("<d")
_I64 = struct.Struct("<Q")


@dataclass(frozen=True, slots=True)
class IntInfo:
    fmt: str  # struct format character
    bits: int
    signed: bool
    array_code: str  # an `array` type code of the same size and signedness
    low: int = 0  # the range, filled in by _int (kept as fields: checked on every lowered integer)
    high: int = 0


def _int(fmt: str, bits: int, signed: bool, array_code: str) -> IntInfo:
    low = -(1 << (bits - 1)) if signed else 0
    high = (1 << (bits - 1)) - 1 if signed else (1 << bits) - 1
    return IntInfo(fmt, bits, signed, array_code, low, high)


def _code(candidates: str, size: int) -> str:
    return next(c for c in candidates if array(c).itemsize == size)


INTS: dict[str, IntInfo] = {
    "u8": _int("B", 8, False, "B"), "s8": _int("b", 8, True, "b"),
    "u16": _int("H", 16, False, _code("HIL", 2)), "s16": _int("h", 16, True, _code("hil", 2)),
    "u32": _int("I", 32, False, _code("ILQ", 4)), "s32": _int("i", 32, True, _code("ilq", 4)),
    "u64": _int("Q", 64, False, _code("QL", 8)), "s64": _int("q", 64, True, _code("ql", 8)),
}
FLOATS: dict[str, tuple[str, str]] = {"f32": ("f", "f"), "f64": ("d", "d")}
"""float type -> (struct format character, array type code)."""


def canon_nan32(value: float) -> float:
    return CANONICAL_NAN32 if value != value else value


def canon_nan64(value: float) -> float:
    return CANONICAL_NAN64 if value != value else value


def f32_from_bits(bits: int) -> float:
    value: float = _F32.unpack(_I32.pack(bits & M32))[0]
    return canon_nan32(value)


def f64_from_bits(bits: int) -> float:
    value: float = _F64.unpack(_I64.pack(bits & M64))[0]
    return canon_nan64(value)


def f32_bits(value: float) -> int:
    bits: int = _I32.unpack(_F32.pack(value))[0]
    return bits


def f64_bits(value: float) -> int:
    bits: int = _I64.unpack(_F64.pack(value))[0]
    return bits


def to_float(value: object, kind: str) -> float:
    """A host value as a float of `kind`, trapping on anything but an int or float. f32 values are
    rounded to f32; beyond its range they become infinities, as a C conversion (and `array`) does."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CanonTrap(f"expected a number for {kind}, got {type(value).__name__}")
    if kind == "f64":
        return float(value)
    try:
        rounded: float = _F32.unpack(_F32.pack(value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)
    return rounded


def to_int(value: object, info: IntInfo, kind: str) -> int:
    """A host value as an integer of `kind`, trapping if it is not an int or out of range."""
    if not isinstance(value, int):
        raise CanonTrap(f"expected an int for {kind}, got {type(value).__name__}")
    if not info.low <= value <= info.high:
        raise CanonTrap(f"{value} is out of range for {kind}")
    return int(value)


def char_code(value: object) -> int:
    """A host value as a `char`'s code point (a 1-character str, not a surrogate)."""
    if not isinstance(value, str) or len(value) != 1:
        raise CanonTrap(f"expected a 1-character str for char, got {value!r:.40}")
    code = ord(value)
    if 0xD800 <= code <= 0xDFFF:
        raise CanonTrap(f"U+{code:04X} is a surrogate, not a valid char")
    return code


def char_from_code(code: int) -> str:
    if code >= 0x110000 or 0xD800 <= code <= 0xDFFF:
        raise CanonTrap(f"0x{code:x} is not a Unicode scalar value (char)")
    return chr(code)


def canonicalize_floats(values: list[float], kind: str) -> list[float]:
    """Bulk-lifted floats with every NaN made the canonical NaN (rarely any: one pass to find out)."""
    if any(map(math.isnan, values)):
        nan = CANONICAL_NAN32 if kind == "f32" else CANONICAL_NAN64
        return [nan if v != v else v for v in values]
    return values


def bulk_array(code: str, data: bytes) -> array:  # type: ignore[type-arg]
    """Little-endian memory bytes as an array of `code` items."""
    items = array(code)
    items.frombytes(data)
    if not LITTLE_ENDIAN:
        items.byteswap()
    return items
