"""runtime-config.toml -> RuntimeConfig, read as Spin's crates/runtime-config reads it.

Spin refuses a file with keys it did not use (`validate_all_keys_used`); so does tauon, and a table
tauon does not implement is refused by name rather than ignored. Relative paths resolve against the
TOML file's directory (Spin: the key-value `path` against that directory too; SQLite `path`, `state_dir`
and `dotenv_path` against its working directory, which a daemon does not have: README says so).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tauon.outbound.limits import OutboundError
from tauon.outbound.redis_address import parse_address
from tauon.runtimeconfig.client_tls import client_tls
from tauon.runtimeconfig.errors import RuntimeConfigError
from tauon.runtimeconfig.llm import llm_compute
from tauon.runtimeconfig.model import (
    EnvProviderConfig,
    KeyValueStoreConfig,
    ProviderConfig,
    RuntimeConfig,
    SqliteDatabaseConfig,
    StaticProviderConfig,
    VaultProviderConfig,
)
from tauon.runtimeconfig.networking import outbound_networking
from tauon.runtimeconfig.outbound_http import outbound_http

NOT_IN_TAUON = {
    "azure_cosmos": "Azure Cosmos DB",
    "aws_dynamo": "AWS DynamoDB",
    "azure_key_vault": "Azure Key Vault",
    "libsql": "remote libSQL (Turso)",
}
UNSUPPORTED_TABLES = {
    "log_dir": "tauon logs guest output with its own log lines; remove log_dir",
    "max_instance_memory": "use the app file's limits.memory_mib",
    "otel": "configure tracing with the OTEL_* environment variables",
}
T = TypeVar("T")
_KNOWN = ("state_dir", "key_value_store", "sqlite_database", "variables_provider", "config_provider",
          "outbound_redis", "outbound_mqtt", "outbound_networking",
          "client_tls", "llm_compute", "outbound_pg", "outbound_mysql",
          "outbound_http")


def parse_runtime_config(path: Path, data: bytes) -> RuntimeConfig:
    """Parse the file at `path` (absolute) whose bytes are `data`. Raises RuntimeConfigError."""
    try:
        table = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RuntimeConfigError("is not UTF-8 text", hint="a runtime config is a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise RuntimeConfigError(f"is not valid TOML: {exc}", hint="fix the TOML syntax") from None
    base = path.parent
    http = outbound_http(table.get("outbound_http"))
    for key in table:
        if key in UNSUPPORTED_TABLES:
            raise RuntimeConfigError("is not supported by tauon", where=key, hint=UNSUPPORTED_TABLES[key])
        if key not in _KNOWN and key not in UNSUPPORTED_TABLES:
            raise RuntimeConfigError("is not a runtime config key", where=key,
                                     hint=f"known keys: {', '.join(_KNOWN)}")
    if "variables_provider" in table and "config_provider" in table:
        raise RuntimeConfigError("and [[variables_provider]] are both set", where="config_provider",
                                 hint="keep one (Spin reads only variables_provider then)")
    providers_key = "variables_provider" if "variables_provider" in table else "config_provider"
    return RuntimeConfig(
        file=str(path),
        digest="sha256:" + hashlib.sha256(data).hexdigest(),
        state_dir=_state_dir(table.get("state_dir"), base),
        key_value_stores=_labelled(table, "key_value_store", lambda w, label, t:
                                   _key_value_store(w, label, t, base)),
        sqlite_databases=_labelled(table, "sqlite_database", lambda w, label, t:
                                   _sqlite_database(w, label, t, base)),
        variables_providers=_providers(table.get(providers_key), providers_key, base),
        max_connections={**{kind: n for kind in ("redis", "mqtt", "pg", "mysql")
                            if (n := _max_connections(table.get(f"outbound_{kind}"), f"outbound_{kind}"))},
                         **http.limit},
        http_pooling=http.pooling,
        blocked_networks=outbound_networking(table.get("outbound_networking")),
        client_tls=client_tls(table.get("client_tls"), base),
        llm=llm_compute(table.get("llm_compute")),
    )


def _max_connections(value: Any, where: str) -> int | None:
    """`[outbound_redis]` / `[outbound_mqtt]` / `[outbound_pg]` / `[outbound_mysql]`: only
    `max_connections` (Spin: optional, unlimited)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RuntimeConfigError("must be a table", where=where, hint=f"[{where}] max_connections = 16")
    _check_keys(where, value, ("max_connections",))
    if "type" in value:
        raise RuntimeConfigError("unknown key(s) 'type'", where=where,
                                 hint="this table takes max_connections")
    limit = value.get("max_connections")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise RuntimeConfigError(f"must be a whole number >= 1, got {limit!r}",
                                 where=f"{where}.max_connections")
    return limit


def _resolve(value: str, base: Path) -> str:
    return str(base / Path(value).expanduser())  # an absolute value replaces the base


def _state_dir(value: Any, base: Path) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RuntimeConfigError(f"must be a path string, got {value!r}", where="state_dir")
    return _resolve(value, base) if value else None  # Spin: an empty string means unset


def _labelled(table: dict[str, Any], key: str,
                 make: Callable[[str, str, dict[str, Any]], T]) -> tuple[T, ...]:
    tables = table.get(key)
    if tables is None:
        return ()
    if not isinstance(tables, dict):
        raise RuntimeConfigError("must be tables, one per label", where=key,
                                 hint=f'e.g. [{key}.default] with type = "..."')
    out: list[T] = []
    for label, config in tables.items():
        where = f"{key}.{label}"
        if not isinstance(config, dict):
            raise RuntimeConfigError("must be a table", where=where, hint=f'e.g. [{where}] type = "spin"')
        out.append(make(where, label, config))
    return tuple(out)


def _check_keys(where: str, config: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(config) - set(allowed) - {"type"})
    if unknown:
        raise RuntimeConfigError(f"unknown key(s) {', '.join(repr(u) for u in unknown)}", where=where,
                                 hint=f"this type takes {', '.join(allowed) or 'no other keys'}")


def _string(where: str, config: dict[str, Any], key: str, *, required: bool) -> str | None:
    value = config.get(key)
    if value is None:
        if required:
            raise RuntimeConfigError("is required", where=f"{where}.{key}")
        return None
    if not isinstance(value, str):
        raise RuntimeConfigError(f"must be a string, got {type(value).__name__}", where=f"{where}.{key}")
    return value


def _type(where: str, config: dict[str, Any], known: tuple[str, ...]) -> str:
    kind = _string(where, config, "type", required=True)
    assert kind is not None
    if kind in NOT_IN_TAUON:
        raise RuntimeConfigError(f"type {kind!r} ({NOT_IN_TAUON[kind]}) is not available in tauon",
                                 where=f"{where}.type", hint=f"use type {' or '.join(map(repr, known))}")
    if kind not in known:
        raise RuntimeConfigError(f"unknown type {kind!r}", where=f"{where}.type",
                                 hint=f"tauon supports {' and '.join(map(repr, known))}")
    return kind


def _key_value_store(where: str, label: str, config: dict[str, Any], base: Path) -> KeyValueStoreConfig:
    kind = _type(where, config, ("spin", "redis"))
    if kind == "spin":
        _check_keys(where, config, ("path",))
        path = _string(where, config, "path", required=False)
        return KeyValueStoreConfig(label=label, type="spin", path=_resolve(path, base) if path else None)
    _check_keys(where, config, ("url",))
    url = _string(where, config, "url", required=True)
    assert url is not None
    try:
        parse_address(url)
    except OutboundError:
        raise RuntimeConfigError("is not a usable Redis URL", where=f"{where}.url",
                                 hint="redis://[user][:password@]host[:port][/db] or rediss://...") from None
    return KeyValueStoreConfig(label=label, type="redis", url=url)


def _sqlite_database(where: str, label: str, config: dict[str, Any], base: Path) -> SqliteDatabaseConfig:
    _type(where, config, ("spin",))
    _check_keys(where, config, ("path",))
    path = _string(where, config, "path", required=False)
    return SqliteDatabaseConfig(label=label, path=_resolve(path, base) if path else None)


def _providers(value: Any, key: str, base: Path) -> tuple[ProviderConfig, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RuntimeConfigError("must be an array of tables", where=key,
                                 hint=f'write [[{key}]] with type = "env", "static" or "vault"')
    out: list[ProviderConfig] = []
    for index, config in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(config, dict):
            raise RuntimeConfigError("must be a table", where=where)
        out.append(_provider(where, config, base))
    return tuple(out)


def _provider(where: str, config: dict[str, Any], base: Path) -> ProviderConfig:
    kind = _type(where, config, ("env", "static", "vault"))
    if kind == "env":
        _check_keys(where, config, ("prefix", "dotenv_path"))
        dotenv = _string(where, config, "dotenv_path", required=False)
        return EnvProviderConfig(prefix=_string(where, config, "prefix", required=False),
                                 dotenv_path=_resolve(dotenv, base) if dotenv else None)
    if kind == "static":
        _check_keys(where, config, ("values",))
        values = config.get("values", {})
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise RuntimeConfigError("must be a table of name = \"string\"", where=f"{where}.values")
        return StaticProviderConfig(values=dict(values))
    _check_keys(where, config, ("url", "token", "mount", "prefix"))
    url, token, mount = (_string(where, config, k, required=True) for k in ("url", "token", "mount"))
    assert url is not None and token is not None and mount is not None
    if not url.startswith(("http://", "https://")):
        raise RuntimeConfigError("must be an http:// or https:// URL", where=f"{where}.url")
    return VaultProviderConfig(url=url, token=token, mount=mount,
                               prefix=_string(where, config, "prefix", required=False))
