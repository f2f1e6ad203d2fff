"""A Spin runtime configuration (runtime-config.toml) as typed, picklable data.

Paths are absolute by the time they are here (resolved as parse.py says). Secret fields (Redis URLs that
may carry a password, Vault tokens, static values) are left out of every repr, so neither a log line
nor an exception message can show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tauon.runtimeconfig.client_tls import ClientTlsConfig
from tauon.runtimeconfig.llm import RemoteLlmConfig
from tauon.runtimeconfig.networks import BlockedNetworks


@dataclass(frozen=True, slots=True)
class KeyValueStoreConfig:
    """One `[key_value_store.<label>]` table."""

    label: str
    type: str
    """'spin' (SQLite) or 'redis'."""
    path: str | None = None
    """spin: the SQLite file, absolute; None: in memory."""
    url: str = field(default="", repr=False)
    """redis: the server's URL (may hold a password: never shown)."""


@dataclass(frozen=True, slots=True)
class SqliteDatabaseConfig:
    """One `[sqlite_database.<label>]` table (type 'spin')."""

    label: str
    path: str | None = None
    """The database file, absolute; None: in memory."""


@dataclass(frozen=True, slots=True)
class EnvProviderConfig:
    """`[[variables_provider]] type = "env"`: `<PREFIX>_<NAME UPPER>` in tauon's environment, then in
    the dotenv file."""

    prefix: str | None = None
    """None: Spin's SPIN_VARIABLE."""
    dotenv_path: str | None = None


@dataclass(frozen=True, slots=True)
class StaticProviderConfig:
    """`[[variables_provider]] type = "static"` with a `values` table."""

    values: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class VaultProviderConfig:
    """`[[variables_provider]] type = "vault"`: HashiCorp Vault's KV v2 engine."""

    url: str
    token: str = field(repr=False)
    mount: str = ""
    prefix: str | None = None


ProviderConfig = EnvProviderConfig | StaticProviderConfig | VaultProviderConfig


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    file: str
    """The TOML file, absolute (for errors and logs)."""
    digest: str
    """sha256 of the file's bytes: an edit is a change of the app."""
    state_dir: str | None = None
    """`state_dir` from the file, absolute; None when absent or empty (the app file's state_dir wins)."""
    key_value_stores: tuple[KeyValueStoreConfig, ...] = ()
    sqlite_databases: tuple[SqliteDatabaseConfig, ...] = ()
    variables_providers: tuple[ProviderConfig, ...] = ()
    max_connections: dict[str, int] = field(default_factory=dict)
    """`[outbound_redis|mqtt|pg|mysql|http]` `max_connections`: 'redis' / 'mqtt' / 'pg' / 'mysql' /
    'http' -> connections (HTTP: requests in flight) one app may hold at once (per process)."""
    http_pooling: bool = True
    """`[outbound_http] connection_pooling` (Spin: false when the table is there without the key)."""
    blocked_networks: BlockedNetworks = field(default_factory=BlockedNetworks)
    """`[outbound_networking] block_networks`."""
    client_tls: tuple[ClientTlsConfig, ...] = ()
    """`[[client_tls]]` tables, in file order (the first naming a component and host wins)."""
    llm: RemoteLlmConfig | None = None
    """`[llm_compute] type = "remote_http"` (None: no table, or type "spin")."""

    def summary(self) -> str:
        """What the file configures, without secrets (as Spin's 'Using runtime config ...' line)."""
        parts = [f"[key_value_store.{s.label}: {s.type}]" for s in self.key_value_stores]
        parts += [f"[sqlite_database.{d.label}: spin]" for d in self.sqlite_databases]
        parts += [f"[variables_provider: {_provider_type(p)}]" for p in self.variables_providers]
        parts += [f"[outbound_{kind}: max_connections={n}]" for kind, n in self.max_connections.items()]
        if not self.http_pooling:
            parts.append("[outbound_http: connection_pooling=false]")
        if not self.blocked_networks.empty:
            parts.append(f"[outbound_networking: block_networks={self.blocked_networks.summary()}]")
        parts += [f"[client_tls: {', '.join(t.component_ids)} -> {', '.join(t.hosts)}]"
                  for t in self.client_tls]
        if self.llm is not None:
            url = redacted_url(self.llm.url)
            parts.append(f"[llm_compute: remote_http {url} api_type={self.llm.api_type}]")
        return ", ".join(parts) or "nothing"


def _provider_type(provider: ProviderConfig) -> str:
    if isinstance(provider, EnvProviderConfig):
        return "env"
    return "static" if isinstance(provider, StaticProviderConfig) else "vault"


def redacted_url(url: str) -> str:
    """scheme://host:port of a URL: user names, passwords, paths and queries left out."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "(an unparsable URL)"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}{port}"
