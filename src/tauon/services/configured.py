"""The stores and databases of an app's runtime config, opened for one generation.

Labels the runtime config does not define keep tauon's defaults ('default' in the app's state dir).
SQLite stores naming one file share one connection (the `store` column keeps labels apart, as in
Spin); every Redis store has its own connections.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tauon.errors import LoadError
from tauon.runtimeconfig.model import RuntimeConfig
from tauon.services.keyvalue import Backend, KeyValueStores, SqliteKeyValue
from tauon.services.sqlite import Databases


def open_key_value_stores(state_dir: str | None, config: RuntimeConfig | None) -> KeyValueStores:
    """Raises LoadError naming the runtime config's table when a store's file cannot be opened."""
    if config is None:
        return KeyValueStores.open(state_dir)
    by_label = {store.label: store for store in config.key_value_stores}
    by_path: dict[str, SqliteKeyValue] = {}

    def make(label: str) -> Backend:
        store = by_label[label]
        if store.type == "redis":
            from tauon.services.redis_kv import RedisKeyValue  # redis-py: only for apps that use it

            return RedisKeyValue(store.url)
        if store.path is None:
            return SqliteKeyValue(None)  # each in-memory store is its own database, as in Spin
        if store.path not in by_path:
            try:
                by_path[store.path] = SqliteKeyValue(Path(store.path))
            except (OSError, sqlite3.Error) as exc:
                raise LoadError(f"runtime config {config.file}: [key_value_store.{label}] cannot open "
                                f"{store.path}: {exc}", field="runtime_config",
                                hint="check the path and its directory's permissions") from None
        return by_path[store.path]

    return KeyValueStores.open(state_dir, make, list(by_label))


def open_databases(state_dir: str | None, config: RuntimeConfig | None) -> Databases:
    if config is None:
        return Databases.open(state_dir)
    return Databases.open(state_dir, {db.label: Path(db.path) if db.path else None
                                      for db in config.sqlite_databases})
