"""Choose a component's executor from its exports (spin-spec §4.1) and build it.

Building includes one trial instantiation in a throw-away Store, so a component that cannot be
instantiated (an import tauon cannot satisfy, a trap in its start-up code) is a LoadError at load time
naming the reason, not a 500 on every request.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import wasmtime
from wasmtime.component import Component

from tauon.app.allowed_hosts import AllowedHosts, parse_allowed_hosts
from tauon.app.plan import ComponentPlan, Limits
from tauon.errors import LoadError
from tauon.executors.base import Executor, check_mounts
from tauon.executors.oneshot import Trap, trial_instantiate
from tauon.executors.spin_inbound import SpinInboundExecutor
from tauon.executors.wagi_component import WagiComponentExecutor
from tauon.executors.wasi_http import WasiHttpExecutor
from tauon.hostif.http_pool import HttpPool
from tauon.hostif.linker import LinkedComponent, build_linker, split_name, supported_version
from tauon.hostif.state import ChainTarget, HostConfig, Mount
from tauon.services import ComponentServices
from tauon.services.variables import VariableError
from tauon.wasm.component._capi import check_version
from tauon.wasm.component.cache import compile_component
from tauon.wasm.engine import WasmEngine

WASI_HTTP_02 = "wasi-http-0.2"
WASI_HTTP_RC = "wasi-http-rc"
WASI_HTTP_03 = "wasi-http-0.3"
SPIN_INBOUND = "spin-inbound-http"
RC_VERSIONS = ("0.2.0-rc-2023-10-18", "0.2.0-rc-2023-11-10")
EXPECTED = ("wasi:http/incoming-handler@0.2.x (any 0.2 patch), "
            "wasi:http/incoming-handler@0.2.0-rc-2023-10-18, "
            "wasi:http/incoming-handler@0.2.0-rc-2023-11-10, wasi:http/handler@0.3.x, "
            "fermyon:spin/inbound-http")


def handler_kind(export: str) -> str | None:
    """The handler ABI an export name stands for, or None if it is not an HTTP handler."""
    if export == "fermyon:spin/inbound-http":
        return SPIN_INBOUND
    base, version = split_name(export)
    if base == "wasi:http/incoming-handler" and version is not None:
        if version in RC_VERSIONS:
            return WASI_HTTP_RC
        if re.fullmatch(r"0\.2\.\d+", version):
            return WASI_HTTP_02
    if base == "wasi:http/handler" and version is not None and version.startswith("0.3."):
        return WASI_HTTP_03
    return None


def select_handler(exports: list[str], *, component_id: str) -> tuple[str, str]:
    """(kind, export name) of the one HTTP handler among `exports`. Raises LoadError."""
    field = f"components.{component_id}.source"
    found = [(kind, name) for name in exports if (kind := handler_kind(name)) is not None]
    if not found:
        raise LoadError(
            f"component '{component_id}' exports no HTTP handler (it exports: "
            f"{', '.join(exports) or 'nothing'})", field=field,
            hint=f"an HTTP component must export one of: {EXPECTED}")
    if len({kind for kind, _ in found}) > 1 or len(found) > 1:
        raise LoadError(
            f"component '{component_id}' exports multiple different handlers: "
            f"{', '.join(name for _, name in found)}", field=field,
            hint="build the component with exactly one HTTP handler export")
    kind, export = found[0]
    if kind == WASI_HTTP_03:
        raise LoadError(
            f"component '{component_id}' exports {export} (WASIp3, component-model async), which tauon "
            "cannot host: the wasmtime Python binding has no component-model async support", field=field,
            hint="build the component for wasi:http 0.2 (e.g. spin-sdk 3.x for Python, "
                 "wasi:http/proxy@0.2.x worlds), which exports wasi:http/incoming-handler@0.2.x")
    return kind, export


def select_command(exports: list[str], *, component_id: str) -> str:
    """The `wasi:cli/run@0.2.x` export a WAGI component must have. Raises LoadError."""
    for name in exports:
        base, version = split_name(name)
        if base == "wasi:cli/run" and supported_version(version):
            return name
    raise LoadError(
        f"component '{component_id}' is used with the WAGI executor but exports no wasi:cli/run@0.2.x "
        f"(it exports: {', '.join(exports) or 'nothing'})", field=f"components.{component_id}.source",
        hint="a WAGI program must be a WASI command: a module with _start, or a component exporting "
             "wasi:cli/run (e.g. made with the preview1 command adapter)")


def component_exports(component: Component, engine: wasmtime.Engine) -> list[str]:
    return list(component.type.exports(engine))


def allowed_hosts_of(component: ComponentPlan, *, component_ids: Sequence[str] = (),
                     resolve: Callable[[str], str] | None = None) -> AllowedHosts:
    """`component_ids`: the app's components ('*.spin.internal' stands for them); `resolve` renders
    `{{ variable }}` templates in entries."""
    entries = component.metadata.get("allowed_outbound_hosts") or []
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise LoadError("allowed_outbound_hosts must be a list of strings",
                        field=f"components.{component.id}.metadata.allowed_outbound_hosts")
    try:
        return parse_allowed_hosts(entries, component_ids=component_ids, resolve=resolve)
    except VariableError as exc:
        raise LoadError(f"component '{component.id}': allowed_outbound_hosts cannot be resolved: {exc}",
                        field=f"components.{component.id}.metadata.allowed_outbound_hosts",
                        hint="set the variable in the app file's 'variables' or as SPIN_VARIABLE_<NAME>",
                        ) from None
    except LoadError as exc:
        exc.field = exc.field or f"components.{component.id}.metadata.allowed_outbound_hosts"
        raise


def build_component_executor(*, app_id: str, component: ComponentPlan, engine: WasmEngine, limits: Limits,
                             limiter: anyio.CapacityLimiter, logger: logging.Logger,
                             trigger_executor: str, wagi_argv: str,
                             services: ComponentServices | None = None, chain: ChainTarget | None = None,
                             self_origin: tuple[str, int] | None = None, self_scheme: str = "http",
                             app_components: Sequence[str] = (),
                             resolve: Callable[[str], str] | None = None) -> Executor:
    """Compile (or load from the cache) a component and build the executor its exports call for.
    `services`: the component's view of the app's variables, key-value stores and databases."""
    check_version()
    field = f"components.{component.id}.source"
    check_mounts(component)
    compiled = compile_component(engine, Path(component.wasm_path), component.wasm_digest)
    exports = component_exports(compiled, engine.engine)
    if trigger_executor == "wagi":
        kind, export = "wagi", select_command(exports, component_id=component.id)
    else:
        kind, export = select_handler(exports, component_id=component.id)
    config = HostConfig(
        label=f"{app_id}/{component.id}",
        logger=logger,
        env=tuple(component.env.items()),
        mounts=tuple(Mount(m.host_path, m.guest_path) for m in component.mounts),
        allowed_hosts=allowed_hosts_of(component, component_ids=app_components, resolve=resolve),
        outbound_timeout=limits.request_timeout,
        services=services,
        chain=chain,
        self_origin=self_origin,
        self_scheme=self_scheme,
        http_pool=HttpPool(enabled=None if services is None or services.http_pooling else False),
    )
    try:
        linked = build_linker(engine.engine, compiled)
    except (RuntimeError, wasmtime.WasmtimeError) as exc:
        raise LoadError(f"component '{component.id}' cannot be linked: {exc}", field=field) from exc
    if linked.trapping:
        logger.debug("%s/%s: imports that trap when called: %s", app_id, component.id,
                     ", ".join(linked.trapping))
    _trial(engine, compiled, linked, config, limits, component.id)
    if kind == "wagi":
        return WagiComponentExecutor(app_id=app_id, component_id=component.id, component=compiled,
                                     export=export, linked=linked, engine=engine, limits=limits,
                                     limiter=limiter, config=config, component_env=component.env,
                                     argv_template=wagi_argv)
    if kind == SPIN_INBOUND:
        return SpinInboundExecutor(app_id=app_id, component_id=component.id, component=compiled,
                                   linked=linked, engine=engine, limits=limits, limiter=limiter,
                                   config=config)
    return WasiHttpExecutor(app_id=app_id, component_id=component.id, component=compiled, export=export,
                            linked=linked, engine=engine, limits=limits, limiter=limiter, config=config)


def _trial(engine: WasmEngine, compiled: Component, linked: LinkedComponent, config: HostConfig,
           limits: Limits, component_id: str) -> None:
    try:
        trial_instantiate(engine, compiled, linked, config, limits)
    except Trap as exc:
        if exc.host_error is not None:  # start-up code called an import that failed: name it
            reason = str(exc.host_error)
        else:  # wasmtime's multi-line error as one line
            lines = [line.strip() for line in str(exc).splitlines() if line.strip() != "Caused by:"]
            reason = "; ".join(line for line in lines if line)
        raise LoadError(f"component '{component_id}' cannot be instantiated: {reason}",
                        field=f"components.{component_id}.source",
                        hint="the component needs an import tauon does not provide, or its start-up "
                             "code failed; check the imports with `wasm-tools component wit`") from None
