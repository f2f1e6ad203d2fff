"""Elaborate a parsed component into a flat instantiation plan, once per component.

Nested components are instantiated statically (their imports bound to the outer component's items), so
the plan is only what runs per instance: core modules to compile, core instances in order (each
instantiating a module with earlier core instances as its imports, or a bag of exports), `canon lower`
trampolines over host functions, resource builtins, and the exported functions lifted from core ones.
Types are resolved into `tauon.wasm.canon.types`; every imported `(sub resource)` is one host
`ResourceType`, named '<import>#<name>'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tauon.wasm.canon.types import (
    FuncType,
    FutureType,
    ResourceType,
    StreamType,
)
from tauon.wasm.runtime.model import (
    AliasDef,
    AsyncCanonDef,
    CanonDef,
    CanonOpts,
    ComponentDef,
    ComponentModel,
    CoreInstanceDef,
    CoreModuleDef,
    CoreTypeDef,
    Decl,
    ExportDef,
    ImportDef,
    InstanceDef,
    RawInstanceType,
    RawResourceType,
    TypeDef,
    UnsupportedComponent,
    sort_of,
)
from tauon.wasm.runtime.scope import Item, Scope, TypeScope, resolve_deftype, value_type

# ---- the plan -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CoreRef:
    """A core item at run time: `kind` 'export' (export `name` of core instance `index`), 'lower'
    (trampoline `index` of the plan), 'builtin' (resource builtin `index` of the plan) or 'async' (async
    builtin `index`)."""

    kind: str
    index: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class Opts:
    string_encoding: str
    memory: CoreRef | None
    realloc: CoreRef | None
    post_return: CoreRef | None
    is_async: bool = False
    callback: CoreRef | None = None


@dataclass(frozen=True, slots=True)
class HostFunc:
    """A function the host provides: `func` of the imported instance `interface` (or a top-level
    function import, `interface` None)."""

    interface: str | None
    func: str
    type: FuncType


@dataclass(frozen=True, slots=True)
class Lifted:
    core: CoreRef
    type: FuncType
    opts: Opts


@dataclass(frozen=True, slots=True)
class Instantiate:
    module: int
    args: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Bag:
    exports: tuple[tuple[str, CoreRef], ...]


@dataclass(frozen=True, slots=True)
class Lower:
    host: HostFunc
    opts: Opts


@dataclass(frozen=True, slots=True)
class Builtin:
    op: str  # 'resource.new' | 'resource.drop' | 'resource.rep'
    resource: ResourceType


@dataclass(frozen=True, slots=True)
class AsyncBuiltin:
    """A builtin of component-model async (`op` as Binary.md names it): `type` the stream / future type
    (or task.return's result type), `opts` its canonical options, `flag` its async? / cancel?
    immediate, `slot` a context slot, `memory` waitable-set.wait/poll's memory."""

    op: str
    type: Any = None
    opts: Opts | None = None
    flag: bool = False
    slot: int = 0
    memory: CoreRef | None = None


@dataclass
class Plan:
    modules: list[bytes] = field(default_factory=list)
    core_instances: list[Instantiate | Bag] = field(default_factory=list)
    lowers: list[Lower] = field(default_factory=list)
    builtins: list[Builtin] = field(default_factory=list)
    async_builtins: list[AsyncBuiltin] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)
    """Top-level exports: name -> `Lifted` or `dict` (an instance: name -> Lifted / type / dict)."""
    imports: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Imported instances: name -> their exports (name -> HostFunc or ResourceType)."""
    dtors: dict[ResourceType, CoreRef] = field(default_factory=dict)
    """Guest-defined resources with a destructor."""

    def export_func(self, interface: str | None, name: str) -> Lifted:
        item = self.exports.get(interface) if interface else self.exports
        found = item.get(name) if isinstance(item, dict) else None
        if not isinstance(found, Lifted):
            raise LookupError(f"component does not export the function {interface}#{name}"
                              if interface else f"component does not export the function {name}")
        return found


# ---- elaboration --------------------------------------------------------------------------------------

def build_plan(model: ComponentModel) -> Plan:
    """The flat plan of a top-level component. Raises UnsupportedComponent."""
    plan = Plan()
    scope = Scope(None)
    _elaborate(plan, model, scope, None)
    return plan


def _elaborate(plan: Plan, model: ComponentModel, scope: Scope,
               args: dict[str, tuple[str, Item]] | None) -> dict[str, Any]:
    """Run a component's definitions in `scope`; `args` None: the top level (imports from the host).
    Returns its exports (name -> item)."""
    exports: dict[str, Any] = {}
    for definition in model.definitions:
        sort = sort_of(definition)
        item = _define(plan, definition, scope, args)
        if isinstance(definition, ExportDef):
            exports[definition.name] = item
            if args is None:
                plan.exports[definition.name] = _exported(item)
        if sort is not None:
            scope.space(sort).append(item)
    return exports


def _exported(item: Item) -> Any:
    if isinstance(item, _Instance):
        return {name: _exported(value) for name, value in item.exports.items()}
    return item


@dataclass(frozen=True, slots=True)
class _Instance:
    exports: dict[str, Item]


@dataclass(frozen=True, slots=True)
class _Component:
    model: ComponentModel
    scope: Scope


def _define(plan: Plan, d: Any, scope: Scope, args: dict[str, tuple[str, Item]] | None) -> Item:
    match d:
        case CoreModuleDef(data=data):
            plan.modules.append(data)
            return len(plan.modules) - 1
        case CoreInstanceDef():
            return _core_instance(plan, d, scope)
        case CoreTypeDef():
            return None
        case ComponentDef(model=model):
            return _Component(model, scope)
        case InstanceDef():
            return _instance(plan, d, scope)
        case AliasDef():
            return _alias(d, scope)
        case TypeDef(type=raw):
            resolved = resolve_deftype(raw, scope)
            if isinstance(raw, RawResourceType) and raw.destructor is not None:
                plan.dtors[resolved] = _core_ref(scope, "core func", raw.destructor)
            return resolved
        case CanonDef():
            return _canon(plan, d, scope)
        case AsyncCanonDef():
            return _async_builtin(plan, d, scope)
        case ImportDef():
            return _import(plan, d, scope, args)
        case ExportDef(sort=sort, index=index):
            return scope.get(sort, index)
    raise UnsupportedComponent(f"definition {type(d).__name__}")


def _core_instance(plan: Plan, d: CoreInstanceDef, scope: Scope) -> int:
    if d.module is not None:
        module = scope.get("core module", d.module)
        plan.core_instances.append(Instantiate(module, tuple((name, scope.get("core instance", i))
                                                             for name, i in d.args)))
    else:
        exports = tuple((name, _core_ref(scope, sort, i)) for name, sort, i in d.exports)
        plan.core_instances.append(Bag(exports))
    return len(plan.core_instances) - 1


def _core_ref(scope: Scope, sort: str, index: int) -> CoreRef:
    ref = scope.get(sort, index)
    if not isinstance(ref, CoreRef):
        raise UnsupportedComponent(f"{sort} {index} is not a core item this runtime can pass")
    return ref


def _instance(plan: Plan, d: InstanceDef, scope: Scope) -> _Instance:
    items = {name: (sort, scope.get(sort, index)) for name, sort, index in d.args}
    if d.component is None:
        return _Instance({name: item for name, (_, item) in items.items()})
    component = scope.get("component", d.component)
    if not isinstance(component, _Component):
        raise UnsupportedComponent("instantiating something that is not a component")
    return _Instance(_elaborate(plan, component.model, Scope(component.scope), items))


def _alias(d: AliasDef, scope: Scope) -> Item:
    if d.target == "core export":
        return CoreRef("export", scope.get("core instance", d.instance), d.name)
    if d.target == "outer":
        if d.sort not in ("type", "core type", "core module", "component"):
            raise UnsupportedComponent(f"an outer alias of a {d.sort}")
        return scope.outer(d.count).get(d.sort, d.index)
    instance = scope.get("instance", d.instance)
    if not isinstance(instance, _Instance) or d.name not in instance.exports:
        raise UnsupportedComponent(f"alias of a missing instance export {d.name!r}")
    return instance.exports[d.name]


def _import(plan: Plan, d: ImportDef, scope: Scope, args: dict[str, tuple[str, Item]] | None) -> Item:
    desc = d.desc
    if args is not None:  # a nested component: bound by its instantiation
        if desc.sort == "type" and desc.bound == "eq":
            return scope.get("type", desc.index or 0)
        if d.name not in args:
            raise UnsupportedComponent(f"nested component import {d.name!r} not supplied")
        return args[d.name][1]
    if desc.sort == "instance":
        itype = scope.get("type", desc.index or 0)
        if not isinstance(itype, TypeScope) or not isinstance(itype.raw, RawInstanceType):
            raise UnsupportedComponent(f"import {d.name!r} is not typed by an instance type")
        exports = _instance_type_exports(d.name, itype)
        plan.imports[d.name] = exports
        return _Instance(exports)
    if desc.sort == "func":
        ftype = scope.get("type", desc.index or 0)
        if not isinstance(ftype, FuncType):
            raise UnsupportedComponent(f"import {d.name!r} is not typed by a function type")
        func = HostFunc(None, d.name, ftype)
        plan.imports.setdefault("", {})[d.name] = func
        return func
    if desc.sort == "type":
        if desc.bound != "sub":
            return scope.get("type", desc.index or 0)
        resource = ResourceType(d.name, host=True)
        plan.imports.setdefault("", {})[d.name] = resource
        return resource
    raise UnsupportedComponent(f"import {d.name!r} of a {desc.sort}")


def _instance_type_exports(import_name: str, itype: TypeScope) -> dict[str, Any]:
    local = Scope(itype.scope)
    exports: dict[str, Any] = {}
    for decl in itype.raw.decls:
        _instance_decl(import_name, decl, local, exports)
    return exports


def _instance_decl(import_name: str, decl: Decl, local: Scope, exports: dict[str, Any]) -> None:
    if decl.tag == "core type":
        local.space("core type").append(None)
    elif decl.tag == "type":
        assert decl.deftype is not None
        local.space("type").append(resolve_deftype(decl.deftype, local))
    elif decl.tag == "alias":
        assert decl.alias is not None
        if decl.alias.target != "outer":
            raise UnsupportedComponent(f"an export alias inside the type of import {import_name!r}")
        local.space(decl.alias.sort).append(_alias(decl.alias, local))
    elif decl.tag == "export":
        desc = decl.desc
        assert desc is not None
        if desc.sort == "type":
            item = (ResourceType(f"{import_name}#{decl.name}", host=True) if desc.bound == "sub"
                    else local.get("type", desc.index or 0))
            local.space("type").append(item)
            exports[decl.name] = item
        elif desc.sort == "func":
            ftype = local.get("type", desc.index or 0)
            if not isinstance(ftype, FuncType):
                raise UnsupportedComponent(f"{import_name}#{decl.name} is not typed by a function type")
            exports[decl.name] = HostFunc(import_name, decl.name, ftype)
        else:
            raise UnsupportedComponent(f"import {import_name!r} exports a {desc.sort} ({decl.name!r})")
    else:
        raise UnsupportedComponent(f"declaration {decl.tag!r} in the type of import {import_name!r}")


def _canon(plan: Plan, d: CanonDef, scope: Scope) -> Item:
    if d.op == "lift":
        ftype = scope.get("type", d.type_index or 0)
        if not isinstance(ftype, FuncType):
            raise UnsupportedComponent("canon lift with a type that is not a function type")
        return Lifted(_core_ref(scope, "core func", d.index), ftype, _opts(d.opts, scope))
    if d.op == "lower":
        func = scope.get("func", d.index)
        if not isinstance(func, HostFunc):
            raise UnsupportedComponent("lowering a function another guest component exports (a fused "
                                       "adapter between components)")
        plan.lowers.append(Lower(func, _opts(d.opts, scope)))
        return CoreRef("lower", len(plan.lowers) - 1)
    resource = scope.get("type", d.index)
    if not isinstance(resource, ResourceType):
        raise UnsupportedComponent(f"{d.op} of a type that is not a resource")
    plan.builtins.append(Builtin(d.op, resource))
    return CoreRef("builtin", len(plan.builtins) - 1)


def _opts(opts: CanonOpts, scope: Scope) -> Opts:
    return Opts(opts.string_encoding,
                _core_ref(scope, "core memory", opts.memory) if opts.memory is not None else None,
                _core_ref(scope, "core func", opts.realloc) if opts.realloc is not None else None,
                _core_ref(scope, "core func", opts.post_return) if opts.post_return is not None else None,
                opts.is_async,
                _core_ref(scope, "core func", opts.callback) if opts.callback is not None else None)


def _async_builtin(plan: Plan, d: AsyncCanonDef, scope: Scope) -> CoreRef:
    if d.type_index is not None:
        vtype: Any = scope.get("type", d.type_index)
        if not isinstance(vtype, StreamType | FutureType):
            raise UnsupportedComponent(f"{d.op} of a type that is not a {d.op.split('.')[0]}")
    elif d.has_result:
        vtype = value_type(d.result, scope) if d.result is not None else None
    else:
        vtype = None
    memory = _core_ref(scope, "core memory", d.memory) if d.memory is not None else None
    plan.async_builtins.append(AsyncBuiltin(d.op, vtype, _opts(d.opts, scope), d.flag, d.slot, memory))
    return CoreRef("async", len(plan.async_builtins) - 1)


