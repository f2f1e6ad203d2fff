"""Test fixtures built from source on demand (scripts/build-fixtures does the work and the caching)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-fixtures"
BUILD_DIR = ROOT / "tests" / "fixtures" / "build"


def fixture_path(name: str) -> Path:
    """Return the built wasm of fixture `name`, building it first if its source or flags changed."""
    result = subprocess.run(
        [sys.executable, str(BUILD_SCRIPT), name], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"building fixture {name!r} failed:\n{result.stdout}{result.stderr}")
    artifact = BUILD_DIR / f"{name}.wasm"
    if not artifact.is_file():
        raise RuntimeError(f"scripts/build-fixtures reported success but {artifact} is missing")
    return artifact
