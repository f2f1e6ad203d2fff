"""How a component's core instances are wired, worked out once per component: every core import, and
every core item the canonical options or lifted exports name, traced through the bags of exports to
where it really comes from (an export of an instantiated module, a `canon lower` trampoline or a
resource builtin).

Each core module then exports only what something uses, under short names (its index among them), and
its imports are renamed to their sources (`link_name`): export `e` of the `k`th module instantiated
becomes import `("k", short name of e)`, trampoline `i` `("$lower", "i")`, builtin `j`
`("$builtin", "j")`. A wasmtime linker holding the trampolines and builtins (defined once per
component) plus each instance as it is made (one `define_instance` call) then resolves a whole
module's imports in the one C call that instantiates it. A module instantiated twice with different
imports or used exports gets one renamed copy for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tauon.wasm.runtime.core_names import has_start, read_imports, rename_exports, rename_imports
from tauon.wasm.runtime.model import UnsupportedComponent
from tauon.wasm.runtime.plan import Bag, CoreRef, Lifted, Opts, Plan

LOWER_MODULE = "$lower"
BUILTIN_MODULE = "$builtin"


@dataclass(frozen=True, slots=True)
class Source:
    """Where a core item comes from: `kind` 'export' (export `name` of the `index`th module
    instantiated), 'lower' (trampoline `index`), 'builtin' (resource builtin `index`) or 'async' (async
    builtin `index`)."""

    kind: str
    index: int
    name: bytes = b""


ASYNC_MODULE = "$async"
_HOST_MODULES = {"lower": LOWER_MODULE, "builtin": BUILTIN_MODULE, "async": ASYNC_MODULE}


def host_link_name(source: Source) -> tuple[str, str]:
    """The (module, name) of a trampoline, resource builtin or async builtin in the component's
    linker."""
    return _HOST_MODULES[source.kind], str(source.index)


@dataclass(slots=True)
class Step:
    """Instantiate renamed module `module` (an index into `Wiring.modules`), whose imports come, in
    order, from the sources of these ids. `host_only`: every import is a trampoline or builtin (so its
    imports can be bound once per component, in an InstancePre); `exported`: a later step imports
    from this instance (so it is defined in the Store's linker)."""

    module: int
    sources: tuple[int, ...]
    host_only: bool = False
    exported: bool = False
    starts: bool = True
    """The module has a start function (so instantiating it runs guest code)."""


class Wiring:
    def __init__(self, plan: Plan) -> None:
        self._bags: dict[int, dict[str, Source]] = {}
        self._real: dict[int, int] = {}
        self.steps: list[Step] = []
        self.sources: list[Source] = []
        """Every distinct source, by id (an instance keeps its externs in a list by the same ids)."""
        self._ids: dict[Source, int] = {}
        modules = self._trace(plan)
        self.ref_ids = {ref: self.id_of(self.source(ref)) for ref in named_refs(plan)}
        """Source ids of the core items canonical options, lifts and dtors name."""
        self._short: list[dict[str, str]] = [{} for _ in self.steps]
        """Per step: the short name of each export used (by a later import or a named item)."""
        for source in self.sources:
            if source.kind == "export":
                exports = self._short[source.index]
                exports.setdefault(source.name.decode("utf-8"), str(len(exports)))
        self.modules: list[bytes] = []
        """The renamed modules the steps instantiate (the caller compiles them, then may drop these)."""
        self._rename(plan, modules)

    def _trace(self, plan: Plan) -> list[int]:
        """Each instantiation's sources, as a step; the plan's module index of each step."""
        modules: list[int] = []
        import_names = [read_imports(data) for data in plan.modules]
        for index, step in enumerate(plan.core_instances):
            if isinstance(step, Bag):
                self._bags[index] = {name: self.source(ref) for name, ref in step.exports}
                continue
            args = dict(step.args)
            sources = []
            for module_name, name in import_names[step.module]:
                if module_name not in args:
                    raise UnsupportedComponent(f"core import module {module_name!r} is not supplied")
                sources.append(self._export(args[module_name], name))
            self._real[index] = len(self.steps)
            modules.append(step.module)
            self.steps.append(Step(-1, tuple(self.id_of(s) for s in sources),
                                   host_only=all(s.kind != "export" for s in sources)))
        return modules

    def _rename(self, plan: Plan, modules: list[int]) -> None:
        used = self._short
        variants: dict[tuple[int, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]], int] = {}
        imported_from = {self.sources[s].index for st in self.steps for s in st.sources
                         if self.sources[s].kind == "export"}
        for k, st in enumerate(self.steps):
            names = tuple(self.link_name(self.sources[s]) for s in st.sources)
            key = (modules[k], names, tuple(used[k].items()))
            if key not in variants:
                variants[key] = len(self.modules)
                data = rename_imports(plan.modules[modules[k]], list(names))
                self.modules.append(rename_exports(data, used[k]))
            st.module = variants[key]
            st.starts = has_start(plan.modules[modules[k]])
            st.exported = k in imported_from

    def link_name(self, source: Source) -> tuple[str, str]:
        """The (module, name) of `source` in a Store's linker (so an import of it is renamed to it)."""
        if source.kind == "export":
            return str(source.index), self._short[source.index][source.name.decode("utf-8")]
        return host_link_name(source)

    def id_of(self, source: Source) -> int:
        found = self._ids.get(source)
        if found is None:
            found = self._ids[source] = len(self.sources)
            self.sources.append(source)
        return found

    def source(self, ref: CoreRef) -> Source:
        if ref.kind == "export":
            return self._export(ref.index, ref.name)
        return Source(ref.kind, ref.index)

    def _export(self, core_instance: int, name: str) -> Source:
        bag = self._bags.get(core_instance)
        if bag is not None:
            if name not in bag:
                raise UnsupportedComponent(f"core instance {core_instance} has no export {name!r}")
            return bag[name]
        if core_instance not in self._real:
            raise UnsupportedComponent(f"core instance {core_instance} is used before it is defined")
        return Source("export", self._real[core_instance], name.encode())


def named_refs(plan: Plan) -> list[CoreRef]:
    """Every core item named by canonical options, lifted exports and resource dtors."""
    opts: list[Opts] = [lower.opts for lower in plan.lowers]
    refs: list[CoreRef] = list(plan.dtors.values())
    pending: list[Any] = [plan.exports]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, Lifted):
            refs.append(item.core)
            opts.append(item.opts)
    for b in plan.async_builtins:
        opts.extend(o for o in (b.opts,) if o is not None)
        refs.extend(r for r in (b.memory,) if r is not None)
    for o in opts:
        refs.extend(r for r in (o.memory, o.realloc, o.post_return, o.callback) if r is not None)
    return refs
