"""Link a component against tauon's host interfaces, by walking the imports it declares.

Each imported instance is defined under the exact name (and version) the component imports, so any
0.2.x patch version links (toolchains import 0.2.0 .. 0.2.12), with no shadowing between versions.
Functions tauon does not implement, and whole interfaces it does not know, are defined as traps that
name the function: instantiation never fails for an unused import, only the call does (as in Spin,
whose SDK components import far more than they use).
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import wasmtime
from wasmtime.component import (
    Component,
    ComponentInstanceType,
    FuncType,
    Linker,
    LinkerInstance,
    ResourceType,
)
from wasmtime.component._types import ComponentExtern

from tauon.hostif import (
    cli,
    clocks,
    filesystem,
    http,
    http_out,
    http_p3,
    io,
    p3_cli,
    p3_clocks,
    p3_filesystem,
    p3_outbound_http,
    p3_random,
    p3_sockets,
    p3_stdio,
    random,
    sockets,
    spin_http,
    spin_kv,
    spin_kv_p3,
    spin_mqtt,
    spin_mysql,
    spin_pg,
    spin_redis,
    spin_sqlite,
    spin_sqlite_p3,
    spin_unconfigured,
    spin_variables,
    spin_variables_p3,
)
from tauon.hostif.loopsafe import loop_safe, threads_only
from tauon.hostif.registry import P3, HostInterface, HostTrap, resource_id
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import UnsupportedType
from tauon.wasm.component.host import define_func, define_resource
from tauon.wasm.component.rewriting.contract import latin1_bytes
from tauon.wasm.component.typeindex import export_at, import_at

ALL_INTERFACES: tuple[HostInterface, ...] = tuple(
    iface
    for module in (io, clocks, random, cli, filesystem, sockets, http, http_out, http_p3,
                   spin_variables, spin_kv, spin_sqlite, spin_http, spin_redis, spin_mqtt, spin_pg,
                   spin_mysql, spin_unconfigured, p3_clocks, p3_random, p3_cli, p3_stdio, p3_filesystem,
                   p3_sockets, p3_outbound_http, spin_kv_p3, spin_variables_p3, spin_sqlite_p3)
    for iface in module.INTERFACES
)

_NAME = re.compile(r"^(?P<base>[^@]+)(?:@(?P<version>.+))?$")
SUPPORTED_PRERELEASES = ("0.2.0-rc-2023-10-18", "0.2.0-rc-2023-11-10")
P3_PRERELEASES = ("0.3.0-rc-2026-03-15",)


class UnimplementedImport(HostTrap):
    pass


def supported_version(version: str | None) -> bool:
    """wasi 0.2.x (any patch) and the two 2023 release candidates Spin 3 still links."""
    if version is None:
        return False
    if version in SUPPORTED_PRERELEASES:
        return True
    return re.fullmatch(r"0\.2\.\d+", version) is not None


def p3_version(version: str | None) -> bool:
    """wasi 0.3.x and the release candidate Spin 4 links (crates/factor-wasi: `wasi_2026_03_15`)."""
    if version is None:
        return False
    return version in P3_PRERELEASES or re.fullmatch(r"0\.3\.\d+", version) is not None


def interface_for(by_name: dict[str, HostInterface], import_name: str) -> HostInterface | None:
    """The interface serving `import_name`. One declared under the exact import name wins: Spin and
    draft interfaces name their one version ('fermyon:spin/key-value@2.0.0',
    'wasi:keyvalue/store@0.2.0-draft2') or none ('fermyon:spin/config', Spin's unversioned v1).
    Versionless wasi names serve any supported 0.2 version (see `supported_version`); wasi names
    ending in `P3` serve 0.3.x and its release candidate (see `p3_version`)."""
    base, version = split_name(import_name)
    exact = by_name.get(import_name)
    if exact is not None and (version is not None or not base.startswith("wasi:")):
        return exact
    if p3_version(version):
        return by_name.get(base + P3) if base.startswith("wasi:") else None
    return by_name.get(base) if supported_version(version) else None


def split_name(name: str) -> tuple[str, str | None]:
    match = _NAME.match(name)
    assert match is not None
    return match["base"], match["version"]


@dataclass
class ResourceMap:
    """The component's resource types (its import view) -> tauon host resource ids."""

    known: list[tuple[ResourceType, int]] = field(default_factory=list)

    def find(self, rtype: ResourceType) -> int | None:
        for candidate, host_id in self.known:
            if candidate == rtype:
                return host_id
        return None

    def add(self, rtype: ResourceType, host_id: int) -> None:
        self.known.append((rtype, host_id))


class SharedLinker:
    """A linker and the names it defined, shared by every component whose imports are identical."""

    __slots__ = ("__weakref__", "engine", "implemented", "linker", "resources", "trapping")

    def __init__(self, engine: wasmtime.Engine, linker: Linker, resources: list[ResourceAt]) -> None:
        self.engine = engine  # the key holds id(engine): keep it alive as long as the entry
        self.linker = linker
        self.resources = resources
        """Where the first component found each resource type: the others have theirs at the same
        places."""
        self.implemented: list[str] = []
        self.trapping: list[str] = []
        """'<import>#<function>' names that trap when called (unknown or unsupported)."""


class ResourceAt(NamedTuple):
    """A resource type the component imports: its place (import and export, by index and name)."""

    import_index: int
    import_name: str
    export_index: int
    export_name: str
    host_id: int


@dataclass
class LinkedComponent:
    """One component's linking: the (possibly shared) linker, and its own resource types' host ids."""

    shared: SharedLinker
    resources: ResourceMap

    @property
    def linker(self) -> Linker:
        return self.shared.linker

    @property
    def implemented(self) -> list[str]:
        return self.shared.implemented

    @property
    def trapping(self) -> list[str]:
        return self.shared.trapping


# Linkers by (id(engine), import key): converters are compiled per imported function, which made
# building each app's linker about a third of the CPU of a warm restart of 300 small apps (py-spy),
# apps built from one SDK each importing the same functions.
_shared: weakref.WeakValueDictionary[tuple[int, bytes], SharedLinker] = weakref.WeakValueDictionary()
_shared_lock = threading.Lock()


def _drop_resource(state: HostState, rep: int) -> None:
    state.table.drop(rep)


def _trap(label: str, why: str) -> Any:
    def trap(state: HostState, *args: Any) -> None:
        raise UnimplementedImport(f"{label} {why}")

    return trap


def merge(interfaces: Iterable[HostInterface]) -> dict[str, HostInterface]:
    """One interface per name: modules may each contribute functions to the same interface."""
    merged: dict[str, HostInterface] = {}
    for iface in interfaces:
        seen = merged.get(iface.name)
        if seen is None:
            merged[iface.name] = iface
        else:
            merged[iface.name] = HostInterface(iface.name, {**seen.funcs, **iface.funcs},
                                               seen.resources + iface.resources)
    return merged


def build_linker(engine: wasmtime.Engine, component: Component,
                 interfaces: Iterable[HostInterface] = ALL_INTERFACES, *,
                 import_key: bytes | None = None) -> LinkedComponent:
    """Link `component`. `import_key` (wasm/component/importkey.py) names its imports exactly: a
    linker built for another component with the same key, on the same engine, is shared rather
    than built again (only with tauon's own interfaces)."""
    key = (id(engine), import_key) if import_key is not None and interfaces is ALL_INTERFACES else None
    if key is not None:
        with _shared_lock:
            shared = _shared.get(key)
        if shared is not None:
            found = _resources_at(engine, component, shared.resources)
            if found is not None:
                return LinkedComponent(shared, found)
    imports = [(name, extern.ty) for name, extern in component.type.imports(engine).items()]
    instances = [(index, name, ty, ty.exports(engine)) for index, (name, ty) in enumerate(imports)
                 if isinstance(ty, ComponentInstanceType)]
    places = _resource_places(instances)
    resources = ResourceMap([(rtype, place.host_id) for rtype, place in places])
    shared = SharedLinker(engine, Linker(engine), [place for _, place in places])
    by_name = merge(interfaces)
    exports_of = {name: exports for _, name, _, exports in instances}
    with shared.linker.root() as root:
        for import_name, ty in imports:
            if isinstance(ty, ComponentInstanceType):
                iface = interface_for(by_name, import_name)
                with root.add_instance(import_name) as li:
                    _link_instance(li, import_name, exports_of[import_name], iface, resources, shared)
            elif isinstance(ty, FuncType):
                define_func(root, import_name, _trap(import_name, "is not provided by tauon"), None,
                            resources.find, label=import_name)
                shared.trapping.append(import_name)
            # other top-level imports (types, modules) need no definition or cannot be provided
    if key is not None:
        with _shared_lock:
            shared = _shared.setdefault(key, shared)
    return LinkedComponent(shared, resources)


def _resource_places(instances: list[tuple[int, str, ComponentInstanceType, dict[str, ComponentExtern]]]
                     ) -> list[tuple[ResourceType, ResourceAt]]:
    """Each resource type the component imports, with its host id, by the interface that defines it (a
    type `use`d from an earlier interface is that interface's, and compares equal to it)."""
    resources = ResourceMap()
    places: list[tuple[ResourceType, ResourceAt]] = []
    for import_index, import_name, _, exports in instances:
        base, _ = split_name(import_name)
        for export_index, (name, extern) in enumerate(exports.items()):
            rtype = extern.ty
            if isinstance(rtype, ResourceType) and resources.find(rtype) is None:
                host_id = resource_id(f"{base}#{name}")
                resources.add(rtype, host_id)
                places.append((rtype, ResourceAt(import_index, import_name, export_index, name, host_id)))
    return places


def _resources_at(engine: wasmtime.Engine, component: Component, places: list[ResourceAt]
                  ) -> ResourceMap | None:
    """`component`'s resource types at `places` (found in a component with the same imports); None
    should one not be there after all (then the caller links it afresh)."""
    ctype = component.type
    resources = ResourceMap()
    instance: tuple[int, ComponentInstanceType] | None = None
    for place in places:
        if instance is None or instance[0] != place.import_index:
            found = import_at(ctype, engine, place.import_index)
            if found is None or found[0] != place.import_name:
                return None
            ty = found[1].ty
            if not isinstance(ty, ComponentInstanceType):
                return None
            instance = (place.import_index, ty)
        export = export_at(instance[1], engine, place.export_index)
        if export is None or export[0] != place.export_name:
            return None
        rtype = export[1].ty
        if not isinstance(rtype, ResourceType):
            return None
        resources.add(rtype, place.host_id)
    return resources


def _link_instance(li: LinkerInstance, import_name: str, exports: dict[str, ComponentExtern],
                   iface: HostInterface | None, resources: ResourceMap, shared: SharedLinker) -> None:
    safe_on_loop = loop_safe(import_name)
    # Resources first: function signatures refer to them.
    for name, extern in exports.items():
        rtype = extern.ty
        if isinstance(rtype, ResourceType):
            host_id = resources.find(rtype)
            assert host_id is not None  # _resource_places saw every one
            define_resource(li, name, host_id, _drop_resource, label=f"{import_name}#{name}")
    for name, extern in exports.items():
        fty = extern.ty
        if not isinstance(fty, FuncType):
            continue
        label = f"{import_name}#{name}"
        impl = iface.funcs.get(name) if iface is not None else None
        if impl is None:
            why = "is not implemented by tauon" if iface is not None else "is not provided by tauon"
            define_func(li, name, _trap(label, why), None, _no_resources, label=label)
            shared.trapping.append(label)
            continue
        if not safe_on_loop:
            impl = threads_only(label, impl)
        try:
            define_func(li, name, impl, fty, resources.find, label=label,
                        latin1_bytes=latin1_bytes(import_name, name), flat=iface is not None and iface.flat)
            shared.implemented.append(label)
        except UnsupportedType as exc:
            define_func(li, name, _trap(label, f"cannot be called through this host: {exc}"), None,
                        _no_resources, label=label)
            shared.trapping.append(label)


def _no_resources(rtype: ResourceType) -> int | None:
    return None
