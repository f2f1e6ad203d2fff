"""Strings in all three encodings: loading (alignment, bounds, the UTF-16 tag, invalid code units) and
storing (the bytes written and the realloc calls the specification makes for a UTF-8 host string)."""

from __future__ import annotations

import pytest

from support.canon import Heap, memory_context
from tauon.wasm.canon.context import CallContext
from tauon.wasm.canon.errors import CanonTrap
from tauon.wasm.canon.layout import UTF16_TAG
from tauon.wasm.canon.strings import load_string, store_string
from tauon.wasm.canon.types import StringEncoding

TEXTS = ["", "a", "hi", "\x80", "\u00ff", "caf\u00e9", "\u0100", "\u6c34", "\U0001f600",
         "Ab\u00ffc\U0001f600d", "x" * 300]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("encoding", ["utf8", "utf16", "latin1+utf16"])
def test_store_then_load_round_trips(text: str, encoding: StringEncoding) -> None:
    heap = Heap()
    ptr, tagged = store_string(heap.context(), text, encoding)
    assert load_string(heap.context(), ptr, tagged, encoding) == text


@pytest.mark.parametrize(("text", "expect"), [
    ("hi", (b"hi", 2)), ("caf\u00e9", ("caf\u00e9".encode(), 5)), ("\U0001f600", ("\U0001f600".encode(), 4)),
])
def test_utf8_store_is_one_exact_allocation(text: str, expect: tuple[bytes, int]) -> None:
    heap = Heap()
    ptr, units = store_string(heap.context(), text, "utf8")
    assert (bytes(heap.memory.data[ptr:ptr + units]), units) == expect
    assert heap.calls == [(0, 0, 1, len(expect[0]))]


def test_utf16_store_allocates_the_worst_case_then_shrinks() -> None:
    heap = Heap()
    ptr, units = store_string(heap.context(), "caf\u00e9", "utf16")  # 5 UTF-8 bytes, 4 UTF-16 units
    assert units == 4
    assert bytes(heap.memory.data[ptr:ptr + 8]) == "caf\u00e9".encode("utf-16-le")
    first = heap.calls[0]
    assert first == (0, 0, 2, 10)
    assert heap.calls[1][1:] == (10, 2, 8)


def test_latin1_utf16_store_picks_latin1_when_it_fits() -> None:
    heap = Heap()
    ptr, tagged = store_string(heap.context(), "caf\u00e9", "latin1+utf16")
    assert tagged == 4 and not tagged & UTF16_TAG
    assert bytes(heap.memory.data[ptr:ptr + 4]) == b"caf\xe9"
    assert heap.calls[0] == (0, 0, 2, 5) and heap.calls[1][1:] == (5, 2, 4)


def test_latin1_utf16_store_switches_to_tagged_utf16() -> None:
    heap = Heap()
    ptr, tagged = store_string(heap.context(), "a\u6c34", "latin1+utf16")  # 4 UTF-8 bytes
    assert tagged == 2 | UTF16_TAG
    assert bytes(heap.memory.data[ptr:ptr + 4]) == "a\u6c34".encode("utf-16-le")
    assert heap.calls[0] == (0, 0, 2, 4)
    assert heap.calls[1][1:] == (4, 2, 8)
    assert heap.calls[2][1:] == (8, 2, 4)


@pytest.mark.parametrize(("data", "ptr", "tagged", "encoding", "message"), [
    (b"\xff", 0, 1, "utf8", "invalid utf-8"),
    (b"\xed\xa0\x80", 0, 3, "utf8", "invalid utf-8"),  # an encoded surrogate
    (b"\xc3", 0, 1, "utf8", "invalid utf-8"),  # truncated sequence
    (b"\x00\xd8", 0, 1, "utf16", "invalid utf-16-le"),  # a lone high surrogate
    (b"\x00\xdc\x41\x00", 0, 2, "utf16", "invalid utf-16-le"),  # a lone low surrogate
    (b"\x00\xd8", 0, 1 | UTF16_TAG, "latin1+utf16", "invalid utf-16-le"),
    (b"xab", 1, 1, "utf16", "not aligned to 2"),
    (b"xab", 1, 1, "latin1+utf16", "not aligned to 2"),
    (b"ab", 0, 3, "utf8", "0x0 \\+ 3 is outside linear memory \\(2 bytes\\)"),
    (b"ab", 0, 2, "utf16", "outside linear memory"),
    (b"ab", 0, 1 << 28, "utf8", "longer than the canonical ABI allows"),
])
def test_invalid_strings_trap(data: bytes, ptr: int, tagged: int, encoding: StringEncoding,
                              message: str) -> None:
    with pytest.raises(CanonTrap, match=message):
        load_string(memory_context(data), ptr, tagged, encoding)


def test_latin1_loads_every_byte() -> None:
    data = bytes(range(256))
    assert load_string(memory_context(data), 0, 256, "latin1+utf16") == data.decode("latin-1")


def test_a_realloc_result_outside_memory_or_misaligned_traps() -> None:
    heap = Heap(size=64, grow=False)
    heap.top = 60
    with pytest.raises(CanonTrap, match="realloc result for a string 0x3c \\+ 10 is outside linear memory"):
        store_string(heap.context(), "0123456789", "utf8")
    misaligned = CallContext(heap.memory, lambda old, size, align, new: 1)
    with pytest.raises(CanonTrap, match="realloc returned 0x1 for a string, not aligned to 2"):
        store_string(misaligned, "ab", "utf16")
    with pytest.raises(CanonTrap, match="needs the component's realloc"):
        store_string(memory_context(b""), "ab", "utf8")
