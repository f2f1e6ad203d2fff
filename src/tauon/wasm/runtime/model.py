"""A component binary as plain data: its definitions in binary order, each adding one item to an index
space, with type definitions kept as written (type indices unresolved; `plan.py` resolves them in their
scope into `tauon.wasm.canon.types`).

Sorts are named by strings: component sorts 'func', 'value', 'type', 'component', 'instance'; core sorts
'core func', 'core table', 'core memory', 'core global', 'core type', 'core module', 'core instance'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias


class UnsupportedComponent(Exception):
    """The component uses something this runtime does not run (or is malformed): the message says what.
    Callers fall back to the wasmtime component path."""


# ---- types as written -------------------------------------------------------------------------------

TypeRef: TypeAlias = "int | str"
"""A valtype: a type index, or a primitive's name ('u8', 'string', ...)."""


@dataclass(frozen=True, slots=True)
class RawValType:
    """A defined value type: `kind` ('record', 'variant', 'list', 'tuple', 'flags', 'enum', 'option',
    'result', 'own', 'borrow', 'stream', 'future', 'error-context', or a primitive name), its named
    members (record fields, variant cases, flag / enum labels) and element types."""

    kind: str
    names: tuple[str, ...] = ()
    refs: tuple[TypeRef | None, ...] = ()
    length: int | None = None


@dataclass(frozen=True, slots=True)
class RawFuncType:
    params: tuple[tuple[str, TypeRef], ...]
    result: TypeRef | None
    is_async: bool = False


@dataclass(frozen=True, slots=True)
class RawResourceType:
    destructor: int | None  # core func index
    is_async: bool = False


@dataclass(frozen=True, slots=True)
class ExternDesc:
    """What an import or export declares: `sort` and, for a func / instance / component / core module,
    its type index; for a type, `bound` ('eq' with `index`, or 'sub' for a fresh resource)."""

    sort: str
    index: int | None = None
    bound: str | None = None


@dataclass(frozen=True, slots=True)
class Decl:
    """One declaration inside an instance or component type: 'type' (with `deftype`), 'alias' (with
    `alias`), 'import' / 'export' (with `name` and `desc`), 'core type' (skipped)."""

    tag: str
    deftype: RawType | None = None
    alias: AliasDef | None = None
    name: str = ""
    desc: ExternDesc | None = None


@dataclass(frozen=True, slots=True)
class RawInstanceType:
    decls: tuple[Decl, ...]


@dataclass(frozen=True, slots=True)
class RawComponentType:
    decls: tuple[Decl, ...]


@dataclass(frozen=True, slots=True)
class RawCoreType:
    """A core function type (other core types are unsupported)."""

    params: tuple[str, ...]
    results: tuple[str, ...]


RawType: TypeAlias = "RawValType | RawFuncType | RawResourceType | RawInstanceType | RawComponentType"


# ---- definitions ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class AliasDef:
    """`target` 'export' (of component instance `instance`), 'core export' (of core instance
    `instance`), or 'outer' (`count` levels out, item `index`)."""

    sort: str
    target: str
    instance: int = 0
    name: str = ""
    count: int = 0
    index: int = 0


@dataclass(frozen=True, slots=True)
class CoreModuleDef:
    data: bytes


@dataclass(frozen=True, slots=True)
class CoreInstanceDef:
    """Instantiate `module` with `args` (import module name -> core instance index), or (module None)
    an instance made of `exports` (name -> (core sort, index))."""

    module: int | None
    args: tuple[tuple[str, int], ...] = ()
    exports: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ComponentDef:
    model: ComponentModel


@dataclass(frozen=True, slots=True)
class InstanceDef:
    """Instantiate `component` with `args` (name -> (sort, index)), or (component None) an instance
    made of `exports` (name -> (sort, index))."""

    component: int | None
    args: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class TypeDef:
    type: RawType


@dataclass(frozen=True, slots=True)
class CoreTypeDef:
    type: RawCoreType | None  # None: a module type, which this runtime never needs


@dataclass(frozen=True, slots=True)
class CanonOpts:
    string_encoding: str = "utf8"
    memory: int | None = None  # core memory index
    realloc: int | None = None  # core func index
    post_return: int | None = None  # core func index
    is_async: bool = False
    callback: int | None = None


@dataclass(frozen=True, slots=True)
class CanonDef:
    """'lift' (core func `index`, type `type_index`) and 'lower' (component func `index`) define a func
    / core func; 'resource.new' / 'resource.drop' / 'resource.rep' (resource type `index`) a core func."""

    op: str
    index: int
    opts: CanonOpts = CanonOpts()
    type_index: int | None = None


@dataclass(frozen=True, slots=True)
class AsyncCanonDef:
    """A canonical builtin of component-model async (`op` as Binary.md names it, e.g. 'stream.read'):
    `type_index` the stream / future type it works on, `result` / `has_result` task.return's result
    type, `opts` its canonical options, `flag` its async? / cancel? immediate, `slot` context.get/set's
    index, `memory` waitable-set.wait/poll's memory. Defines a core func."""

    op: str
    type_index: int | None = None
    result: TypeRef | None = None
    has_result: bool = False
    opts: CanonOpts = CanonOpts()
    flag: bool = False
    slot: int = 0
    memory: int | None = None


@dataclass(frozen=True, slots=True)
class ImportDef:
    name: str
    desc: ExternDesc


@dataclass(frozen=True, slots=True)
class ExportDef:
    name: str
    sort: str
    index: int
    desc: ExternDesc | None = None


Definition: TypeAlias = (CoreModuleDef | CoreInstanceDef | CoreTypeDef | ComponentDef | InstanceDef | AliasDef
                         | TypeDef | CanonDef | AsyncCanonDef | ImportDef | ExportDef)


@dataclass(frozen=True, slots=True)
class ComponentModel:
    definitions: tuple[Definition, ...] = field(default_factory=tuple)


def sort_of(definition: Definition) -> str | None:
    """The index space a definition adds an item to (imports and exports add one too)."""
    match definition:
        case CoreModuleDef():
            return "core module"
        case CoreInstanceDef():
            return "core instance"
        case CoreTypeDef():
            return "core type"
        case ComponentDef():
            return "component"
        case InstanceDef():
            return "instance"
        case AliasDef(sort=sort):
            return sort
        case TypeDef():
            return "type"
        case CanonDef(op="lift"):
            return "func"
        case CanonDef() | AsyncCanonDef():
            return "core func"
        case ImportDef(desc=desc):
            return desc.sort
        case ExportDef(sort=sort):
            return sort
    return None
