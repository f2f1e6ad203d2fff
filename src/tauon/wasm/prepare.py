"""The one step between a component's plan and its compilation: componentize (componentize.py) and
compose its dependencies (compose.py), as Spin's loader does, so the executors see one component."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tauon.app.plan import ComponentPlan
from tauon.wasm.componentize import prepare_source
from tauon.wasm.compose import compose_component


def prepare_component(cache_dir: Path, component: ComponentPlan) -> ComponentPlan:
    """`component` with its wasm replaced by what tauon runs (and no dependencies left to compose).
    Raises LoadError naming the component and what went wrong."""
    source = prepare_source(cache_dir, Path(component.wasm_path), component.wasm_digest,
                            component_id=component.id)
    if component.dependencies:
        source = compose_component(cache_dir, source, component.dependencies, component_id=component.id)
    elif source.path == Path(component.wasm_path):
        return component
    return dataclasses.replace(component, wasm_path=str(source.path), wasm_digest=source.digest,
                               dependencies=())
