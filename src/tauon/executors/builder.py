"""`executors.build`: the one place a trigger's executor is chosen (spin-spec §4.1, §4.6) and built.

An HTTP trigger gets WAGI (a `_start` module or a wasi:cli/run component), a Spin 1.x module exporting
handle-http-request, or a component executor chosen by its exports; a Redis trigger gets its Redis
handler (Spin's trigger-redis `HandlerType`). Building a component includes one trial instantiation in
a throw-away Store, so a component that cannot be instantiated (an import tauon cannot satisfy, a trap
in its start-up code) is a LoadError at load time naming the reason, not a failure per request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import anyio
import wasmtime
from wasmtime.component import Component

from tauon.app.plan import ComponentPlan, GenerationPlan, InstanceReuse, Limits, RedisTriggerPlan, TriggerPlan
from tauon.errors import LoadError
from tauon.executors.allowed import allowed_hosts_of
from tauon.executors.base import Executor, ExecutorSetup, check_mounts
from tauon.executors.context import BuildContext
from tauon.executors.oneshot import GuestRunner, Trap, trial_instantiate
from tauon.executors.redis_component import EXPORT as REDIS_EXPORT
from tauon.executors.redis_component import FUNCTION as REDIS_FUNCTION
from tauon.executors.redis_component import RedisComponentHandler, RedisHandler
from tauon.executors.redis_legacy import RedisLegacyHandler, is_legacy_redis_module
from tauon.executors.runtime_choice import choose_runner, p3_runner
from tauon.executors.select import (
    SPIN_INBOUND,
    WASI_HTTP_03,
    component_exports,
    select_command,
    select_handler,
    select_redis_export,
)
from tauon.executors.spin_inbound import EXPORT as SPIN_EXPORT
from tauon.executors.spin_inbound import FUNCTION as SPIN_FUNCTION
from tauon.executors.spin_inbound import SpinInboundExecutor
from tauon.executors.spin_legacy import SpinLegacyExecutor, is_legacy_spin_module
from tauon.executors.wagi import WagiExecutor
from tauon.executors.wagi_component import WagiComponentExecutor
from tauon.executors.wasi_http import WasiHttpExecutor
from tauon.executors.wasi_http_p3 import WasiHttpP3Executor
from tauon.hostif.http_pool import HttpPool
from tauon.hostif.linker import LinkedComponent, build_linker
from tauon.hostif.state import ChainTarget, HostConfig
from tauon.services import ComponentServices
from tauon.wasm.component._capi import check_version
from tauon.wasm.component.cache import compile_component
from tauon.wasm.component.importkey import import_key
from tauon.wasm.engine import WasmEngine


def build_executor(plan: GenerationPlan, trigger: TriggerPlan | RedisTriggerPlan,
                   context: BuildContext) -> Executor | RedisHandler:
    """`tauon.executors.build` (typed there)."""
    if isinstance(trigger, RedisTriggerPlan):
        return _redis_handler(plan, plan.components[trigger.component], context)
    assert trigger.component is not None
    component = plan.components[trigger.component]
    if context.engine.classify(Path(component.wasm_path)) == "module":
        return _core_module_executor(plan, trigger, component, context)
    services = context.services()
    return build_component_executor(
        app_id=plan.app_id, component=component, engine=context.engine, limits=plan.limits,
        limiter=context.limiter, logger=context.logger, trigger_executor=trigger.executor,
        wagi_argv=trigger.wagi_argv, services=services.component(component), chain=context.chain,
        self_origin=plan.self_origin, self_scheme="https" if plan.tls else "http",
        app_components=tuple(plan.components), resolve=services.resolver.resolve,
        component_runtime=plan.component_runtime, instance_reuse=plan.instance_reuse)


def _core_module_executor(plan: GenerationPlan, trigger: TriggerPlan, component: ComponentPlan,
                          context: BuildContext) -> Executor:
    setup = _setup(plan, component, context)
    module = context.engine.compile_module(Path(component.wasm_path), component.wasm_digest)
    wagi = trigger.executor == "wagi"
    if not wagi and is_legacy_spin_module(module):
        return SpinLegacyExecutor(setup, component=component, module=module, services=context.services())
    if not wagi and not any(export.name == "_start" for export in module.exports):
        raise LoadError(
            f"component '{component.id}' is a core wasm module that exports neither handle-http-request "
            "nor _start",
            field=f"components.{component.id}.source",
            hint="core modules run as WAGI (executor = { type = \"wagi\" }) or as Spin 1.x handlers "
            "(exporting handle-http-request); HTTP handlers are otherwise components exporting "
            "wasi:http/incoming-handler",
        )
    if not wagi:
        # Spin adapts a plain `_start` module as a preview1 command (spin-spec §4.6 case 2), which
        # only the WAGI executor can run: serve it as WAGI instead of refusing it.
        context.logger.info("%s/%s: a core module with _start and no HTTP handler: serving it as WAGI",
                            plan.app_id, component.id)
    return WagiExecutor(setup, component=component, module=module, argv_template=trigger.wagi_argv)


def _setup(plan: GenerationPlan, component: ComponentPlan, context: BuildContext) -> ExecutorSetup:
    return ExecutorSetup(plan.app_id, component.id, context.engine, plan.limits, context.limiter,
                         context.logger)


def _link(engine: WasmEngine, compiled: Component, component: ComponentPlan) -> LinkedComponent:
    try:
        return build_linker(engine.engine, compiled, import_key=import_key(Path(component.wasm_path)))
    except (RuntimeError, wasmtime.WasmtimeError) as exc:
        raise LoadError(f"component '{component.id}' cannot be linked: {exc}",
                        field=f"components.{component.id}.source") from exc


def build_component_executor(*, app_id: str, component: ComponentPlan, engine: WasmEngine, limits: Limits,
                             limiter: anyio.CapacityLimiter, logger: logging.Logger,
                             trigger_executor: str, wagi_argv: str,
                             services: ComponentServices | None = None, chain: ChainTarget | None = None,
                             self_origin: tuple[str, int] | None = None, self_scheme: str = "http",
                             app_components: tuple[str, ...] = (),
                             resolve: Callable[[str], str] | None = None,
                             component_runtime: str = "wasmtime",
                             instance_reuse: InstanceReuse | None = None) -> Executor:
    """Compile (or load from the cache) a component and build the executor its exports call for.
    `services`: the component's view of the app's variables, key-value stores and databases.
    `component_runtime`: 'tauon' runs it with tauon's own component runtime where that can.
    `instance_reuse`: how a WASIp3 handler's instances are kept between requests (default: Spin's)."""
    check_version()
    check_mounts(component)
    compiled = compile_component(engine, Path(component.wasm_path), component.wasm_digest)
    exports = component_exports(compiled, engine.engine)
    if trigger_executor == "wagi":
        kind, export = "wagi", select_command(exports, component_id=component.id)
    else:
        kind, export = select_handler(exports, component_id=component.id)
    config = HostConfig(
        label=f"{app_id}/{component.id}", logger=logger, env=tuple(component.env.items()),
        mounts=component.mounts,
        allowed_hosts=allowed_hosts_of(component, component_ids=app_components, resolve=resolve),
        outbound_timeout=limits.request_timeout, services=services, chain=chain,
        self_origin=self_origin, self_scheme=self_scheme,
        http_pool=HttpPool(enabled=None if services is None or services.http_pooling else False))
    setup = ExecutorSetup(app_id, component.id, engine, limits, limiter, logger)
    if kind == WASI_HTTP_03:  # component-model async: only tauon's own runtime hosts it
        p3 = p3_runner(engine=engine, component=component, export=export)
        _trial(engine, p3, config, limits, component.id)
        return WasiHttpP3Executor(setup, component=compiled, export=export, runner=p3, config=config,
                                  reuse=_p3_reuse(export, instance_reuse or InstanceReuse()))
    linked = _link(engine, compiled, component)
    entries = {"wagi": (export, "run"), SPIN_INBOUND: (SPIN_EXPORT, SPIN_FUNCTION)}
    entry = entries.get(kind, (export, "handle"))
    runner = choose_runner(component_runtime, engine=engine, component=component, compiled=compiled,
                           linked=linked, entry=entry, logger=logger, app_id=app_id)
    _trial(engine, runner, config, limits, component.id)
    if kind == "wagi":
        return WagiComponentExecutor(setup, component=compiled, export=export, linked=linked, config=config,
                                     component_env=component.env, argv_template=wagi_argv, runner=runner)
    if kind == SPIN_INBOUND:
        return SpinInboundExecutor(setup, component=compiled, linked=linked, config=config, runner=runner)
    return WasiHttpExecutor(setup, component=compiled, export=export, linked=linked, config=config,
                            runner=runner)


def _p3_reuse(export: str, reuse: InstanceReuse) -> InstanceReuse:
    """Spin reuses instances of the final wasi:http 0.3 handler only; a release candidate's get a
    fresh instance per request (spin-spec §3.7)."""
    return reuse if "-rc-" not in export else InstanceReuse(max_requests=1)


def _redis_handler(plan: GenerationPlan, component: ComponentPlan, context: BuildContext) -> RedisHandler:
    engine, limits, services = context.engine, plan.limits, context.services()
    path = Path(component.wasm_path)
    check_mounts(component)
    if engine.classify(path) == "module":
        module = engine.compile_module(path, component.wasm_digest)
        if not is_legacy_redis_module(module):
            raise LoadError(f"component '{component.id}' is a core wasm module that does not export "
                            "handle-redis-message", field=f"components.{component.id}.source",
                            hint="a Redis trigger runs Spin 1.x modules exporting handle-redis-message, or "
                                 f"components exporting {REDIS_EXPORT}")
        return RedisLegacyHandler(_setup(plan, component, context), component=component, module=module,
                                  services=services)
    check_version()
    compiled = compile_component(engine, path, component.wasm_digest)
    select_redis_export(component_exports(compiled, engine.engine), component_id=component.id)
    config = HostConfig(
        label=f"{plan.app_id}/{component.id}", logger=context.logger, env=tuple(component.env.items()),
        mounts=component.mounts,
        allowed_hosts=allowed_hosts_of(component, component_ids=tuple(plan.components),
                                       resolve=services.resolver.resolve),
        outbound_timeout=min(30.0, limits.request_timeout), services=services.component(component))
    linked = _link(engine, compiled, component)
    runner = choose_runner(plan.component_runtime, engine=engine, component=component, compiled=compiled,
                           linked=linked, entry=(REDIS_EXPORT, REDIS_FUNCTION), logger=context.logger,
                           app_id=plan.app_id)
    _trial(engine, runner, config, limits, component.id)
    return RedisComponentHandler(_setup(plan, component, context), component=compiled, linked=linked,
                                 config=config, runner=runner)


def _trial(engine: WasmEngine, runner: GuestRunner, config: HostConfig, limits: Limits,
           component_id: str) -> None:
    try:
        trial_instantiate(engine, runner, config, limits)
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
