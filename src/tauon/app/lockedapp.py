"""The locked app (`spin.lock`, spin-spec §2) as validated, frozen data. Pure: no I/O.

`parse_locked_app(data)` checks what Spin checks when it loads a lock and starts its HTTP trigger,
and raises LoadError whose `field` names the value (`components[2].source`,
`triggers[0].trigger_config.route`). Unknown top-level fields are ignored; `redis` triggers are
parsed (app/redis_triggers.py); any other trigger type is a LoadError (Spin runs it with a plugin
tauon cannot host); warnings come back as data on the result. Sources: spinframework/spin
crates/locked-app/src/locked.rs, crates/http/src/config.rs, crates/trigger-http/src/{lib,server}.rs,
crates/trigger-redis/src/lib.rs, crates/expressions/src/lib.rs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from tauon import boundedjson
from tauon.app.expressions import render_template
from tauon.app.lockparts import (
    ContentRef,
    Dependency,
    LockedComponent,
    LockedComponentSource,
    Variable,
    err,
    frozen,
    opt_str,
    parse_component,
    parse_dependency_lists,
    parse_host_requirements,
    parse_variables,
    req,
    req_list,
    req_obj,
    req_str,
    str_map,
)
from tauon.app.redis_triggers import LockedRedisTrigger, parse_redis_trigger, redis_metadata_address
from tauon.app.routes import Router, route_warnings, validate_route

__all__ = [
    "ContentRef",
    "Dependency",
    "HttpTriggerConfig",
    "LockedApp",
    "LockedComponent",
    "LockedComponentSource",
    "LockedRedisTrigger",
    "LockedTrigger",
    "StaticResponse",
    "Variable",
    "parse_locked_app",
    "parse_locked_app_json",
    "render_template",
]

MUST_UNDERSTAND = ("host_requirements", "component_host_requirements")
SERVED_TRIGGER_TYPES = ("http", "redis")
WAGI_DEFAULT_ARGV = "${SCRIPT_NAME} ${ARGS}"


@dataclass(frozen=True, slots=True)
class StaticResponse:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None


@dataclass(frozen=True, slots=True)
class HttpTriggerConfig:
    route: str | None
    """The route as written; None for `{"private": true}` (reachable by service chaining only)."""
    component: str | None
    static_response: StaticResponse | None = None
    executor: Literal["http", "wagi"] = "http"
    """'http' (pick the handler from the component's exports; 'spin' is an alias) or 'wagi'."""
    argv: str = WAGI_DEFAULT_ARGV
    """WAGI argv template."""


@dataclass(frozen=True, slots=True, eq=False)
class LockedTrigger:
    """An HTTP trigger. `index` is its position in the lock's `triggers` array (for messages)."""

    id: str
    index: int
    config: HttpTriggerConfig
    trigger_dependencies: Mapping[str, tuple[Dependency, ...]] = field(default_factory=lambda: frozen({}))

    @property
    def label(self) -> str:
        """How Spin names the trigger in logs: its component, or its id for a static response."""
        return self.config.component or self.id


@dataclass(frozen=True, slots=True, eq=False)
class LockedApp:
    spin_lock_version: int
    triggers: tuple[LockedTrigger, ...]
    """HTTP triggers only, in lock order."""
    components: tuple[LockedComponent, ...]
    variables: Mapping[str, Variable] = field(default_factory=lambda: frozen({}))
    metadata: Mapping[str, Any] = field(default_factory=lambda: frozen({}))
    must_understand: tuple[str, ...] = ()
    host_requirements: Mapping[str, Any] = field(default_factory=lambda: frozen({}))
    warnings: tuple[str, ...] = ()
    """What Spin would log as warnings (or non-fatal errors) at startup, for the caller to log."""
    redis_triggers: tuple[LockedRedisTrigger, ...] = ()
    """Redis triggers, in lock order."""
    redis_address: str = ""
    """The app's default Redis address template (trigger metadata); '' when it has none."""

    @property
    def name(self) -> str:
        """metadata.name, '' if absent (as /.well-known/spin/info reports it)."""
        value = self.metadata.get("name")
        return value if isinstance(value, str) else ""

    @property
    def version(self) -> str | None:
        value = self.metadata.get("version")
        return value if isinstance(value, str) else None

    @property
    def oci_image_digest(self) -> str | None:
        value = self.metadata.get("oci_image_digest")
        return value if isinstance(value, str) else None

    def component(self, component_id: str) -> LockedComponent:
        """The component with this id; KeyError if there is none."""
        for c in self.components:
            if c.id == component_id:
                return c
        raise KeyError(component_id)

    def route_entries(self) -> list[tuple[str, LockedTrigger]]:
        """(route, trigger) for every routable (non-private) trigger in order: Router.build's input."""
        return [(t.config.route, t) for t in self.triggers if t.config.route is not None]


_HTTP_KEYS = ("component", "static_response", "route", "executor")


def _parse_route(value: Any, where: str, trigger_id: str) -> str | None:
    if isinstance(value, str):
        try:
            validate_route(value)
        except ValueError as e:
            raise err(where, f"invalid route {value!r}: {e}") from None
        return value
    if isinstance(value, dict) and list(value) == ["private"] and isinstance(value["private"], bool):
        if not value["private"]:
            raise err(
                where,
                f"route must be a string pattern or '{{ private = true }}': '{trigger_id}' has "
                "{ private = false }",
            )
        return None
    raise err(where, f'expected a route string or {{"private": true}}, got {value!r}')


def _parse_static_response(value: Any, where: str) -> StaticResponse:
    if not isinstance(value, dict):
        raise err(where, "expected an object")
    status = value.get("status_code")
    if status is None:
        status = 200
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise err(f"{where}.status_code", f"expected an HTTP status code (100-999), got {status!r}")
    headers = str_map(value.get("headers"), f"{where}.headers")
    return StaticResponse(status, tuple(headers.items()), opt_str(value, "body", f"{where}.body"))


def _parse_executor(value: Any, where: str, component: str | None) -> tuple[Literal["http", "wagi"], str]:
    if value is None:
        return "http", WAGI_DEFAULT_ARGV
    if not isinstance(value, dict):
        raise err(where, 'expected an object such as {"type": "http"}')
    kind = value.get("type")
    allowed = {"type"} | ({"argv", "entrypoint"} if kind == "wagi" else set())
    for key in value:
        if key not in allowed:
            raise err(f"{where}.{key}", f"unknown field {key!r} for executor type {kind!r}")
    if kind in ("http", "spin"):
        return "http", WAGI_DEFAULT_ARGV
    if kind != "wagi":
        raise err(f"{where}.type", f"unknown executor type {kind!r}, expected 'http', 'spin' or 'wagi'")
    argv = opt_str(value, "argv", f"{where}.argv")
    entrypoint = opt_str(value, "entrypoint", f"{where}.entrypoint")
    if entrypoint is not None and entrypoint != "_start":
        raise err(
            f"{where}.entrypoint",
            f"Wagi component '{component}' cannot use deprecated 'entrypoint' field",
            hint="remove 'entrypoint' (only '_start' is supported)",
        )
    return "wagi", WAGI_DEFAULT_ARGV if argv is None else argv


def parse_http_trigger_config(value: Any, where: str, trigger_id: str) -> HttpTriggerConfig:
    if not isinstance(value, dict):
        raise err(where, "expected an object")
    for key in value:
        if key not in _HTTP_KEYS:
            raise err(f"{where}.{key}", f"unknown field {key!r}, expected one of {', '.join(_HTTP_KEYS)}")
    route = _parse_route(req(value, "route", f"{where}.route"), f"{where}.route", trigger_id)
    component = opt_str(value, "component", f"{where}.component")
    raw_static = value.get("static_response")
    if (component is None) == (raw_static is None):
        has = "neither" if component is None else "both"
        raise err(
            where, f"Triggers must specify either component or static_response - {trigger_id} has {has}"
        )
    static = None if raw_static is None else _parse_static_response(raw_static, f"{where}.static_response")
    executor, argv = _parse_executor(value.get("executor"), f"{where}.executor", component)
    return HttpTriggerConfig(route, component, static, executor, argv)


def parse_locked_app_json(raw: bytes | str) -> LockedApp:
    """Decode and validate a locked app. Raises LoadError."""
    try:
        data = boundedjson.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise err(None, f"the locked app is not valid JSON: {e}") from None
    return parse_locked_app(data)


def _check_version(data: Mapping[str, Any]) -> int:
    version = req(data, "spin_lock_version", None)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise err("spin_lock_version", f"expected a non-negative integer, got {version!r}")
    if version > 1:
        raise err(
            "spin_lock_version",
            f"invalid version {version} > 1",
            hint="the app was locked by a newer Spin than tauon understands",
        )
    return version


def _check_must_understand(data: Mapping[str, Any]) -> tuple[str, ...]:
    values = data.get("must_understand") or []
    if not isinstance(values, list):
        raise err("must_understand", "expected an array of strings")
    for i, v in enumerate(values):
        if v not in MUST_UNDERSTAND:
            raise err(
                f"must_understand[{i}]",
                f"unknown variant {v!r}, expected one of {', '.join(MUST_UNDERSTAND)}",
                hint="the app needs a host feature tauon does not know",
            )
    return tuple(values)


def _http_base_warnings(metadata: Mapping[str, Any]) -> list[str]:
    """metadata.triggers.http (else legacy metadata.trigger of type http) may only hold `base: "/"`."""
    if "triggers" in metadata:
        triggers = metadata["triggers"]
        if not isinstance(triggers, dict) or "http" not in triggers:
            return []
        where, config = "metadata.triggers.http", triggers["http"]
    else:
        legacy = metadata.get("trigger")
        if not isinstance(legacy, dict) or legacy.get("type") != "http":
            return []
        where, config = "metadata.trigger", {k: v for k, v in legacy.items() if k != "type"}
    if not isinstance(config, dict):
        raise err(where, "expected an object")
    for key in config:
        if key != "base":
            raise err(f"{where}.{key}", f"unknown field {key!r}, expected 'base'")
    base = config.get("base")
    if base is None:
        return []
    if base == "/":
        return [
            "This application has the deprecated trigger 'base' set to the default value '/'. "
            "This may be an error in the future!"
        ]
    raise err(
        f"{where}.base",
        "This application is using the deprecated trigger 'base' field. The base must be prepended "
        "to each [[trigger.http]]'s 'route'.",
    )


def _parse_trigger(raw: Any, i: int, component_ids: set[str]) -> LockedTrigger | LockedRedisTrigger:
    where = f"triggers[{i}]"
    if not isinstance(raw, dict):
        raise err(where, "expected an object")
    trigger_id = req_str(raw, "id", f"{where}.id")
    trigger_type = req_str(raw, "trigger_type", f"{where}.trigger_type")
    config = req(raw, "trigger_config", f"{where}.trigger_config")
    deps = parse_dependency_lists(raw.get("trigger_dependencies"), f"{where}.trigger_dependencies")
    if trigger_type == "redis":
        return parse_redis_trigger(trigger_id, i, config, component_ids)
    if trigger_type != "http":
        raise err(
            f"{where}.trigger_type",
            f"trigger {trigger_id!r} has type {trigger_type!r}, which tauon cannot serve: it serves "
            f"{' and '.join(repr(t) for t in SERVED_TRIGGER_TYPES)} triggers; Spin runs '{trigger_type}' "
            f"triggers with a plugin (`spin trigger {trigger_type}`)",
            hint=f"remove the '{trigger_type}' trigger from the app, or run this app with Spin and its "
                 f"trigger-{trigger_type} plugin",
        )
    http = parse_http_trigger_config(config, f"{where}.trigger_config", trigger_id)
    if http.component is not None and http.component not in component_ids:
        raise err(
            f"{where}.trigger_config.component",
            f"no component {http.component!r} in this app",
            hint=f"its components are: {', '.join(sorted(component_ids)) or '(none)'}",
        )
    return LockedTrigger(trigger_id, i, http, frozen(deps))


def parse_locked_app(data: Any) -> LockedApp:
    """Validate a decoded locked app and return it as frozen data. Raises LoadError."""
    if not isinstance(data, dict):
        raise err(None, "the locked app must be a JSON object")
    version = _check_version(data)
    must_understand = _check_must_understand(data)
    metadata = req_obj(data, "metadata", "metadata", default={})
    host_requirements = parse_host_requirements(data.get("host_requirements"), "host_requirements")
    variables = parse_variables(data.get("variables"))
    warnings = _http_base_warnings(metadata)

    components: list[LockedComponent] = []
    ids: set[str] = set()
    for i, raw in enumerate(req_list(data, "components", "components")):
        component = parse_component(raw, f"components[{i}]", variables)
        if component.id in ids:
            raise err(f"components[{i}].id", f"duplicate component id {component.id!r}")
        ids.add(component.id)
        components.append(component)

    triggers: list[LockedTrigger] = []
    redis: list[LockedRedisTrigger] = []
    for i, raw in enumerate(req_list(data, "triggers", "triggers")):
        trigger = _parse_trigger(raw, i, ids)
        if isinstance(trigger, LockedRedisTrigger):
            redis.append(trigger)
        else:
            triggers.append(trigger)
    if not triggers and not redis:
        warnings.append("the app has no HTTP or Redis triggers, so it serves nothing")
    # Spin reads the Redis metadata only when it runs the Redis trigger.
    redis_address = redis_metadata_address(metadata) if redis else ""

    router = Router.build([(t.config.route, t) for t in triggers if t.config.route is not None])
    warnings += route_warnings(router, label=lambda t: t.label)
    return LockedApp(
        spin_lock_version=version,
        triggers=tuple(triggers),
        components=tuple(components),
        variables=frozen(variables),
        metadata=frozen(metadata),
        must_understand=must_understand,
        host_requirements=frozen(host_requirements),
        warnings=tuple(warnings),
        redis_triggers=tuple(redis),
        redis_address=redis_address,
    )
