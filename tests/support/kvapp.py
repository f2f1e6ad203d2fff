"""The python-kv fixture (scripts/build-components-extra; tests/fixtures/components-extra/python-kv):
a spin-sdk 3.4.1 app that opens any key-value label and SQLite database, as a pushed Spin app."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

from support.spinpush import SpinAppSpec, SpinComponent

ROOT = Path(__file__).resolve().parents[2]
EXTRA_SCRIPT = ROOT / "scripts" / "build-components-extra"
ARTIFACT = ROOT / "tests" / "fixtures" / "build" / "components-extra" / "python-kv.wasm"


@functools.cache
def kv_component() -> bytes:
    result = subprocess.run([str(EXTRA_SCRIPT), "python-kv"], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/build-components-extra python-kv failed:\n{result.stdout}"
                           f"{result.stderr}")
    return ARTIFACT.read_bytes()


def kv_app(stores: list[str], databases: list[str] | None = None, *, marker: str = "1") -> SpinAppSpec:
    return SpinAppSpec(
        name="kv",
        components=[SpinComponent(id="kv", wasm=kv_component(), env={"MARKER": marker},
                                  metadata={"key_value_stores": stores, "databases": databases or []})],
        triggers=[{"route": "/...", "component": "kv"}],
    )
