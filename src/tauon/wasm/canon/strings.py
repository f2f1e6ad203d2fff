"""Strings in linear memory, in the three encodings canonical options may name (CanonicalABI.md,
"Loading" / "Storing" strings): `utf8`, `utf16` (little-endian code units), and `latin1+utf16` (latin-1
bytes, or UTF-16 code units when bit 31 of the length is set).

Loading checks the length limit, the alignment (2 for the UTF-16 forms) and the bounds, then decodes,
trapping on invalid code units (including lone surrogates). Storing follows the specification's realloc
calls for a host string, which is UTF-8 (as wasmtime's is): one allocation sized for the source's UTF-8
length, then a shrink (or a grow to the worst case, for latin1+utf16 holding a character above U+00FF).
"""

from __future__ import annotations

from collections.abc import Callable

from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.layout import MAX_STRING_BYTE_LENGTH, UTF16_TAG
from tauon.wasm.canon.types import StringEncoding

LoadString = Callable[[CallContext, int, int], str]
"""(context, pointer, tagged code units) -> the string."""
StoreString = Callable[[CallContext, object], tuple[int, int]]
"""(context, string) -> (pointer, tagged code units), allocated with the component's realloc."""


def _range(cx: CallContext, ptr: int, byte_length: int, align: int) -> bytes:
    if byte_length > MAX_STRING_BYTE_LENGTH:
        raise CanonTrap(f"string of {byte_length} bytes at 0x{ptr:x} is longer than the canonical ABI "
                        f"allows ({MAX_STRING_BYTE_LENGTH})")
    if ptr % align:
        raise CanonTrap(f"string pointer 0x{ptr:x} is not aligned to {align}")
    memory = cx.mem()
    memory.check(ptr, byte_length, "string pointer")
    return memory.read(ptr, byte_length)


def _decode(data: bytes, codec: str, ptr: int) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise CanonTrap(f"invalid {codec} in the string at 0x{ptr:x} ({len(data)} bytes): {exc.reason} "
                        f"at byte {exc.start}") from None


def _load_utf8(cx: CallContext, ptr: int, units: int) -> str:
    return _decode(_range(cx, ptr, units, 1), "utf-8", ptr)


def _load_utf16(cx: CallContext, ptr: int, units: int) -> str:
    return _decode(_range(cx, ptr, 2 * units, 2), "utf-16-le", ptr)


def _load_latin1_utf16(cx: CallContext, ptr: int, tagged: int) -> str:
    if tagged & UTF16_TAG:
        return _decode(_range(cx, ptr, 2 * (tagged ^ UTF16_TAG), 2), "utf-16-le", ptr)
    return _range(cx, ptr, tagged, 2).decode("latin-1")


def string_loader(encoding: StringEncoding) -> LoadString:
    """The string loader for one canonical-options encoding."""
    return {"utf8": _load_utf8, "utf16": _load_utf16, "latin1+utf16": _load_latin1_utf16}[encoding]


def _utf8(value: object) -> bytes:
    if not isinstance(value, str):
        raise CanonTrap(f"expected a str for a string, got {type(value).__name__}")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CanonTrap(f"the string holds a lone surrogate (U+{ord(value[exc.start]):04X} at index "
                        f"{exc.start}), which a component string cannot carry") from None
    if len(data) > MAX_STRING_BYTE_LENGTH:
        raise CanonTrap(f"a string of {len(data)} bytes is longer than the canonical ABI allows")
    return data


def _store_utf8(cx: CallContext, value: object) -> tuple[int, int]:
    data = _utf8(value)
    ptr = cx.allocate(1, len(data), "a string")
    cx.mem().write(ptr, data)
    return ptr, len(data)


def _store_utf16(cx: CallContext, value: object) -> tuple[int, int]:
    source_units = len(_utf8(value))
    worst = 2 * source_units
    ptr = cx.allocate(2, worst, "a string")
    data = str(value).encode("utf-16-le")
    cx.mem().write(ptr, data)
    if len(data) < worst:
        ptr = cx.reallocate(ptr, worst, 2, len(data), "a string")
    return ptr, len(data) // 2


def _store_latin1_utf16(cx: CallContext, value: object) -> tuple[int, int]:
    source_units = len(_utf8(value))
    text = str(value)
    ptr = cx.allocate(2, source_units, "a string")
    try:
        data = text.encode("latin-1")
    except UnicodeEncodeError:
        worst = 2 * source_units
        ptr = cx.reallocate(ptr, source_units, 2, worst, "a string")
        wide = text.encode("utf-16-le")
        cx.mem().write(ptr, wide)
        if len(wide) < worst:
            ptr = cx.reallocate(ptr, worst, 2, len(wide), "a string")
        return ptr, (len(wide) // 2) | UTF16_TAG
    cx.mem().write(ptr, data)
    if len(data) < source_units:
        ptr = cx.reallocate(ptr, source_units, 2, len(data), "a string")
    return ptr, len(data)


def string_storer(encoding: StringEncoding) -> StoreString:
    """The string storer for one canonical-options encoding."""
    return {"utf8": _store_utf8, "utf16": _store_utf16, "latin1+utf16": _store_latin1_utf16}[encoding]


def load_string(cx: CallContext, ptr: int, tagged_units: int, encoding: StringEncoding) -> str:
    """Lift the string at [ptr, ...) of `tagged_units` code units in `encoding`."""
    return string_loader(encoding)(cx, ptr, tagged_units)


def store_string(cx: CallContext, value: str, encoding: StringEncoding) -> tuple[int, int]:
    """Lower `value` into memory freshly allocated by the component; (pointer, tagged code units)."""
    return string_storer(encoding)(cx, value)
