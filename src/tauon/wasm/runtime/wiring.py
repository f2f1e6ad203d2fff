"""How a component's core instances are wired, worked out once per component: every core import, and
every core item the canonical options or lifted exports name, traced through the bags of exports to
where it really comes from (an export of an instantiated module, a `canon lower` trampoline or a
resource builtin). Instantiating then does no lookups by name except one C call per distinct export.
"""

from __future__ import annotations

from dataclasses import dataclass

from tauon.wasm.runtime.model import UnsupportedComponent
from tauon.wasm.runtime.plan import Bag, CoreRef, Plan


@dataclass(frozen=True, slots=True)
class Source:
    """Where a core item comes from: `kind` 'export' (export `name` of the `index`th module
    instantiated), 'lower' (trampoline `index`) or 'builtin' (resource builtin `index`)."""

    kind: str
    index: int
    name: bytes = b""


@dataclass(frozen=True, slots=True)
class Step:
    """Instantiate module `module` with its imports, in order, from the sources of these ids."""

    module: int
    sources: tuple[int, ...]


class Wiring:
    def __init__(self, plan: Plan, import_names: list[list[tuple[str, str]]]) -> None:
        self._bags: dict[int, dict[str, Source]] = {}
        self._real: dict[int, int] = {}
        self.steps: list[Step] = []
        self.sources: list[Source] = []
        """Every distinct source, by id (an instance keeps its externs in a list by the same ids)."""
        self._ids: dict[Source, int] = {}
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
            self.steps.append(Step(step.module, tuple(self.id_of(s) for s in sources)))

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
