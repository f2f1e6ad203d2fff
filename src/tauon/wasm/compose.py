"""Compose a component with its `dependencies` at load, as Spin's loader does (spin-spec §2.5, §1.3).

Each dependency name is matched against the component's imports (depnames.py); an import matched by
two dependencies, a name that matches nothing, or a missing export is refused with Spin's wording.
A dependency that does not inherit every capability set is wrapped first, as Spin's
`crates/capabilities` does: its imports of the interfaces it may not use are satisfied by tauon's deny
adapter (src/tauon/adapters/deny-adapter/) instead of the host. The graph is then encoded by
`wasm-tools compose` (wasm-compose) in one bounded run. The result is cached by the digests of every
input, the inherit settings, the deny adapter and the encoder's version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tauon.app.plan import DependencyPlan
from tauon.errors import LoadError
from tauon.wasm import encoder
from tauon.wasm.capabilities import deny_plan
from tauon.wasm.componentize import Source, cached_artifact, key_lock, prepare_source, store_artifact
from tauon.wasm.depnames import matches_import, parse_dependency_name, world_names

log = logging.getLogger(__name__)

FORMAT = "1"


@dataclass(frozen=True, slots=True)
class _Prepared:
    plan: DependencyPlan
    source: Source
    imports: list[str]
    exports: list[str]


def compose_component(cache_dir: Path, main: Source, dependencies: Sequence[DependencyPlan], *,
                      component_id: str, bounds: encoder.Bounds = encoder.DEFAULT_BOUNDS) -> Source:
    """`main` with its dependencies composed in. Raises LoadError naming the component and reason."""
    field = f"components.{component_id}.dependencies"
    if main.kind != "component":
        raise LoadError(f"component '{component_id}' is a core module that tauon runs through its own "
                        "Spin 1.x or WAGI executor, so it cannot be composed with dependencies",
                        field=field, hint="build it as a component (or with wit-bindgen 0.5 or later)")
    sources = [(dep, _dependency_source(cache_dir, dep, component_id, bounds)) for dep in dependencies]
    key = _key(main, sources)
    cached = cached_artifact(cache_dir, key)
    if cached is not None:  # a warm restart stops here: no process to start
        return cached
    with key_lock(key):
        cached = cached_artifact(cache_dir, key)
        if cached is not None:
            return cached
        deps = [_inspect(dep, source, component_id, bounds) for dep, source in sources]
        imports, _ = _world(main.path, f"component '{component_id}'", bounds)
        arguments = _match(imports, deps, component_id)
        composed = _encode(main, deps, arguments, component_id, bounds)
        log.info("component '%s': composed with %d dependenc%s (%d bytes)", component_id, len(deps),
                 "y" if len(deps) == 1 else "ies", len(composed))
        return store_artifact(cache_dir, key, composed)


def _dependency_source(cache_dir: Path, dep: DependencyPlan, component_id: str,
                       bounds: encoder.Bounds) -> Source:
    what = f"dependency '{dep.name}' of component '{component_id}'"
    try:
        parse_dependency_name(dep.name)
    except ValueError as exc:
        raise LoadError(f"{what}: {exc}", field=f"components.{component_id}.dependencies") from None
    source = prepare_source(cache_dir, Path(dep.wasm_path), dep.wasm_digest, component_id=component_id,
                            bounds=bounds, dependency=dep.name)
    if source.kind != "component":
        raise LoadError(f"{what} is a core module that cannot be made a component (no wit-bindgen "
                        "0.5+ metadata)", field=f"components.{component_id}.dependencies.{dep.name}",
                        hint="build the dependency as a component")
    return source


def _inspect(dep: DependencyPlan, source: Source, component_id: str, bounds: encoder.Bounds) -> _Prepared:
    imports, exports = _world(source.path, f"dependency '{dep.name}' of component '{component_id}'", bounds)
    return _Prepared(dep, source, imports, exports)


def _world(path: Path, what: str, bounds: encoder.Bounds) -> tuple[list[str], list[str]]:
    try:
        return world_names(encoder.run(["component", "wit", path], what="wasm-tools component wit",
                                       bounds=bounds))
    except encoder.EncoderError as exc:
        raise LoadError(f"{what}: cannot read its imports and exports: {exc}") from None


def _key(main: Source, deps: Sequence[tuple[DependencyPlan, Source]]) -> str:
    parts = ["compose", FORMAT, main.digest, encoder.adapter_digest(encoder.DENY_ADAPTER), encoder.version()]
    for dep, source in sorted(deps, key=lambda d: d[0].name):
        inherit = dep.inherit if isinstance(dep.inherit, str) else ",".join(dep.inherit)
        parts += [dep.name, source.digest, dep.export or "", inherit]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _match(imports: list[str], deps: Sequence[_Prepared], component_id: str) -> dict[str, tuple[int, str]]:
    """import name -> (dependency index, export name), refusing what Spin's composer refuses."""
    field = f"components.{component_id}.dependencies"
    claimed: dict[str, list[int]] = {}
    for index, dep in enumerate(deps):
        name = parse_dependency_name(dep.plan.name)
        matched = [imp for imp in imports if matches_import(name, imp)]
        if not matched:
            raise LoadError(f"dependency '{dep.plan.name}' doesn't match any imports of component "
                            f"'{component_id}'", field=field,
                            hint=f"its imports are: {', '.join(imports) or 'none'}")
        for imp in matched:
            claimed.setdefault(imp, []).append(index)
    conflicts = {imp: idx for imp, idx in claimed.items() if len(idx) > 1}
    if conflicts:
        text = "; ".join(f"import '{imp}' satisfied by dependencies: '"
                         + ", ".join(deps[i].plan.name for i in idx) + "'"
                         for imp, idx in sorted(conflicts.items()))
        raise LoadError(f"component '{component_id}' has dependency conflicts: {text}", field=field)
    arguments: dict[str, tuple[int, str]] = {}
    for imp, (index,) in claimed.items():
        dep = deps[index]
        export = dep.plan.export or imp
        if export not in dep.exports:
            raise LoadError(f"dependency '{dep.plan.name}' doesn't export '{export}' to satisfy import "
                            f"'{imp}'", field=field,
                            hint=f"it exports: {', '.join(dep.exports) or 'nothing'}")
        arguments[imp] = (index, export)
    return arguments


def _config(main_imports: dict[str, tuple[int, str]], deps: Sequence[_Prepared], inputs: Path,
            component_id: str) -> dict[str, object]:
    """wasm-compose's configuration: the root instantiated with the dependencies' exports, each
    dependency instantiated with the deny adapter's exports where it does not inherit."""
    dependencies: dict[str, object] = {"deny": {"path": str(encoder.adapter_path(encoder.DENY_ADAPTER))}}
    instantiations: dict[str, object] = {}
    for index, dep in enumerate(deps):
        path = inputs / f"{index}.wasm"
        path.symlink_to(dep.source.path.resolve())
        dependencies[f"dependency-{index}"] = {"path": str(path)}
        denied = deny_plan(dep.imports, dep.plan.inherit,
                           what=f"dependency '{dep.plan.name}' of component '{component_id}'")
        arguments = {imp: {"instance": f"deny-{index}", "export": export} for imp, export in denied.items()}
        instantiations[f"instance-{index}"] = {"dependency": f"dependency-{index}", "arguments": arguments}
        if denied:
            instantiations[f"deny-{index}"] = {"dependency": "deny"}
    instantiations["root"] = {"arguments": {
        imp: {"instance": f"instance-{index}", "export": export}
        for imp, (index, export) in main_imports.items()}}
    return {"dependencies": dependencies, "instantiations": instantiations}


def _encode(main: Source, deps: Sequence[_Prepared], arguments: dict[str, tuple[int, str]],
            component_id: str, bounds: encoder.Bounds) -> bytes:
    with tempfile.TemporaryDirectory(prefix="tauon-compose-") as tmp:
        inputs, work = Path(tmp, "inputs"), Path(tmp, "work")
        inputs.mkdir()
        work.mkdir()  # empty: wasm-compose looks for components named like imports in its directory
        config = work / "compose.yml"
        config.write_text(json.dumps(_config(arguments, deps, inputs, component_id)))  # JSON is YAML
        out = Path(tmp, "composed.wasm")
        try:
            encoder.run(["compose", "--quiet", "--search-path", work, "-c", config, "-o", out,
                         main.path.resolve()],
                        what="wasm-tools compose", bounds=bounds, cwd=work)
        except encoder.EncoderError as exc:
            raise LoadError(
                f"component '{component_id}': composing it with its dependencies failed: {exc}",
                field=f"components.{component_id}.dependencies",
                hint="a dependency's export must have the type of the import it satisfies") from None
        return out.read_bytes()
