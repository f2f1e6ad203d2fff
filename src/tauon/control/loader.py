"""A pulled app + its app file -> a GenerationPlan (plain data the data plane builds from).

Validates the locked app as Spin's loader and HTTP trigger do, resolves the cached paths of each
component's wasm and files, and the app's state directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote, urlparse

from tauon.app.lockedapp import LockedApp, parse_locked_app
from tauon.app.lockparts import Dependency, LockedComponent
from tauon.app.plan import (
    ComponentPlan,
    DependencyPlan,
    GenerationPlan,
    RedisTriggerPlan,
    StaticResponsePlan,
    TriggerPlan,
)
from tauon.control.spec import AppSpec
from tauon.errors import LoadError, TauonError
from tauon.model.mount import Mount
from tauon.registry import PulledApp

log = logging.getLogger("tauon.app")


def _file_path(uri: str | None, where: str) -> str:
    if not uri:
        raise LoadError("has no local source after the pull", field=where,
                        hint="the image is incomplete; push it again")
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        raise LoadError(f"source {uri!r} is not a local file after the pull", field=where)
    return unquote(parsed.path)


def _component_plan(component: LockedComponent, where: str) -> ComponentPlan:
    source = component.source.content
    wasm_path = _file_path(source.source, f"{where}.source")
    if not source.digest:
        raise LoadError("has no digest", field=f"{where}.source",
                        hint="the image is incomplete; push it again")
    mounts: list[Mount[str]] = []
    for i, entry in enumerate(component.files):
        host = _file_path(entry.source.source, f"{where}.files[{i}]")
        if not Path(host).is_dir():
            raise LoadError(f"mount source {host} is not a directory", field=f"{where}.files[{i}]")
        mounts.append(Mount(source=host, guest_path=entry.guest_path or "/"))
    return ComponentPlan(
        id=component.id,
        wasm_path=wasm_path,
        wasm_digest=source.digest,
        env=dict(component.env),
        mounts=tuple(mounts),
        config=dict(component.config),
        metadata=component.meta,
        dependencies=tuple(_dependency_plan(name, dep, f"{where}.dependencies.{name}")
                           for name, dep in component.dependencies.items()),
    )


def _dependency_plan(name: str, dep: Dependency, where: str) -> DependencyPlan:
    content = dep.source.content
    if not content.digest:
        raise LoadError("has no digest", field=f"{where}.source",
                        hint="the image is incomplete; push it again")
    return DependencyPlan(name=name, wasm_path=_file_path(content.source, f"{where}.source"),
                          wasm_digest=content.digest, export=dep.export, inherit=dep.inherit)


def refuse_middleware(locked: LockedApp) -> None:
    """Spin composes `trigger_dependencies` (HTTP middleware) only for wasi:http 0.3 (spin-spec §4.7);
    tauon runs those components but does not compose middleware yet, so an app that has some is
    refused rather than served without it."""
    for i, component in enumerate(locked.components):
        if any(component.trigger_dependencies.values()):
            raise LoadError(
                f"component '{component.id}' has trigger_dependencies (HTTP middleware), which tauon "
                "does not run: Spin composes middleware only for wasi:http/handler@0.3 (WASIp3) "
                "components, and tauon does not compose middleware for them yet",
                field=f"components[{i}].trigger_dependencies",
                hint="remove the middleware, or serve this app with Spin")
    for trigger in locked.triggers:
        if any(trigger.trigger_dependencies.values()):
            raise LoadError(
                f"trigger '{trigger.id}' has trigger_dependencies (HTTP middleware), which tauon does "
                "not run (WASIp3 only)", field=f"triggers[{trigger.index}].trigger_dependencies",
                hint="remove the middleware, or serve this app with Spin")


def _triggers(locked: LockedApp) -> tuple[TriggerPlan, ...]:
    out: list[TriggerPlan] = []
    for trigger in locked.triggers:
        cfg = trigger.config
        static = None
        if cfg.static_response is not None:
            sr = cfg.static_response
            static = StaticResponsePlan(status=sr.status, headers=tuple(sr.headers),
                                        body=sr.body.encode() if sr.body is not None else None)
        out.append(TriggerPlan(id=trigger.id, route=cfg.route, component=cfg.component,
                               static_response=static, executor=cfg.executor, wagi_argv=cfg.argv))
    return tuple(out)


def _redis_triggers(locked: LockedApp) -> tuple[RedisTriggerPlan, ...]:
    return tuple(RedisTriggerPlan(id=t.id, component=t.config.component, channel=t.config.channel,
                                  address=t.config.address if t.config.address is not None
                                  else locked.redis_address)
                 for t in locked.redis_triggers)


def _check_address(spec: AppSpec, locked: LockedApp) -> None:
    """An app with HTTP triggers needs an address; a Redis-only app ignores one (it binds nothing)."""
    http = bool(locked.triggers) or not locked.redis_triggers
    if http and spec.address is None:
        what = "HTTP triggers" if locked.triggers else "no triggers"
        raise LoadError(f"the app in {spec.reference} has {what}, so it needs an address to listen on",
                        file=spec.id, field="address", hint='add e.g. "address": "127.0.0.1:8080"')
    if not http and spec.address is not None:
        log.warning("%s: the app has only Redis triggers: address %s is not bound (it stays reserved "
                    "for this file)", spec.id, spec.address)


def load_plan(spec: AppSpec, pulled: PulledApp, *, state_root: Path) -> GenerationPlan:
    try:
        locked = parse_locked_app(pulled.locked)
    except TauonError as exc:
        where = f"the locked app in {spec.reference}" + (f", {exc.field}" if exc.field else "")
        raise LoadError(f"{where}: {exc.message}", file=spec.id,
                        hint=exc.hint or "fix the app and push it again") from None
    for warning in locked.warnings:
        log.warning("%s: %s", spec.id, warning)
    try:
        refuse_middleware(locked)
    except TauonError as exc:
        raise LoadError(f"the locked app in {spec.reference}, {exc.field}: {exc.message}", file=spec.id,
                        hint=exc.hint) from None
    _check_address(spec, locked)
    if spec.runtime is not None:  # as Spin's "Using runtime config [...] from ..." (no secrets in it)
        log.info("%s: using runtime config %s from %s", spec.id, spec.runtime.summary(), spec.runtime.file)
    used = {t.config.component for t in locked.triggers if t.config.component is not None}
    used |= {t.config.component for t in locked.redis_triggers}
    components = {}
    for i, component in enumerate(locked.components):
        if component.id in used:
            try:
                components[component.id] = _component_plan(component, f"components[{i}]")
            except TauonError as exc:
                raise LoadError(f"the locked app in {spec.reference}, {exc.field}: {exc.message}",
                                file=spec.id, hint=exc.hint) from None
    state_dir: str | None = None
    # The app file's state_dir wins, as `spin up --state-dir` wins over the runtime config's.
    chosen = spec.state_dir if spec.state_dir is not None else \
        spec.runtime.state_dir if spec.runtime is not None else None
    if chosen is not None:
        path = state_root / chosen  # an absolute state_dir replaces the root
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoadError(f"cannot create state directory {path}: {exc.strerror}", file=spec.id,
                            field="state_dir", hint="check permissions, or pick another directory") from None
        state_dir = str(path)
    return GenerationPlan(
        app_id=spec.id,
        reference=spec.reference,
        digest=pulled.digest,
        name=locked.name,
        version=locked.version,
        triggers=_triggers(locked),
        components=components,
        limits=spec.limits,
        state_dir=state_dir,
        variables=dict(spec.variables),
        app_variables={name: {"default": v.default, "secret": v.secret} for name, v in
                       locked.variables.items()},
        self_origin=(spec.address.loopback_host(), spec.address.port) if spec.address else None,
        redis_triggers=_redis_triggers(locked),
        runtime_config=spec.runtime,
        cache_refs=tuple(sorted(pulled.refs)),
        cache_assets=pulled.assets,
    )
