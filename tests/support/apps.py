"""Spin apps the daemon tests push to the real registry, built from the real WAGI fixtures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from support.fixtures import fixture_path
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent, build_artifact, push


@dataclass(frozen=True)
class AppImages:
    v1: str
    v2: str


def push_sleep_app(registry: RegistryServer, repo: str, tag: str, *, version: str,
                   files: dict[str, bytes] | None = None, mode: str = "simple") -> str:
    """Push the `sleep` WAGI fixture on `/...`; its body names `version`. Returns the reference."""
    app = SpinAppSpec(
        name="sleepy",
        version="1.0.0",
        components=[SpinComponent(id="sleepy", wasm=fixture_path("sleep").read_bytes(),
                                  env={"VERSION": version}, files=files or {})],
        triggers=[{"route": "/...", "component": "sleepy", "executor": {"type": "wagi"}}],
    )
    push(build_artifact(app, mode=mode), registry.host, repo, tag)  # type: ignore[arg-type]
    return f"{registry.host}/{repo}:{tag}"


def push_app(registry: RegistryServer, repo: str, tag: str, app: SpinAppSpec, **kw: Any) -> str:
    push(build_artifact(app, **kw), registry.host, repo, tag)
    return f"{registry.host}/{repo}:{tag}"


def app_file(reference: str, port: int, **extra: Any) -> str:
    return json.dumps({"reference": reference, "address": f"127.0.0.1:{port}", "insecure": True,
                       **extra}, indent=2)
