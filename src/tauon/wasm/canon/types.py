"""Component value types, functions and canonical options: plain data, shared by the component parser
(which decodes them from a component's type sections) and the canonical ABI (which lifts and lowers
values of them).

Types are immutable and compare by structure, except resources, which are nominal: two `ResourceType`s
are the same resource only if they are the same object (a component's type index resolves to one).
Named type definitions are resolved away by the parser; only the structure remains.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

PrimName = Literal["bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "f32", "f64", "char",
                   "string"]
PRIM_NAMES: tuple[PrimName, ...] = ("bool", "s8", "u8", "s16", "u16", "s32", "u32", "s64", "u64", "f32",
                                    "f64", "char", "string")


@dataclass(frozen=True, slots=True)
class Prim:
    name: PrimName


@dataclass(frozen=True, slots=True)
class ListType:
    element: ValType
    fixed_length: int | None = None  # `list<T, N>` (the fixed-length-lists extension), else None


@dataclass(frozen=True, slots=True)
class RecordType:
    fields: tuple[tuple[str, ValType], ...]


@dataclass(frozen=True, slots=True)
class TupleType:
    elements: tuple[ValType, ...]


@dataclass(frozen=True, slots=True)
class VariantType:
    cases: tuple[tuple[str, ValType | None], ...]


@dataclass(frozen=True, slots=True)
class EnumType:
    labels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OptionType:
    element: ValType


@dataclass(frozen=True, slots=True)
class ResultType:
    ok: ValType | None
    err: ValType | None


@dataclass(frozen=True, slots=True)
class FlagsType:
    labels: tuple[str, ...]


@dataclass(eq=False, slots=True)
class ResourceType:
    """A resource type; identity is the type. `name` is for messages only. `host`: implemented by the
    host (an imported resource tauon provides) rather than defined by the component."""

    name: str
    host: bool = False
    destructor: int | None = None  # core function index of a guest-defined resource's `dtor`, if any


@dataclass(frozen=True, slots=True)
class OwnType:
    resource: ResourceType


@dataclass(frozen=True, slots=True)
class BorrowType:
    resource: ResourceType


@dataclass(frozen=True, slots=True)
class StreamType:
    element: ValType | None  # component-model async (WASIp3): `stream<T>` / `stream`


@dataclass(frozen=True, slots=True)
class FutureType:
    element: ValType | None  # component-model async (WASIp3): `future<T>` / `future`


@dataclass(frozen=True, slots=True)
class ErrorContextType:
    pass


ValType: TypeAlias = (Prim | ListType | RecordType | TupleType | VariantType | EnumType | OptionType
                      | ResultType | FlagsType | OwnType | BorrowType | StreamType | FutureType
                      | ErrorContextType)


@dataclass(frozen=True, slots=True)
class FuncType:
    params: tuple[tuple[str, ValType], ...]
    result: ValType | None
    is_async: bool = False  # `async func` (component-model async)


StringEncoding = Literal["utf8", "utf16", "latin1+utf16"]


@dataclass(frozen=True, slots=True)
class CanonOptions:
    """The options of one `canon lift` / `canon lower`, as core-instance export references resolved by
    the instantiator (`memory`, `realloc`, `post_return`, `callback` are opaque handles to it)."""

    string_encoding: StringEncoding = "utf8"
    memory: object | None = None
    realloc: object | None = None
    post_return: object | None = None
    is_async: bool = False
    callback: object | None = None


@dataclass(frozen=True, slots=True)
class Interface:
    """An instance type as imported or exported: its functions and resources by name."""

    funcs: dict[str, FuncType] = field(default_factory=dict)
    resources: dict[str, ResourceType] = field(default_factory=dict)
