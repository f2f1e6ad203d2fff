"""The fixtures of scripts/build-componentize-fixtures (core modules to componentize, a component with a
dependency), built on demand and cached by the script."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-componentize-fixtures"
BUILD_DIR = ROOT / "tests" / "fixtures" / "build" / "componentize"


@functools.cache
def fixture(name: str) -> bytes:
    """The bytes of fixture `name`, building it first if it is stale."""
    result = subprocess.run([str(SCRIPT), name], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"scripts/build-componentize-fixtures {name} failed:\n"
                           f"{result.stdout}{result.stderr}")
    return (BUILD_DIR / f"{name}.wasm").read_bytes()
