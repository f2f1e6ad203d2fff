"""A component's metadata from the locked app, parsed once into typed fields.

The loader fills this (app/lockparts.py `parse_component_meta`) with Spin's rules; every consumer
(executors, services) reads the fields, never the raw metadata object.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ComponentMeta:
    allowed_outbound_hosts: tuple[str, ...] = ()
    """Entries as written (`{{ variable }}` templates unrendered), then the legacy `allowed_http_hosts`
    converted as Spin converts them for every component (factor-outbound-networking)."""
    key_value_stores: tuple[str, ...] = ()
    """Key-value store labels the component may open."""
    databases: tuple[str, ...] = ()
    """SQLite database labels the component may open."""
    ai_models: tuple[str, ...] = ()
    description: str | None = None
