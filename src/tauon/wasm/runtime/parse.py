"""Parse a component binary (already validated by wasmtime) into `model.ComponentModel`.

The grammar is the component model's Binary.md as wasmtime 50 reads it. Anything this runtime does not
run (component-model async builtins, value imports, a start function, GC core types) raises
`UnsupportedComponent` naming the feature; so does malformed input (a truncated section, a bad tag),
never another exception.
"""

from __future__ import annotations

from tauon.wasm.component.rewriting.binfmt import HEADER, Section
from tauon.wasm.component.rewriting.reader import Reader, Unsupported
from tauon.wasm.runtime.model import (
    AliasDef,
    CanonDef,
    CanonOpts,
    ComponentDef,
    ComponentModel,
    CoreInstanceDef,
    CoreModuleDef,
    CoreTypeDef,
    Decl,
    Definition,
    ExportDef,
    ExternDesc,
    ImportDef,
    InstanceDef,
    RawComponentType,
    RawCoreType,
    RawFuncType,
    RawInstanceType,
    RawResourceType,
    RawType,
    RawValType,
    TypeDef,
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
# Canonical builtins of component-model async and threads (WASIp3), by opcode (as wasmtime 50's text
# parser encodes them): recognised, reported, not run.
ASYNC_BUILTINS = {
    0x05: "task.cancel", 0x06: "subtask.cancel", 0x07: "resource.drop async", 0x09: "task.return",
    0x0A: "context.get", 0x0B: "context.set", 0x0C: "thread.yield", 0x0D: "subtask.drop",
    0x0E: "stream.new", 0x0F: "stream.read", 0x10: "stream.write", 0x11: "stream.cancel-read",
    0x12: "stream.cancel-write", 0x13: "stream.drop-readable", 0x14: "stream.drop-writable",
    0x15: "future.new", 0x16: "future.read", 0x17: "future.write", 0x18: "future.cancel-read",
    0x19: "future.cancel-write", 0x1A: "future.drop-readable", 0x1B: "future.drop-writable",
    0x1C: "error-context.new", 0x1D: "error-context.debug-message", 0x1E: "error-context.drop",
    0x1F: "waitable-set.new", 0x20: "waitable-set.wait", 0x21: "waitable-set.poll",
    0x22: "waitable-set.drop", 0x23: "waitable.join", 0x24: "backpressure.inc", 0x25: "backpressure.dec",
    0x26: "thread.index", 0x28: "thread.resume-later", 0x29: "thread.suspend",
    0x2B: "thread.yield-then-resume", 0x40: "thread.spawn-ref", 0x41: "thread.spawn-indirect",
    0x42: "thread.available_parallelism",
}


def parse_component(data: bytes) -> ComponentModel:
    """Parse a component binary. Raises UnsupportedComponent."""
    try:
        return _component(bytes(data))
    except Unsupported as exc:
        raise UnsupportedComponent(f"malformed or unsupported component binary: {exc}") from None
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise UnsupportedComponent(f"malformed component binary: {exc}") from None


def _component(data: bytes) -> ComponentModel:
    if data[:8] != HEADER:
        raise UnsupportedComponent("not a component binary (bad header)")
    r = Reader(data, len(HEADER))
    defs: list[Definition] = []
    while r.pos < r.end:
        sid = r.byte()
        size = r.u32()
        end = r.pos + size
        if end > r.end:
            raise Unsupported("section runs past the end")
        _section(Reader(data, r.pos, end), sid, defs)
        r.pos = end
    return ComponentModel(tuple(defs))


def _section(r: Reader, sid: int, defs: list[Definition]) -> None:
    if sid == Section.CUSTOM:
        return
    if sid == Section.CORE_MODULE:
        defs.append(CoreModuleDef(r.data[r.pos:r.end]))
        return
    if sid == Section.COMPONENT:
        defs.append(ComponentDef(_component(r.data[r.pos:r.end])))
        return
    if sid == Section.START:
        raise UnsupportedComponent("a component start function (value-level start section)")
    readers = {Section.CORE_INSTANCE: _core_instance, Section.CORE_TYPE: _core_type,
               Section.INSTANCE: _instance, Section.ALIAS: _alias, Section.TYPE: _type_def,
               Section.CANON: _canon, Section.IMPORT: _import, Section.EXPORT: _export}
    read = readers.get(sid)  # type: ignore[call-overload]
    if read is None:
        raise Unsupported(f"unknown section id {sid}")
    for _ in range(r.u32()):
        defs.append(read(r))
    if r.pos != r.end:
        raise Unsupported(f"section {sid} has trailing bytes")


def _sort(r: Reader) -> str:
    b = r.byte()
    if b == 0x00:
        core = r.byte()
        if core not in CORE_SORTS:
            raise Unsupported(f"core sort 0x{core:02x}")
        return CORE_SORTS[core]
    if b not in SORTS:
        raise Unsupported(f"sort 0x{b:02x}")
    return SORTS[b]


def _extern_name(r: Reader) -> str:
    form = r.byte()
    name = r.name()
    if form == 0x01:
        r.name()  # an older form's version suffix
    elif form != 0x00:
        raise Unsupported(f"name form 0x{form:02x}")
    return name


def _core_instance(r: Reader) -> CoreInstanceDef:
    kind = r.byte()
    if kind == 0x00:
        module = r.u32()
        args = []
        for _ in range(r.u32()):
            name = r.name()
            if r.byte() != 0x12:
                raise Unsupported("core instantiation argument that is not an instance")
            args.append((name, r.u32()))
        return CoreInstanceDef(module, tuple(args))
    if kind == 0x01:
        exports = []
        for _ in range(r.u32()):
            name = r.name()
            core = r.byte()
            if core not in CORE_SORTS:
                raise Unsupported(f"core sort 0x{core:02x}")
            exports.append((name, CORE_SORTS[core], r.u32()))
        return CoreInstanceDef(None, exports=tuple(exports))
    raise Unsupported(f"core instance kind 0x{kind:02x}")


def _core_type(r: Reader) -> CoreTypeDef:
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
            _core_type(r)
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


def _instance(r: Reader) -> InstanceDef:
    kind = r.byte()
    if kind not in (0x00, 0x01):
        raise Unsupported(f"instance kind 0x{kind:02x}")
    component = r.u32() if kind == 0x00 else None
    args = []
    for _ in range(r.u32()):
        name = r.name() if kind == 0x00 else _extern_name(r)
        sort = _sort(r)
        args.append((name, sort, r.u32()))
    return InstanceDef(component, tuple(args))


def _alias(r: Reader) -> AliasDef:
    sort = _sort(r)
    target = r.byte()
    if target == 0x00:
        return AliasDef(sort, "export", instance=r.u32(), name=r.name())
    if target == 0x01:
        return AliasDef(sort, "core export", instance=r.u32(), name=r.name())
    if target == 0x02:
        return AliasDef(sort, "outer", count=r.u32(), index=r.u32())
    raise Unsupported(f"alias target 0x{target:02x}")


def _type_def(r: Reader) -> TypeDef:
    return TypeDef(_deftype(r))


def _valtype(r: Reader) -> TypeRef:
    b = r.peek()
    if b in PRIMITIVES:
        r.pos += 1
        return PRIMITIVES[b]
    return r.u32()


def _opt_valtype(r: Reader) -> TypeRef | None:
    flag = r.byte()
    if flag == 0x00:
        return None
    if flag != 0x01:
        raise Unsupported("bad option flag")
    return _valtype(r)


def _names(r: Reader) -> tuple[str, ...]:
    return tuple(r.name() for _ in range(r.u32()))


def _deftype(r: Reader) -> RawType:
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
        _core_type(r)
        return Decl("core type")
    if tag == 0x01:
        return Decl("type", deftype=_deftype(r))
    if tag == 0x02:
        return Decl("alias", alias=_alias(r))
    if tag == 0x04 or (tag == 0x03 and component):
        name = _extern_name(r)
        return Decl("export" if tag == 0x04 else "import", name=name, desc=_externdesc(r))
    raise Unsupported(f"declaration tag 0x{tag:02x}")


def _externdesc(r: Reader) -> ExternDesc:
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


def _canon(r: Reader) -> CanonDef:
    op = r.byte()
    if op == 0x00:
        if r.byte() != 0x00:
            raise Unsupported("canon lift form")
        core = r.u32()
        opts = _opts(r)
        return CanonDef("lift", core, opts, type_index=r.u32())
    if op == 0x01:
        if r.byte() != 0x00:
            raise Unsupported("canon lower form")
        func = r.u32()
        return CanonDef("lower", func, _opts(r))
    if op in (0x02, 0x03, 0x04):
        return CanonDef({0x02: "resource.new", 0x03: "resource.drop", 0x04: "resource.rep"}[op], r.u32())
    name = ASYNC_BUILTINS.get(op)
    if name is not None:
        raise UnsupportedComponent(f"the canonical builtin {name} (component-model async / threads)")
    raise UnsupportedComponent(f"canonical builtin 0x{op:02x}")


def _opts(r: Reader) -> CanonOpts:
    encoding, memory, realloc, post_return, callback, is_async = "utf8", None, None, None, None, False
    for _ in range(r.u32()):
        code = r.byte()
        if code in (0x00, 0x01, 0x02):
            encoding = ("utf8", "utf16", "latin1+utf16")[code]
        elif code == 0x03:
            memory = r.u32()
        elif code == 0x04:
            realloc = r.u32()
        elif code == 0x05:
            post_return = r.u32()
        elif code == 0x06:
            is_async = True
        elif code == 0x07:
            callback = r.u32()
        else:
            raise UnsupportedComponent(f"canonical option 0x{code:02x}")
    return CanonOpts(encoding, memory, realloc, post_return, is_async, callback)


def _import(r: Reader) -> ImportDef:
    name = _extern_name(r)
    return ImportDef(name, _externdesc(r))


def _export(r: Reader) -> ExportDef:
    name = _extern_name(r)
    sort = _sort(r)
    index = r.u32()
    desc = _externdesc(r) if r.byte() == 0x01 else None
    return ExportDef(name, sort, index, desc)
