"""Spin's Redis trigger in the locked app: trigger configs and the app's default address. Pure.

Source: spinframework/spin crates/trigger-redis/src/lib.rs. A `redis` trigger's `trigger_config` is
`{component, channel, address?}` (unknown fields refused, as serde's deny_unknown_fields does); the
app's default address is the trigger metadata `triggers.redis.address` (or the single-type legacy form
`trigger: {type: "redis", address}`). Addresses and channels may be `{{ variable }}` templates, which
are rendered when a generation is built (the variables may come from the app file or the environment).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tauon.app.expressions import TemplateError, parse_template
from tauon.app.lockparts import err, opt_str, req_str

REDIS_KEYS = ("component", "channel", "address")
REDIS_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class RedisTriggerConfig:
    component: str
    channel: str
    """A template (`{{ variable }}` allowed), as written in the lock."""
    address: str | None = None
    """The trigger's own address template; None: the app's default address."""


@dataclass(frozen=True, slots=True, eq=False)
class LockedRedisTrigger:
    id: str
    index: int
    """Position in the lock's `triggers` array (for messages)."""
    config: RedisTriggerConfig


def _check_template(value: str, where: str) -> None:
    try:
        parse_template(value)
    except TemplateError as exc:
        raise err(where, f"{exc}: {value!r}") from None


def parse_redis_trigger(trigger_id: str, index: int, value: Any,
                        component_ids: set[str]) -> LockedRedisTrigger:
    where = f"triggers[{index}].trigger_config"
    if not isinstance(value, dict):
        raise err(where, "expected an object")
    for key in value:
        if key not in REDIS_KEYS:
            raise err(f"{where}.{key}", f"unknown field {key!r}, expected one of {', '.join(REDIS_KEYS)}")
    component = req_str(value, "component", f"{where}.component")
    if component not in component_ids:
        raise err(f"{where}.component", f"no component {component!r} in this app",
                  hint=f"its components are: {', '.join(sorted(component_ids)) or '(none)'}")
    channel = req_str(value, "channel", f"{where}.channel")
    _check_template(channel, f"{where}.channel")
    address = opt_str(value, "address", f"{where}.address")
    if address is not None:
        _check_template(address, f"{where}.address")
    return LockedRedisTrigger(trigger_id, index, RedisTriggerConfig(component, channel, address))


def redis_metadata_address(metadata: Mapping[str, Any]) -> str:
    """The app's default Redis address template ('' when the lock has none), read as Spin's
    `get_trigger_metadata("redis")` does: `triggers.redis` if `triggers` exists, else `trigger` when
    its `type` is "redis"."""
    if "triggers" in metadata:
        triggers = metadata["triggers"]
        if not isinstance(triggers, dict) or "redis" not in triggers:
            return ""
        where, config = "metadata.triggers.redis", triggers["redis"]
    else:
        legacy = metadata.get("trigger")
        if not isinstance(legacy, dict) or legacy.get("type") != "redis":
            return ""
        where, config = "metadata.trigger", {k: v for k, v in legacy.items() if k != "type"}
    if not isinstance(config, dict):
        raise err(where, "expected an object such as {\"address\": \"redis://localhost:6379\"}")
    for key in config:
        if key != "address":
            raise err(f"{where}.{key}", f"unknown field {key!r}, expected 'address'")
    address = req_str(config, "address", f"{where}.address")
    _check_template(address, f"{where}.address")
    return address


def check_redis_url(url: str) -> str | None:
    """Why `url` is not a Redis address tauon can connect to, or None."""
    if not url:
        return "the address is empty"
    parts = urlsplit(url)
    if parts.scheme not in REDIS_SCHEMES:
        return f"the scheme {parts.scheme or '(none)'!r} is not one of {', '.join(REDIS_SCHEMES)}"
    if parts.scheme != "unix" and not parts.hostname:
        return "the address has no host"
    try:
        _ = parts.port
    except ValueError:
        return "the port is not a number from 0 to 65535"
    return None


def redact_url(url: str) -> str:
    """`url` without its password (for logs, errors, /status): redis://user:***@host:port/db."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
