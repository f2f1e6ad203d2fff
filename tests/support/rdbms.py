"""What the outbound PostgreSQL / MySQL tests share: the python-outbound fixture app and its JSON replies
(tests/fixtures/components/python-outbound/rdbms_json.py)."""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from support.apps import push_app
from support.components import component_path
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent


def push_outbound(registry: RegistryServer, repo: str, allowed: list[str]) -> str:
    app = SpinAppSpec(name="outbound", components=[SpinComponent(
        id="outbound", wasm=component_path("python-outbound").read_bytes(),
        metadata={"allowed_outbound_hosts": allowed} if allowed else {})],
        triggers=[{"route": "/...", "component": "outbound"}])
    return push_app(registry, repo, "v1", app)


def ok(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return response.json()


def error(response: httpx.Response) -> tuple[str, Any]:
    """The error variant the guest saw: (kind, payload)."""
    assert response.status_code == 502, (response.status_code, response.text)
    kind, _, payload = response.text.removeprefix("error: ").partition(": ")
    return kind, json.loads(payload)


def q(statement: str, *params: list[Any], op: str = "query", repeat: int = 1) -> dict[str, Any]:
    return {"op": op, "statement": statement, "params": list(params), "repeat": repeat}


@contextlib.contextmanager
def server_root(name: str) -> Iterator[Path]:
    """A temp dir for a server that runs as the unprivileged user, outside pytest's basetemp: a pytest
    session starting elsewhere on the machine resets /tmp/pytest-of-<user> to 0700, which cuts such a
    server off from its own directory mid-run."""
    with tempfile.TemporaryDirectory(prefix=f"tauon-{name}-") as root:
        yield Path(root)
