"""Parse a component binary (already validated by wasmtime) into `model.ComponentModel`.

The grammar is the component model's Binary.md as wasmtime 50 reads it. Anything this runtime does not
run (the threads and error-context builtins, value imports, a start function, GC core types) raises
`UnsupportedComponent` naming the feature; so does malformed input (a truncated section, a bad tag),
never another exception.
"""

from __future__ import annotations

from tauon.wasm.component.rewriting.binfmt import HEADER, Section
from tauon.wasm.component.rewriting.reader import Reader, Unsupported
from tauon.wasm.runtime.model import (
    AsyncCanonDef,
    CanonDef,
    CanonOpts,
    ComponentDef,
    ComponentModel,
    CoreInstanceDef,
    CoreModuleDef,
    Definition,
    ExportDef,
    ImportDef,
    InstanceDef,
    TypeDef,
    UnsupportedComponent,
)
from tauon.wasm.runtime.parse_types import (
    CORE_SORTS,
    core_type,
    deftype,
    extern_name,
    externdesc,
    read_alias,
    read_sort,
    valtype_ref,
)

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
    readers = {Section.CORE_INSTANCE: _core_instance, Section.CORE_TYPE: core_type,
               Section.INSTANCE: _instance, Section.ALIAS: read_alias, Section.TYPE: _type_def,
               Section.CANON: _canon, Section.IMPORT: _import, Section.EXPORT: _export}
    read = readers.get(sid)  # type: ignore[call-overload]
    if read is None:
        raise Unsupported(f"unknown section id {sid}")
    for _ in range(r.u32()):
        defs.append(read(r))
    if r.pos != r.end:
        raise Unsupported(f"section {sid} has trailing bytes")


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


def _instance(r: Reader) -> InstanceDef:
    kind = r.byte()
    if kind not in (0x00, 0x01):
        raise Unsupported(f"instance kind 0x{kind:02x}")
    component = r.u32() if kind == 0x00 else None
    args = []
    for _ in range(r.u32()):
        name = r.name() if kind == 0x00 else extern_name(r)
        sort = read_sort(r)
        args.append((name, sort, r.u32()))
    return InstanceDef(component, tuple(args))


def _type_def(r: Reader) -> TypeDef:
    return TypeDef(deftype(r))


def _canon(r: Reader) -> CanonDef | AsyncCanonDef:
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
    if name is None:
        raise UnsupportedComponent(f"canonical builtin 0x{op:02x}")
    return _async_builtin(r, op, name)


_TYPED = frozenset(range(0x0E, 0x1C))  # stream.* and future.*: a type index first
_WITH_OPTS = frozenset({0x0F, 0x10, 0x16, 0x17})
_WITH_FLAG = frozenset({0x06, 0x11, 0x12, 0x18, 0x19, 0x0C})


def _async_builtin(r: Reader, op: int, name: str) -> AsyncCanonDef:
    """The builtins of component-model async the runtime runs; threads and error-context are refused."""
    if op in (0x1C, 0x1D, 0x1E) or op >= 0x26 or op in (0x05, 0x06, 0x07):
        raise UnsupportedComponent(f"the canonical builtin {name} (component-model async / threads)")
    if op == 0x09:
        form = r.byte()
        result = None
        if form == 0x00:
            result = valtype_ref(r)
        elif r.byte() != 0x00:
            raise Unsupported("task.return result list")
        return AsyncCanonDef(name, result=result, has_result=form == 0x00, opts=_opts(r))
    if op in (0x0A, 0x0B):
        if r.byte() != 0x7F:
            raise UnsupportedComponent(f"{name} of a 64-bit context slot")
        return AsyncCanonDef(name, slot=r.u32())
    if op in (0x20, 0x21):
        flag = r.byte() == 0x01
        return AsyncCanonDef(name, flag=flag, memory=r.u32())
    type_index = r.u32() if op in _TYPED else None
    opts = _opts(r) if op in _WITH_OPTS else CanonOpts()
    flag = r.byte() == 0x01 if op in _WITH_FLAG else False
    return AsyncCanonDef(name, type_index=type_index, opts=opts, flag=flag)


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
    name = extern_name(r)
    return ImportDef(name, externdesc(r))


def _export(r: Reader) -> ExportDef:
    name = extern_name(r)
    sort = read_sort(r)
    index = r.u32()
    desc = externdesc(r) if r.byte() == 0x01 else None
    return ExportDef(name, sort, index, desc)
