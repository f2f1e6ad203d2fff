"""The parts of a locked app (spin-spec §2.3-2.5) and their validation. Pure; used by lockedapp.py.

Every error is a LoadError whose `field` is the JSON path of the offending value.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from tauon.app.allowed_hosts import convert_allowed_http_hosts, validate_allowed_hosts
from tauon.app.expressions import TemplateError, template_variables, variable_name_error
from tauon.errors import LoadError
from tauon.model.component_meta import ComponentMeta
from tauon.model.mount import Mount

SUPPORTED_HOST_REQUIREMENTS = ("local_service_chaining", "middleware")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
_MISSING = object()


def err(where: str | None, message: str, *, hint: str | None = None) -> LoadError:
    return LoadError(message, field=where, hint=hint)


def frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


def req(obj: Mapping[str, Any], key: str, where: str | None, default: Any = _MISSING) -> Any:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise err(where or key, f"missing field '{key}'")
        return default
    return value


def req_obj(obj: Mapping[str, Any], key: str, where: str, default: Any = _MISSING) -> dict[str, Any]:
    value = req(obj, key, where, default)
    if not isinstance(value, dict):
        raise err(where, f"expected an object, got {type(value).__name__}")
    return value


def req_list(obj: Mapping[str, Any], key: str, where: str, default: Any = _MISSING) -> list[Any]:
    value = req(obj, key, where, default)
    if not isinstance(value, list):
        raise err(where, f"expected an array, got {type(value).__name__}")
    return value


def req_str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = req(obj, key, where)
    if not isinstance(value, str):
        raise err(where, f"expected a string, got {value!r}")
    return value


def opt_str(obj: Mapping[str, Any], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is not None and not isinstance(value, str):
        raise err(where, f"expected a string, got {value!r}")
    return value


def str_map(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise err(where, "expected an object of strings")
    for k, v in value.items():
        if not isinstance(v, str):
            raise err(f"{where}.{k}", f"expected a string, got {v!r}")
    return dict(value)


@dataclass(frozen=True, slots=True)
class Variable:
    """An app variable. No default means required: some provider must resolve it at startup."""

    default: str | None = None
    secret: bool = False
    description: str | None = None

    @property
    def required(self) -> bool:
        return self.default is None


@dataclass(frozen=True, slots=True)
class ContentRef:
    """At least one of source (URI), inline (decoded bytes) and digest ('sha256:<hex>') is set."""

    source: str | None = None
    inline: bytes | None = None
    digest: str | None = None


@dataclass(frozen=True, slots=True)
class LockedComponentSource:
    content_type: str
    content: ContentRef


@dataclass(frozen=True, slots=True)
class Dependency:
    source: LockedComponentSource
    export: str | None = None
    inherit: Literal["all"] | tuple[str, ...] = ()
    """'all', or the capability sets the dependency inherits (() = none)."""


@dataclass(frozen=True, slots=True, eq=False)
class LockedComponent:
    id: str
    source: LockedComponentSource
    metadata: Mapping[str, Any] = field(default_factory=_empty)
    env: Mapping[str, str] = field(default_factory=_empty)
    files: tuple[Mount[ContentRef], ...] = ()
    config: Mapping[str, str] = field(default_factory=_empty)
    """Guest-visible variable name -> template over app variables (see render_template)."""
    dependencies: Mapping[str, Dependency] = field(default_factory=_empty)
    trigger_dependencies: Mapping[str, tuple[Dependency, ...]] = field(default_factory=_empty)
    host_requirements: Mapping[str, Any] = field(default_factory=_empty)

    meta: ComponentMeta = field(default_factory=ComponentMeta)
    """The metadata's typed fields (parse_component_meta), what everything after the parse reads."""

    @property
    def allowed_outbound_hosts(self) -> tuple[str, ...]:
        """Entries as written (templates unrendered), plus Spin 1.x `allowed_http_hosts` converted."""
        return self.meta.allowed_outbound_hosts

    @property
    def key_value_stores(self) -> tuple[str, ...]:
        return self.meta.key_value_stores

    @property
    def databases(self) -> tuple[str, ...]:
        """SQLite database labels."""
        return self.meta.databases

    @property
    def ai_models(self) -> tuple[str, ...]:
        return self.meta.ai_models

    @property
    def description(self) -> str | None:
        return self.meta.description


def parse_host_requirements(value: Any, where: str) -> dict[str, Any]:
    """Drop 'optional' entries; anything left must be a feature the HTTP trigger supports."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise err(where, "expected an object")
    required = {k: v for k, v in value.items() if v != "optional"}
    unsupported = [k for k in required if k not in SUPPORTED_HOST_REQUIREMENTS]
    if unsupported:
        raise err(
            where,
            "This version of Spin does not support the following features required by this "
            f"application: {', '.join(unsupported)}",
            hint=f"tauon supports {', '.join(SUPPORTED_HOST_REQUIREMENTS)}",
        )
    return required


def parse_variables(value: Any) -> dict[str, Variable]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise err("variables", "expected an object")
    variables: dict[str, Variable] = {}
    for name, raw in value.items():
        where = f"variables.{name}"
        problem = variable_name_error(name)
        if problem:
            raise err(where, f"invalid variable name {name!r}: {problem}")
        if not isinstance(raw, dict):
            raise err(where, "expected an object")
        secret = raw.get("secret", False)
        if not isinstance(secret, bool):
            raise err(f"{where}.secret", f"expected true or false, got {secret!r}")
        variables[name] = Variable(
            default=opt_str(raw, "default", f"{where}.default"),
            secret=secret,
            description=opt_str(raw, "description", f"{where}.description"),
        )
    return variables


def parse_content_ref(obj: Mapping[str, Any], where: str) -> ContentRef:
    source = opt_str(obj, "source", f"{where}.source")
    digest = opt_str(obj, "digest", f"{where}.digest")
    if digest is not None and not _DIGEST_RE.match(digest):
        raise err(f"{where}.digest", f"{digest!r} is not a digest like 'sha256:<hex>'")
    inline_text = opt_str(obj, "inline", f"{where}.inline")
    inline = None
    if inline_text is not None:
        try:  # Spin writes standard base64 without padding; accept padded too
            inline = base64.b64decode(inline_text + "=" * (-len(inline_text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise err(f"{where}.inline", "not valid base64") from None
    if source is None and inline is None and digest is None:
        raise err(where, "needs at least one of 'source', 'inline' or 'digest'")
    return ContentRef(source, inline, digest)


def parse_source(value: Any, where: str) -> LockedComponentSource:
    if not isinstance(value, dict):
        raise err(where, "expected an object with 'content_type' and 'source', 'inline' or 'digest'")
    return LockedComponentSource(
        req_str(value, "content_type", f"{where}.content_type"), parse_content_ref(value, where)
    )


def parse_dependency(value: Any, where: str) -> Dependency:
    if not isinstance(value, dict):
        raise err(where, "expected an object with 'source'")
    inherit_raw = value.get("inherit")
    inherit: Literal["all"] | tuple[str, ...]
    if inherit_raw is None:
        inherit = ()
    elif inherit_raw == "All":
        inherit = "all"
    elif (
        isinstance(inherit_raw, dict)
        and list(inherit_raw) == ["Some"]
        and isinstance(inherit_raw["Some"], list)
        and all(isinstance(s, str) for s in inherit_raw["Some"])
    ):
        inherit = tuple(inherit_raw["Some"])
    else:
        raise err(f"{where}.inherit", 'expected "All" or {"Some": [names]}')
    return Dependency(
        parse_source(req(value, "source", f"{where}.source"), f"{where}.source"),
        opt_str(value, "export", f"{where}.export"),
        inherit,
    )


def parse_dependency_lists(value: Any, where: str) -> dict[str, tuple[Dependency, ...]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise err(where, "expected an object of arrays")
    result: dict[str, tuple[Dependency, ...]] = {}
    for role, deps in value.items():
        if not isinstance(deps, list):
            raise err(f"{where}.{role}", "expected an array")
        result[role] = tuple(parse_dependency(d, f"{where}.{role}[{i}]") for i, d in enumerate(deps))
    return result


_META_LISTS = ("allowed_outbound_hosts", "allowed_http_hosts", "key_value_stores", "databases", "ai_models")


def parse_component_meta(metadata: Mapping[str, Any], where: str) -> ComponentMeta:
    """A component's metadata object -> typed fields, with Spin's rules: each list key is an array of
    strings (else an error naming `where`.key), and `allowed_http_hosts` is converted and appended to
    `allowed_outbound_hosts` as Spin's factor-outbound-networking does for every component."""
    lists: dict[str, tuple[str, ...]] = {}
    for key in _META_LISTS:
        value = metadata.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise err(f"{where}.{key}", "expected an array of strings")
        lists[key] = tuple(value or ())
    description = metadata.get("description")
    return ComponentMeta(
        allowed_outbound_hosts=lists["allowed_outbound_hosts"]
        + tuple(convert_allowed_http_hosts(lists["allowed_http_hosts"])),
        key_value_stores=lists["key_value_stores"],
        databases=lists["databases"],
        ai_models=lists["ai_models"],
        description=description if isinstance(description, str) else None,
    )


def parse_component(value: Any, where: str, variables: Mapping[str, Variable]) -> LockedComponent:
    if not isinstance(value, dict):
        raise err(where, "expected an object")
    component_id = req_str(value, "id", f"{where}.id")
    metadata = req_obj(value, "metadata", f"{where}.metadata", default={})
    meta = parse_component_meta(metadata, f"{where}.metadata")
    hosts = metadata.get("allowed_outbound_hosts") or []
    defaults = {name: v.default for name, v in variables.items()}
    try:
        validate_allowed_hosts(hosts, defaults=defaults)
    except LoadError as e:
        raise err(f"{where}.metadata.allowed_outbound_hosts", e.message, hint=e.hint) from None
    config = str_map(value.get("config"), f"{where}.config")
    for key, template in config.items():
        problem = variable_name_error(key)
        if problem:
            raise err(f"{where}.config.{key}", f"invalid variable name {key!r}: {problem}")
        try:
            names = template_variables(template)
        except TemplateError as e:
            raise err(f"{where}.config.{key}", f"invalid variable template {template!r}: {e}") from None
        for name in names:
            if name not in variables:
                raise err(
                    f"{where}.config.{key}",
                    f"invalid variable template {template!r}: unknown variable {name!r}",
                    hint="templates may only refer to the app's variables",
                )
    files = req_list(value, "files", f"{where}.files", default=[])
    deps = value.get("dependencies")
    if deps is not None and not isinstance(deps, dict):
        raise err(f"{where}.dependencies", "expected an object")
    return LockedComponent(
        id=component_id,
        source=parse_source(req(value, "source", f"{where}.source"), f"{where}.source"),
        metadata=frozen(metadata),
        meta=meta,
        env=frozen(str_map(value.get("env"), f"{where}.env")),
        files=tuple(_parse_file(f, f"{where}.files[{i}]") for i, f in enumerate(files)),
        config=frozen(config),
        dependencies=frozen(
            {n: parse_dependency(d, f"{where}.dependencies.{n}") for n, d in (deps or {}).items()}
        ),
        trigger_dependencies=frozen(
            parse_dependency_lists(value.get("trigger_dependencies"), f"{where}.trigger_dependencies")
        ),
        host_requirements=frozen(
            parse_host_requirements(value.get("host_requirements"), f"{where}.host_requirements")
        ),
    )


def _parse_file(value: Any, where: str) -> Mount[ContentRef]:
    if not isinstance(value, dict):
        raise err(where, "expected an object with 'path'")
    return Mount(parse_content_ref(value, where), req_str(value, "path", f"{where}.path"))
