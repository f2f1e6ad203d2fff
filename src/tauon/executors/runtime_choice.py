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
