"""The scopes a component's definitions are elaborated in (index spaces, with outer aliases reaching the
enclosing component's) and the resolution of written types into `tauon.wasm.canon.types`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

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
    ResourceType,
    ResultType,
    StreamType,
    TupleType,
    ValType,
    VariantType,
)
from tauon.wasm.runtime.model import (
    RawComponentType,
    RawFuncType,
    RawInstanceType,
    RawResourceType,
    RawType,
    RawValType,
    TypeRef,
    UnsupportedComponent,
)

Item: TypeAlias = Any

@dataclass(frozen=True, slots=True)
class TypeScope:
    """A type's own scope (an instance type's declarations), for resolving outer aliases."""

    raw: RawInstanceType | RawComponentType
    scope: Scope




@dataclass
class Scope:
    parent: Scope | None
    spaces: dict[str, list[Item]] = field(default_factory=dict)

    def space(self, sort: str) -> list[Item]:
        return self.spaces.setdefault(sort, [])

    def get(self, sort: str, index: int) -> Item:
        items = self.space(sort)
        if index >= len(items):
            raise UnsupportedComponent(f"{sort} index {index} out of range")
        return items[index]

    def outer(self, count: int) -> Scope:
        scope: Scope | None = self
        for _ in range(count):
            scope = scope.parent if scope is not None else None
        if scope is None:
            raise UnsupportedComponent("outer alias past the outermost component")
        return scope


# ---- types --------------------------------------------------------------------------------------------

def resolve_deftype(raw: RawType, scope: Scope) -> Item:
    if isinstance(raw, RawValType):
        return _valtype_of(raw, scope)
    if isinstance(raw, RawFuncType):
        return FuncType(tuple((name, value_type(t, scope)) for name, t in raw.params),
                        value_type(raw.result, scope) if raw.result is not None else None, raw.is_async)
    if isinstance(raw, RawResourceType):
        return ResourceType("resource", host=False, destructor=raw.destructor)
    return TypeScope(raw, scope)


def value_type(ref: TypeRef, scope: Scope) -> ValType:
    if isinstance(ref, str):
        return ErrorContextType() if ref == "error-context" else Prim(ref)  # type: ignore[arg-type]
    ty = scope.get("type", ref)
    if isinstance(ty, ResourceType | FuncType | TypeScope):
        raise UnsupportedComponent(f"type {ref} is used as a value type but is not one")
    return ty  # type: ignore[no-any-return]


def _opt_value_type(ref: TypeRef | None, scope: Scope) -> ValType | None:
    return value_type(ref, scope) if ref is not None else None


def _valtype_of(raw: RawValType, scope: Scope) -> ValType:
    kind, refs = raw.kind, raw.refs
    if kind == "record":
        return RecordType(tuple((n, value_type(t, scope)) for n, t in zip(raw.names, refs, strict=True)
                                if t is not None))
    if kind == "variant":
        cases = zip(raw.names, refs, strict=True)
        return VariantType(tuple((n, _opt_value_type(t, scope)) for n, t in cases))
    if kind == "list":
        return ListType(value_type(some(refs[0]), scope), raw.length)
    if kind == "tuple":
        return TupleType(tuple(value_type(some(t), scope) for t in refs))
    if kind == "flags":
        return FlagsType(raw.names)
    if kind == "enum":
        return EnumType(raw.names)
    if kind == "option":
        return OptionType(value_type(some(refs[0]), scope))
    if kind == "result":
        return ResultType(_opt_value_type(refs[0], scope), _opt_value_type(refs[1], scope))
    if kind in ("own", "borrow"):
        resource = scope.get("type", int(some(refs[0])))
        if not isinstance(resource, ResourceType):
            raise UnsupportedComponent(f"{kind} of a type that is not a resource")
        return OwnType(resource) if kind == "own" else BorrowType(resource)
    if kind == "stream":
        return StreamType(_opt_value_type(refs[0], scope))
    if kind == "future":
        return FutureType(_opt_value_type(refs[0], scope))
    return value_type(kind, scope)


def some(ref: TypeRef | None) -> TypeRef:
    if ref is None:
        raise UnsupportedComponent("a missing element type")
    return ref
