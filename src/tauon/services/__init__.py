"""Spin's services for one app generation: variables, key-value stores, SQLite databases, and the
outbound clients (Redis, MQTT: tauon.outbound; PostgreSQL, MySQL: services/postgres.py, mysql.py).

Plain Python objects, no wasm: every executor (the Spin 1.x legacy ABI, the component host) calls the
same methods. `AppServices.open` runs at generation build (in a worker thread) and fails with a
LoadError when the app cannot run (a required variable without a value, an undefined store label).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tauon.app.plan import ComponentPlan, GenerationPlan
from tauon.errors import LoadError
from tauon.outbound import OutboundServices
from tauon.runtimeconfig.client_tls import ClientTlsConfig, component_contexts
from tauon.runtimeconfig.llm import RemoteLlmConfig
from tauon.runtimeconfig.networks import BlockedNetworks
from tauon.runtimeconfig.providers import variable_providers
from tauon.services.configured import open_databases, open_key_value_stores
from tauon.services.firstuse import FirstUse
from tauon.services.keyvalue import KeyValueStore, KeyValueStores
from tauon.services.llm_remote import RemoteLlm
from tauon.services.mysql import MysqlClients
from tauon.services.sqlite import Database, Databases
from tauon.services.variables import ComponentVariables, VariableResolver

if TYPE_CHECKING:
    from tauon.services.postgres import PgClients

__all__ = ["AppServices", "ComponentServices"]


@dataclass(frozen=True, slots=True)
class ComponentServices:
    """What one component may reach: its config keys and the store/database labels it lists."""

    component_id: str
    variables: ComponentVariables
    key_value_labels: frozenset[str]
    database_labels: frozenset[str]
    ai_models: frozenset[str]
    stores: KeyValueStores
    databases: Databases
    outbound: OutboundServices | None = None
    """The generation's outbound clients; None: outbound Redis and MQTT calls fail with `other`."""
    postgres: FirstUse[PgClients] | None = field(default=None, compare=False)
    """The app generation's outbound PostgreSQL pools (made on first use); None: no outbound database
    clients."""
    mysql: MysqlClients | None = field(default=None, compare=False)
    blocked_networks: BlockedNetworks = field(default_factory=BlockedNetworks)
    """The runtime config's `[outbound_networking] block_networks` (every outbound path checks it)."""
    tls_contexts: Mapping[str, ssl.SSLContext] = field(default_factory=dict, compare=False)
    """host -> the TLS client context of the runtime config's `[[client_tls]]` for this component."""
    http_pooling: bool = True
    """`[outbound_http] connection_pooling` (False: a new connection per outbound request)."""
    http_limit: threading.BoundedSemaphore | None = field(default=None, compare=False)
    """`[outbound_http] max_connections`: the app's outbound HTTP requests in flight (None: unbounded)."""
    llm: RemoteLlm | None = field(default=None, compare=False)
    """`[llm_compute] type = "remote_http"`: where LLM calls go (None: Spin's local-engine error)."""

    def open_store(self, label: str) -> KeyValueStore:
        """Raises KeyValueError ('access-denied' for an unlisted label, 'no-such-store')."""
        return self.stores.open_store(label, self.key_value_labels)

    def open_database(self, label: str) -> Database:
        """Raises SqliteError ('access-denied' for an unlisted label, 'no-such-database', 'io')."""
        return self.databases.open_database(label, self.database_labels)


class AppServices:
    def __init__(self, resolver: VariableResolver, stores: KeyValueStores, databases: Databases,
                 max_connections: dict[str, int] | None = None,
                 blocked_networks: BlockedNetworks | None = None,
                 client_tls: tuple[ClientTlsConfig, ...] = (),
                 llm: RemoteLlmConfig | None = None) -> None:
        self.resolver = resolver
        self.llm = RemoteLlm(llm) if llm is not None else None
        self.http_pooling = True
        http_max = (max_connections or {}).get("http")
        self.http_limit = threading.BoundedSemaphore(http_max) if http_max else None
        self.client_tls = client_tls
        self.blocked_networks = blocked_networks or BlockedNetworks()
        self.stores = stores
        self.databases = databases
        self.outbound = OutboundServices(max_connections)
        limits = max_connections or {}
        self.postgres = FirstUse(lambda: _pg_clients(limits.get("pg")))
        self.mysql = MysqlClients(max_connections=limits.get("mysql"))

    @classmethod
    def open(cls, plan: GenerationPlan, env: Mapping[str, str]) -> AppServices:
        """Resolve variables and open the default stores; `env` is tauon's process environment.

        Raises LoadError (without the app file: the caller adds it with `with_file`).
        """
        providers = variable_providers(plan.runtime_config, env)
        resolver = VariableResolver(plan.app_variables, plan.variables, env, providers)
        resolver.validate()
        stores = open_key_value_stores(plan.state_dir, plan.runtime_config)
        databases = open_databases(plan.state_dir, plan.runtime_config)
        try:
            for component in plan.components.values():
                meta = component.metadata
                for key, services, what, table, labels in (
                    ("key_value_stores", stores, "key_value_stores", "key_value_store",
                     meta.key_value_stores),
                    ("databases", databases, "sqlite_databases", "sqlite_database", meta.databases),
                ):
                    unknown = services.undefined(sorted(set(labels)))
                    if unknown:
                        raise LoadError(
                            f"component '{component.id}' uses unknown {what} label(s) "
                            f"{', '.join(repr(u) for u in unknown)}",
                            field=f"components.{component.id}.{key}",
                            hint=f"define each in the app's runtime config as [{table}.<label>] "
                            "(the app file's runtime_config, or tauon's --runtime-config)",
                        )
        except BaseException:
            stores.close()
            databases.close()
            raise
        config = plan.runtime_config
        app = cls(resolver, stores, databases, config.max_connections if config is not None else None,
                   config.blocked_networks if config is not None else None,
                   config.client_tls if config is not None else (),
                   config.llm if config is not None else None)
        app.http_pooling = config.http_pooling if config is not None else True
        return app

    def component(self, component: ComponentPlan) -> ComponentServices:
        return ComponentServices(
            component_id=component.id,
            variables=ComponentVariables(component.config, self.resolver, component_id=component.id),
            key_value_labels=frozenset(component.metadata.key_value_stores),
            database_labels=frozenset(component.metadata.databases),
            ai_models=frozenset(component.metadata.ai_models),
            stores=self.stores,
            databases=self.databases,
            outbound=self.outbound,
            postgres=self.postgres,
            mysql=self.mysql,
            blocked_networks=self.blocked_networks,
            tls_contexts=self._tls_contexts(component.id),
            llm=self.llm,
            http_pooling=self.http_pooling,
            http_limit=self.http_limit,
        )

    def _tls_contexts(self, component_id: str) -> Mapping[str, ssl.SSLContext]:
        try:
            return component_contexts(self.client_tls, component_id)
        except (OSError, ssl.SSLError) as exc:  # a file changed since the runtime config was read
            raise LoadError(f"[[client_tls]] for component '{component_id}': cannot load a certificate "
                            f"or key file: {exc}", field="runtime_config",
                            hint="fix the files the runtime config's [[client_tls]] names") from None

    def close(self) -> None:
        """Close the database and outbound connections once no request of this generation runs."""
        self.outbound.close()
        self.stores.close()
        self.databases.close()
        if (postgres := self.postgres.made) is not None:
            postgres.close()
        self.mysql.close()


def _pg_clients(max_connections: int | None) -> PgClients:
    from tauon.services.postgres import PgClients  # psycopg: imported by the apps that reach PostgreSQL

    return PgClients(max_connections=max_connections)
