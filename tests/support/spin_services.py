"""Real tauon services (variables, key-value, SQLite on a state dir) for a one-component app, and a
HostState around them, for calling the Spin host interfaces directly."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tauon.app.allowed_hosts import AllowedHosts, parse_allowed_hosts
from tauon.app.lockparts import parse_component_meta
from tauon.app.plan import ComponentPlan, GenerationPlan
from tauon.hostif.state import HostConfig, HostState
from tauon.services import AppServices, ComponentServices

LOGGER = "tauon.test.spin-interfaces"


def plan(*, state_dir: Path | None, component: ComponentPlan, variables: Mapping[str, str] | None = None,
         app_variables: Mapping[str, Any] | None = None) -> GenerationPlan:
    return GenerationPlan(
        app_id="app.json", reference="registry.test/app:v1", digest="sha256:" + "0" * 64, name="app",
        version="1", triggers=(), components={component.id: component},
        state_dir=str(state_dir) if state_dir is not None else None,
        variables=dict(variables or {}), app_variables=dict(app_variables or {}))


def component(*, config: Mapping[str, str] | None = None, **metadata: Any) -> ComponentPlan:
    return ComponentPlan(id="web", wasm_path="/nonexistent.wasm", wasm_digest="sha256:" + "1" * 64,
                         config=dict(config or {}),
                         metadata=parse_component_meta(metadata, "metadata"))


@contextlib.contextmanager
def app_services(state_dir: Path | None, comp: ComponentPlan, *, variables: Mapping[str, str] | None = None,
                 app_variables: Mapping[str, Any] | None = None,
                 env: Mapping[str, str] | None = None) -> Iterator[ComponentServices]:
    services = AppServices.open(plan(state_dir=state_dir, component=comp, variables=variables,
                                     app_variables=app_variables), env or {})
    try:
        yield services.component(comp)
    finally:
        services.close()


def host_state(services: ComponentServices | None, *, allowed: list[str] | None = None) -> HostState:
    hosts: AllowedHosts | None = parse_allowed_hosts(allowed) if allowed is not None else None
    config = HostConfig(label="app.json/web", logger=logging.getLogger(LOGGER), allowed_hosts=hosts,
                        services=services)
    return HostState(config, timeout=10.0)
