"""In-memory stores under worker processes.

A `[key_value_store.x] type = "spin"` or `[sqlite_database.x]` without a `path` is in memory (as in
Spin). With worker processes every process must see the same data, so such a store becomes an SQLite
file in the generation's private directory (supervisor.py deletes it when the generation retires), as
the default stores of an app without a state_dir already do.
"""

from __future__ import annotations

import dataclasses
import os

from tauon.runtimeconfig.model import RuntimeConfig


def has_memory_stores(config: RuntimeConfig | None) -> bool:
    if config is None:
        return False
    return any(s.type == "spin" and s.path is None for s in config.key_value_stores) or \
        any(d.path is None for d in config.sqlite_databases)


def memory_stores_in(config: RuntimeConfig | None, directory: str) -> RuntimeConfig | None:
    """`config` with its in-memory stores and databases as files in `directory`."""
    if config is None:
        return None
    stores = tuple(
        dataclasses.replace(s, path=os.path.join(directory, f"kv.{s.label}.db"))
        if s.type == "spin" and s.path is None else s
        for s in config.key_value_stores)
    databases = tuple(
        dataclasses.replace(d, path=os.path.join(directory, f"sqlite.{d.label}.db")) if d.path is None else d
        for d in config.sqlite_databases)
    return dataclasses.replace(config, key_value_stores=stores, sqlite_databases=databases)


def store_dirs(config: RuntimeConfig | None) -> set[str]:
    """The directories of the config's file-backed stores and databases."""
    if config is None:
        return set()
    paths = [s.path for s in config.key_value_stores] + [d.path for d in config.sqlite_databases]
    return {os.path.dirname(p) for p in paths if p is not None}
