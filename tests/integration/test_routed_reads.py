"""Request bodies into the SDK guests (JS, componentize-py) cross the binding as one buffer per read,
whatever the bytes: wasm/component/rewriting/routing.py lowers their routed reads latin1+utf16 behind
`keep_realloc_module`, so not even bytes >= 0x80 take the per-byte list path."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from support.components import component_path
from support.direct import serve_direct
from tauon.app.plan import ComponentPlan, Limits
from tauon.executors.builder import build_component_executor
from tauon.hostif import io
from tauon.wasm.component.rewriting.contract import BYTES_IMPORT, READ_FUNCS
from tauon.wasm.engine import WasmEngine

pytestmark = pytest.mark.integration


def counting(read: Callable[..., tuple[str, Any]], key: str, seen: Counter[str]) -> Callable[..., Any]:
    def counted(*args: Any) -> tuple[str, Any]:
        result = read(*args)
        if result[0] == "ok":
            seen[key] += len(result[1])
        return result

    return counted


@pytest.mark.parametrize("name", ["js", "python-raw"])
def test_every_byte_value_reaches_the_guest_through_the_string_read(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: Counter[str] = Counter()
    for iface in io.INTERFACES:
        for func in READ_FUNCS:
            if func in iface.funcs:  # the list read (wasi:io/streams) and the routed one
                monkeypatch.setitem(iface.funcs, func, counting(iface.funcs[func], iface.name, seen))
    wasm = component_path(name)
    plan = ComponentPlan(id=name, wasm_path=str(wasm),
                         wasm_digest="sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest())
    engine = WasmEngine(tmp_path)
    engine.start()
    try:
        executor = build_component_executor(
            app_id="a", component=plan, engine=engine, limits=Limits(max_request_body=4 << 20),
            limiter=anyio.CapacityLimiter(4), logger=logging.getLogger("t"), trigger_executor="http",
            wagi_argv="")
        body = bytes(range(256)) * 2048 + b"\xff\x80 and an ASCII tail"
        status, out = asyncio.run(serve_direct(executor, "POST", "/echo", body))
    finally:
        engine.stop()
    assert status == 200
    doc = json.loads(out)
    assert doc["body_len"] == len(body) and doc["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert seen[BYTES_IMPORT] == len(body)
    assert seen["wasi:io/streams"] == 0
