"""The python-kv fixture (scripts/build-components-extra; tests/fixtures/components-extra/python-kv):
a spin-sdk 3.4.1 app that opens any key-value label and SQLite database, as a pushed Spin app."""

from __future__ import annotations

import functools

from support.components import extra_component_path
from support.spinpush import SpinAppSpec, SpinComponent


@functools.cache
def kv_component() -> bytes:
    return extra_component_path("python-kv").read_bytes()


def kv_app(stores: list[str], databases: list[str] | None = None, *, marker: str = "1") -> SpinAppSpec:
    return SpinAppSpec(
        name="kv",
        components=[SpinComponent(id="kv", wasm=kv_component(), env={"MARKER": marker},
                                  metadata={"key_value_stores": stores, "databases": databases or []})],
        triggers=[{"route": "/...", "component": "kv"}],
    )
