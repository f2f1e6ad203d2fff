"""Which component runtime runs a component: wasmtime's component API (the default) or, with
`--component-runtime tauon`, tauon's own (`tauon.wasm.runtime`), where it supports the component.

A component the new runtime cannot run (a section, builtin or type it does not support yet) is logged
once, naming the app, the component and the feature, and runs on the wasmtime path; so is one whose core
modules its sandboxed compile did not cache.
"""

from __future__ import annotations

import logging
from pathlib import Path

from wasmtime.component import Component

from tauon.app.plan import ComponentPlan
from tauon.errors import LoadError
from tauon.executors.oneshot import GuestRunner, TauonRunner, WasmtimeRunner
from tauon.hostif.linker import LinkedComponent
from tauon.hostif.runtime_link import RuntimeLinks
from tauon.wasm.engine import WasmEngine
from tauon.wasm.runtime.load import load_component
from tauon.wasm.runtime.model import UnsupportedComponent
from tauon.wasm.runtime.tasks import AsyncGuestFunc

RUNTIMES = ("wasmtime", "tauon")


def choose_runner(runtime: str, *, engine: WasmEngine, component: ComponentPlan, compiled: Component,
                  linked: LinkedComponent, entry: tuple[str, str], logger: logging.Logger,
                  app_id: str) -> GuestRunner:
    """The runner of `component`; `entry` is the (interface, function) export its executor calls."""
    fallback = WasmtimeRunner(compiled, engine.engine, linked)
    if runtime != "tauon":
        if linked.trapping:
            logger.debug("%s/%s: imports that trap when called: %s", app_id, component.id,
                         ", ".join(linked.trapping))
        return fallback
    links = RuntimeLinks()
    try:
        runner = TauonRunner(load_component(engine, Path(component.wasm_path), links))
        runner.func(*entry)  # the export exists and its adapter compiles
    except (UnsupportedComponent, LookupError, LoadError) as exc:
        logger.info("%s/%s: the tauon component runtime cannot run this component (%s); it runs on the "
                    "wasmtime path", app_id, component.id, exc)
        return fallback
    logger.debug("%s/%s: runs on the tauon component runtime", app_id, component.id)
    if links.trapping:
        logger.debug("%s/%s: imports that trap when called: %s", app_id, component.id,
                     ", ".join(links.trapping))
    return runner


def p3_runner(*, engine: WasmEngine, component: ComponentPlan, export: str) -> TauonRunner:
    """The runner of a WASIp3 component (`wasi:http/handler@0.3.x`): always tauon's own runtime, the
    only one that hosts component-model async. Raises LoadError naming what it does not support."""
    field = f"components.{component.id}.source"
    try:
        runner = TauonRunner(load_component(engine, Path(component.wasm_path), RuntimeLinks()))
        AsyncGuestFunc(runner.component, export, "handle")
    except (UnsupportedComponent, LookupError) as exc:
        raise LoadError(
            f"component '{component.id}' exports {export} (WASIp3, component-model async), but uses "
            f"something tauon's component runtime does not support yet: {exc}", field=field,
            hint="build the component for wasi:http 0.2 (e.g. spin-sdk 3.x for Python, wasi:http/proxy@0.2.x "
                 "worlds), which exports wasi:http/incoming-handler@0.2.x") from None
    return runner
