"""One request straight into an executor, with no server in between (the tests and benchmarks that
exercise the binding and host interfaces on their own)."""

from __future__ import annotations

import asyncio
from typing import Any

from tauon.app.routes import RouteMatch
from tauon.executors.base import Executor, RoutedRequest


async def serve_direct(executor: Executor, method: str, target: str, body: bytes = b"", *,
                       headers: tuple[tuple[str, str], ...] = ()) -> tuple[int, bytes]:
    """(status, body) of `method target` with `body` (and `headers` besides host and content-length),
    fed in 64 KiB chunks as uvicorn would."""
    path, _, query = target.partition("?")
    request = RoutedRequest(
        method=method, path=path, query=query, spin_values=(), scheme="http",
        headers=(("host", "direct"),) + ((("content-length", str(len(body))),) if body else ()) + headers,
        authority="direct", client=("127.0.0.1", 1), http_version="1.1",
        match=RouteMatch(target=None, raw_route="/...", normalized_route="/...", component_route="",
                         path_info=path))
    chunks = [body[i:i + 65536] for i in range(0, len(body), 65536)] or [b""]
    out: dict[str, Any] = {"status": 0, "body": bytearray()}

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await asyncio.sleep(3600)  # the client stays connected until the response is out
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        else:
            out["body"].extend(message.get("body", b""))

    await executor.serve(request, receive, send)
    return out["status"], bytes(out["body"])
