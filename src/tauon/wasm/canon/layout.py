"""Memory layout and flattening of component value types (CanonicalABI.md, "Alignment", "Element
Size", "Flattening"), for 32-bit linear memories (memory64 components are not supported).

Pure functions of a type; the results are cached, so compiling converters may call them freely.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from tauon.wasm.canon.errors import CanonUnsupported
from tauon.wasm.canon.types import (
    BorrowType,
    EnumType,
    ErrorContextType,
    FlagsType,
    FuncType,
    FutureType,
    ListType,
    OptionType,
    OwnType,
    Prim,
    RecordType,
    ResultType,
    StreamType,
    TupleType,
    ValType,
    VariantType,
)

CoreType = Literal["i32", "i64", "f32", "f64"]
CallContextKind = Literal["lift", "lower"]

MAX_FLAT_PARAMS = 16
MAX_FLAT_RESULTS = 1
MAX_FLAT_ASYNC_PARAMS = 4
MAX_FLAGS = 32
"""The current specification allows at most 32 labels in a `flags` type (one i32)."""
MAX_STRING_BYTE_LENGTH = (1 << 28) - 1
MAX_LIST_BYTE_LENGTH = (1 << 28) - 1
UTF16_TAG = 1 << 31
"""Set in a latin1+utf16 string's length when the code units are UTF-16."""
PTR_SIZE = 4

_PRIM_SIZE = {"bool": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "s32": 4, "u32": 4, "s64": 8, "u64": 8,
              "f32": 4, "f64": 8, "char": 4}
_PRIM_FLAT: dict[str, CoreType] = {"s64": "i64", "u64": "i64", "f32": "f32", "f64": "f64"}


def despecialize(t: ValType) -> ValType:
    """The type's canonical-ABI equivalent: tuples are records with fields "0", "1", ...; enums,
    options and results are variants (cases none/some and ok/error). Other types are unchanged."""
    if isinstance(t, TupleType):
        return RecordType(tuple((str(i), e) for i, e in enumerate(t.elements)))
    if isinstance(t, EnumType):
        return VariantType(tuple((label, None) for label in t.labels))
    if isinstance(t, OptionType):
        return VariantType((("none", None), ("some", t.element)))
    if isinstance(t, ResultType):
        return VariantType((("ok", t.ok), ("error", t.err)))
    return t


def align_to(ptr: int, alignment: int) -> int:
    return -(-ptr // alignment) * alignment


def discriminant_size(case_count: int) -> int:
    """Bytes of a variant's case index: 1 up to 256 cases, 2 up to 65536, else 4."""
    if case_count <= 0:
        raise CanonUnsupported("a variant needs at least one case")
    if case_count <= 1 << 8:
        return 1
    if case_count <= 1 << 16:
        return 2
    return 4


def flags_size(label_count: int) -> int:
    """Bytes of a `flags` value: 1 up to 8 labels, 2 up to 16, 4 up to 32."""
    if not 0 < label_count <= MAX_FLAGS:
        raise CanonUnsupported(f"flags with {label_count} labels (the canonical ABI allows 1 to "
                               f"{MAX_FLAGS})")
    if label_count <= 8:
        return 1
    if label_count <= 16:
        return 2
    return 4


@lru_cache(maxsize=4096)
def alignment(t: ValType) -> int:
    """The alignment of `t` in linear memory, in bytes."""
    t = despecialize(t)
    if isinstance(t, Prim):
        return PTR_SIZE if t.name == "string" else _PRIM_SIZE[t.name]
    if isinstance(t, ListType):
        return alignment(t.element) if t.fixed_length is not None else PTR_SIZE
    if isinstance(t, RecordType):
        return max((alignment(ft) for _, ft in t.fields), default=1)
    if isinstance(t, VariantType):
        return max(discriminant_size(len(t.cases)), max_case_alignment(t))
    if isinstance(t, FlagsType):
        return flags_size(len(t.labels))
    return 4  # own, borrow, stream, future, error-context: an i32 handle index


def max_case_alignment(t: VariantType) -> int:
    return max((alignment(ct) for _, ct in t.cases if ct is not None), default=1)


@lru_cache(maxsize=4096)
def elem_size(t: ValType) -> int:
    """The size of `t` in linear memory (a multiple of its alignment), in bytes."""
    t = despecialize(t)
    if isinstance(t, Prim):
        return 2 * PTR_SIZE if t.name == "string" else _PRIM_SIZE[t.name]
    if isinstance(t, ListType):
        if t.fixed_length is not None:
            return t.fixed_length * elem_size(t.element)
        return 2 * PTR_SIZE
    if isinstance(t, RecordType):
        offsets = field_offsets(tuple(ft for _, ft in t.fields))
        end = offsets[-1] + elem_size(t.fields[-1][1]) if t.fields else 0
        return align_to(end, alignment(t))
    if isinstance(t, VariantType):
        size = variant_payload_offset(t)
        size += max((elem_size(ct) for _, ct in t.cases if ct is not None), default=0)
        return align_to(size, alignment(t))
    if isinstance(t, FlagsType):
        return flags_size(len(t.labels))
    return 4


@lru_cache(maxsize=4096)
def field_offsets(types: tuple[ValType, ...]) -> tuple[int, ...]:
    """Byte offsets of consecutive fields of these types in a record (or tuple, or spilled params)."""
    offsets = []
    at = 0
    for ft in types:
        at = align_to(at, alignment(ft))
        offsets.append(at)
        at += elem_size(ft)
    return tuple(offsets)


def variant_payload_offset(t: VariantType) -> int:
    """Where a variant's payload starts, after its discriminant."""
    return align_to(discriminant_size(len(t.cases)), max_case_alignment(t))


def join(a: CoreType, b: CoreType) -> CoreType:
    """The core type one flat slot of a variant takes when two cases put `a` and `b` there."""
    if a == b:
        return a
    if {a, b} == {"i32", "f32"}:
        return "i32"
    return "i64"


@lru_cache(maxsize=4096)
def flatten_type(t: ValType) -> tuple[CoreType, ...]:
    """The core value types `t` takes as flat values (parameters or results of a core function)."""
    t = despecialize(t)
    if isinstance(t, Prim):
        if t.name == "string":
            return ("i32", "i32")
        return (_PRIM_FLAT.get(t.name, "i32"),)
    if isinstance(t, ListType):
        if t.fixed_length is not None:
            return flatten_type(t.element) * t.fixed_length
        return ("i32", "i32")
    if isinstance(t, RecordType):
        return tuple(ct for _, ft in t.fields for ct in flatten_type(ft))
    if isinstance(t, VariantType):
        return ("i32", *variant_payload_flat(t))
    if isinstance(t, (FlagsType, OwnType, BorrowType, StreamType, FutureType, ErrorContextType)):
        return ("i32",)
    raise CanonUnsupported(f"cannot flatten {t!r}")


def variant_payload_flat(t: VariantType) -> tuple[CoreType, ...]:
    """The joined flat slots of a variant's payloads (after the discriminant)."""
    flat: list[CoreType] = []
    for _, ct in t.cases:
        if ct is None:
            continue
        for i, core in enumerate(flatten_type(ct)):
            if i < len(flat):
                flat[i] = join(flat[i], core)
            else:
                flat.append(core)
    return tuple(flat)


def flatten_types(types: tuple[ValType, ...]) -> tuple[CoreType, ...]:
    return tuple(ct for t in types for ct in flatten_type(t))


@dataclass(frozen=True, slots=True)
class CoreSignature:
    """The core function type of a lifted or lowered component function, and how it was bent to fit:
    `params_spilled`: the parameters travel in memory, behind one i32 pointer; `results_spilled`: the
    result travels in memory (for "lift", the core function returns a pointer to it; for "lower", the
    caller passes a return pointer as the last parameter and the function returns nothing)."""

    params: tuple[CoreType, ...]
    results: tuple[CoreType, ...]
    params_spilled: bool
    results_spilled: bool


@lru_cache(maxsize=1024)
def flatten_functype(ft: FuncType, context: CallContextKind) -> CoreSignature:
    """The core signature of a synchronous `canon lift` ("lift") or `canon lower` ("lower") of `ft`:
    more than MAX_FLAT_PARAMS flat parameters spill to memory, as does more than MAX_FLAT_RESULTS
    flat results."""
    if ft.is_async:
        raise CanonUnsupported("async functions (component-model async) are not supported yet")
    params = flatten_types(tuple(t for _, t in ft.params))
    results = flatten_type(ft.result) if ft.result is not None else ()
    params_spilled = len(params) > MAX_FLAT_PARAMS
    if params_spilled:
        params = ("i32",)
    results_spilled = len(results) > MAX_FLAT_RESULTS
    if results_spilled:
        if context == "lift":
            results = ("i32",)
        else:
            params = (*params, "i32")
            results = ()
    return CoreSignature(params, results, params_spilled, results_spilled)
