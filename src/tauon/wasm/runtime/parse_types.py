"""The type grammar of a component binary (Binary.md): sorts, names, aliases, core types, value,
function, instance, component and resource types and their declarations, read into `model`."""

from __future__ import annotations

from tauon.wasm.component.rewriting.reader import Reader, Unsupported
from tauon.wasm.runtime.model import (
    AliasDef,
    CoreTypeDef,
    Decl,
    ExternDesc,
    RawComponentType,
    RawCoreType,
    RawFuncType,
    RawInstanceType,
    RawResourceType,
    RawType,
    RawValType,
    TypeRef,
    UnsupportedComponent,
)

PRIMITIVES = {0x7F: "bool", 0x7E: "s8", 0x7D: "u8", 0x7C: "s16", 0x7B: "u16", 0x7A: "s32", 0x79: "u32",
              0x78: "s64", 0x77: "u64", 0x76: "f32", 0x75: "f64", 0x74: "char", 0x73: "string",
              0x64: "error-context"}
SORTS = {0x01: "func", 0x02: "value", 0x03: "type", 0x04: "component", 0x05: "instance"}
CORE_SORTS = {0x00: "core func", 0x01: "core table", 0x02: "core memory", 0x03: "core global",
              0x10: "core type", 0x11: "core module", 0x12: "core instance"}
CORE_VALTYPES = {0x7F: "i32", 0x7E: "i64", 0x7D: "f32", 0x7C: "f64", 0x7B: "v128", 0x70: "funcref",
                 0x6F: "externref"}

def read_sort(r: Reader) -> str:
    b = r.byte()
    if b == 0x00:
        core = r.byte()
        if core not in CORE_SORTS:
            raise Unsupported(f"core sort 0x{core:02x}")
        return CORE_SORTS[core]
    if b not in SORTS:
        raise Unsupported(f"sort 0x{b:02x}")
    return SORTS[b]


def extern_name(r: Reader) -> str:
    form = r.byte()
    name = r.name()
    if form == 0x01:
        r.name()  # an older form's version suffix
    elif form != 0x00:
        raise Unsupported(f"name form 0x{form:02x}")
    return name


def read_alias(r: Reader) -> AliasDef:
    sort = read_sort(r)
    target = r.byte()
    if target == 0x00:
        return AliasDef(sort, "export", instance=r.u32(), name=r.name())
    if target == 0x01:
        return AliasDef(sort, "core export", instance=r.u32(), name=r.name())
    if target == 0x02:
        return AliasDef(sort, "outer", count=r.u32(), index=r.u32())
    raise Unsupported(f"alias target 0x{target:02x}")


def core_type(r: Reader) -> CoreTypeDef:
    tag = r.byte()
    if tag == 0x60:
        params = tuple(_core_valtype(r) for _ in range(r.u32()))
        results = tuple(_core_valtype(r) for _ in range(r.u32()))
        return CoreTypeDef(RawCoreType(params, results))
    if tag == 0x50:
        _skip_module_type(r)
        return CoreTypeDef(None)
    raise UnsupportedComponent(f"core type form 0x{tag:02x} (GC / function-references types)")


def _core_valtype(r: Reader) -> str:
    b = r.byte()
    if b not in CORE_VALTYPES:
        raise UnsupportedComponent(f"core value type 0x{b:02x}")
    return CORE_VALTYPES[b]


def _skip_module_type(r: Reader) -> None:
    for _ in range(r.u32()):
        tag = r.byte()
        if tag == 0x00:  # import: module, name, importdesc
            r.name()
            r.name()
            _skip_core_importdesc(r)
        elif tag == 0x01:
            core_type(r)
        elif tag == 0x02:  # outer alias
            r.byte()
            r.byte()
            r.u32()
            r.u32()
        elif tag == 0x03:
            r.name()
            _skip_core_importdesc(r)
        else:
            raise Unsupported(f"module type declaration 0x{tag:02x}")


def _skip_core_importdesc(r: Reader) -> None:
    kind = r.byte()
    if kind == 0x00:  # func: type index
        r.u32()
    elif kind == 0x01:  # table: reftype, limits
        r.byte()
        _skip_limits(r)
    elif kind == 0x02:  # memory: limits
        _skip_limits(r)
    elif kind == 0x03:  # global: valtype, mutability
        r.byte()
        r.byte()
    else:
        raise Unsupported(f"core import kind 0x{kind:02x}")


def _skip_limits(r: Reader) -> None:
    flags = r.byte()
    r.u32()
    if flags & 0x01:
        r.u32()


def _valtype(r: Reader) -> TypeRef:
    b = r.peek()
    if b in PRIMITIVES:
        r.pos += 1
        return PRIMITIVES[b]
    return r.u32()


def valtype_ref(r: Reader) -> TypeRef:
    """A valtype (a primitive's name or a type index)."""
    return _valtype(r)


def _opt_valtype(r: Reader) -> TypeRef | None:
    flag = r.byte()
    if flag == 0x00:
        return None
    if flag != 0x01:
        raise Unsupported("bad option flag")
    return _valtype(r)


def _names(r: Reader) -> tuple[str, ...]:
    return tuple(r.name() for _ in range(r.u32()))


def deftype(r: Reader) -> RawType:
    kind = r.byte()
    if kind in PRIMITIVES:
        return RawValType(PRIMITIVES[kind])
    if kind in (0x40, 0x43):
        params = tuple((r.name(), _valtype(r)) for _ in range(r.u32()))
        form = r.byte()
        if form == 0x00:
            result: TypeRef | None = _valtype(r)
        elif form == 0x01 and r.byte() == 0x00:
            result = None
        else:
            raise Unsupported("named function results")
        return RawFuncType(params, result, is_async=kind == 0x43)
    if kind == 0x41:
        return RawComponentType(tuple(_decl(r, component=True) for _ in range(r.u32())))
    if kind == 0x42:
        return RawInstanceType(tuple(_decl(r, component=False) for _ in range(r.u32())))
    if kind in (0x3F, 0x3E):
        if r.byte() != 0x7F:
            raise Unsupported("resource representation other than i32")
        dtor = r.u32() if r.byte() == 0x01 else None
        if kind == 0x3E:
            r.u32()  # async destructor callback
        return RawResourceType(dtor, is_async=kind == 0x3E)
    return _defvaltype(r, kind)


def _defvaltype(r: Reader, kind: int) -> RawValType:
    if kind == 0x72:
        fields = [(r.name(), _valtype(r)) for _ in range(r.u32())]
        return RawValType("record", tuple(n for n, _ in fields), tuple(t for _, t in fields))
    if kind == 0x71:
        cases: list[tuple[str, TypeRef | None]] = []
        for _ in range(r.u32()):
            name = r.name()
            cases.append((name, _opt_valtype(r)))
            if r.byte() != 0x00:
                raise Unsupported("variant case refinement")
        return RawValType("variant", tuple(n for n, _ in cases), tuple(t for _, t in cases))
    if kind == 0x70:
        return RawValType("list", refs=(_valtype(r),))
    if kind == 0x67:
        element = _valtype(r)
        return RawValType("list", refs=(element,), length=r.u32())
    if kind == 0x6F:
        return RawValType("tuple", refs=tuple(_valtype(r) for _ in range(r.u32())))
    if kind == 0x6E:
        return RawValType("flags", _names(r))
    if kind == 0x6D:
        return RawValType("enum", _names(r))
    if kind == 0x6B:
        return RawValType("option", refs=(_valtype(r),))
    if kind == 0x6A:
        return RawValType("result", refs=(_opt_valtype(r), _opt_valtype(r)))
    if kind in (0x69, 0x68):
        return RawValType("own" if kind == 0x69 else "borrow", refs=(r.u32(),))
    if kind in (0x66, 0x65):
        return RawValType("stream" if kind == 0x66 else "future", refs=(_opt_valtype(r),))
    raise Unsupported(f"type opcode 0x{kind:02x}")


def _decl(r: Reader, *, component: bool) -> Decl:
    tag = r.byte()
    if tag == 0x00:
        core_type(r)
        return Decl("core type")
    if tag == 0x01:
        return Decl("type", deftype=deftype(r))
    if tag == 0x02:
        return Decl("alias", alias=read_alias(r))
    if tag == 0x04 or (tag == 0x03 and component):
        name = extern_name(r)
        return Decl("export" if tag == 0x04 else "import", name=name, desc=externdesc(r))
    raise Unsupported(f"declaration tag 0x{tag:02x}")


def externdesc(r: Reader) -> ExternDesc:
    kind = r.byte()
    if kind == 0x00:
        if r.byte() != 0x11:
            raise Unsupported("core extern other than a module")
        return ExternDesc("core module", r.u32())
    if kind in (0x01, 0x04, 0x05):
        return ExternDesc(SORTS[kind], r.u32())
    if kind == 0x02:
        raise UnsupportedComponent("a value import or export (component-model values)")
    if kind == 0x03:
        bound = r.byte()
        if bound == 0x00:
            return ExternDesc("type", r.u32(), bound="eq")
        if bound == 0x01:
            return ExternDesc("type", bound="sub")
        raise Unsupported(f"type bound 0x{bound:02x}")
    raise Unsupported(f"externdesc 0x{kind:02x}")
