"""Build the handler a Redis trigger's component needs (Spin's trigger-redis `HandlerType`).

A component must export `fermyon:spin/inbound-redis` (Spin's v1/v2 interface); Spin 3's async
`spin:redis/inbound-redis@3.x` is refused like WASIp3 HTTP handlers. A core module exporting
`handle-redis-message` (Spin 1.x) runs through the core ABI. Building includes a trial instantiation,
so a component tauon cannot instantiate is a LoadError naming the reason, not a failure per message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import wasmtime

from tauon.app.plan import ComponentPlan, Limits
from tauon.errors import LoadError
from tauon.executors.base import check_mounts
from tauon.executors.redis_component import ASYNC_EXPORT, EXPORT, RedisComponentHandler, RedisHandler
from tauon.executors.redis_legacy import RedisLegacyHandler, is_legacy_redis_module
from tauon.executors.select import _trial, allowed_hosts_of, component_exports
from tauon.hostif.linker import build_linker, split_name
from tauon.hostif.state import HostConfig
from tauon.services import AppServices
from tauon.wasm.component._capi import check_version
from tauon.wasm.component.cache import compile_component
from tauon.wasm.engine import WasmEngine


def select_redis_export(exports: list[str], *, component_id: str) -> None:
    """Check that `exports` hold exactly Spin's synchronous Redis handler. Raises LoadError."""
    field = f"components.{component_id}.source"
    async_exports = [name for name in exports if split_name(name)[0] == ASYNC_EXPORT]
    if EXPORT in exports and async_exports:
        raise LoadError(f"component '{component_id}' exports multiple Redis interfaces: {EXPORT}, "
                        f"{', '.join(async_exports)}", field=field,
                        hint="build the component with exactly one Redis handler export")
    if async_exports:
        raise LoadError(
            f"component '{component_id}' exports {async_exports[0]} (component-model async), which "
            "tauon cannot host: the wasmtime Python binding has no component-model async support",
            field=field, hint=f"build the component for {EXPORT} (e.g. spin-sdk 3.x for Python, "
                              "world spin-redis)")
    if EXPORT not in exports:
        raise LoadError(
            f"component '{component_id}' is used by a Redis trigger but does not export a Redis "
            f"interface (it exports: {', '.join(exports) or 'nothing'})", field=field,
            hint=f"a Redis component must export {EXPORT} (handle-message), or be a Spin 1.x module "
                 "exporting handle-redis-message")


def build_redis_handler(*, app_id: str, component: ComponentPlan, engine: WasmEngine, limits: Limits,
                        limiter: anyio.CapacityLimiter, logger: logging.Logger, services: AppServices,
                        app_components: Sequence[str] = (),
                        resolve: Callable[[str], str] | None = None) -> RedisHandler:
    field = f"components.{component.id}.source"
    path = Path(component.wasm_path)
    check_mounts(component)
    if engine.classify(path) == "module":
        module = engine.compile_module(path, component.wasm_digest)
        if not is_legacy_redis_module(module):
            raise LoadError(f"component '{component.id}' is a core wasm module that does not export "
                            "handle-redis-message", field=field,
                            hint="a Redis trigger runs Spin 1.x modules exporting handle-redis-message, or "
                                 f"components exporting {EXPORT}")
        return RedisLegacyHandler(app_id=app_id, component=component, module=module, engine=engine,
                                  limits=limits, limiter=limiter, logger=logger, services=services)
    check_version()
    compiled = compile_component(engine, path, component.wasm_digest)
    select_redis_export(component_exports(compiled, engine.engine), component_id=component.id)
    config = HostConfig(
        label=f"{app_id}/{component.id}",
        logger=logger,
        env=tuple(component.env.items()),
        mounts=component.mounts,
        allowed_hosts=allowed_hosts_of(component, component_ids=app_components, resolve=resolve),
        outbound_timeout=min(30.0, limits.request_timeout),
        services=services.component(component),
    )
    try:
        linked = build_linker(engine.engine, compiled)
    except (RuntimeError, wasmtime.WasmtimeError) as exc:
        raise LoadError(f"component '{component.id}' cannot be linked: {exc}", field=field) from exc
    _trial(engine, compiled, linked, config, limits, component.id)
    return RedisComponentHandler(app_id=app_id, component_id=component.id, component=compiled,
                                 linked=linked, engine=engine, limits=limits, limiter=limiter,
                                 config=config)
