"""The admin endpoints, on their own address (`--admin`): /healthz, /readyz, /status, /metrics.

A small Starlette app served by the same Listener machinery as the apps. It only reads the daemon's
state; it has no write operations, so it needs no authentication beyond the address it listens on.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tauon import __version__
from tauon.status import app_rows, process_rows, readiness
from tauon.view import DaemonView

__all__ = ["DaemonView", "build_admin_app"]


def build_admin_app(view: DaemonView) -> Starlette:
    async def healthz(request: Request) -> Response:
        # Answering at all proves the process and its event loop are alive.
        return PlainTextResponse("ok\n")

    async def readyz(request: Request) -> Response:
        ready, body = readiness(view.supervisor, scanned=view.scanned.is_set(), stopping=view.stopping,
                                grace=view.start_grace)
        return JSONResponse(body, status_code=200 if ready else 503)

    async def status(request: Request) -> Response:
        ready, _ = readiness(view.supervisor, scanned=view.scanned.is_set(), stopping=view.stopping,
                                grace=view.start_grace)
        return JSONResponse({
            "version": __version__,
            "mode": view.mode,
            "source": view.source,
            "ready": ready,
            "reloading": view.reloading,
            "stopping": view.stopping,
            "apps": app_rows(view.supervisor),
            "processes": process_rows(view.supervisor, view.metrics),
        })

    async def metrics(request: Request) -> Response:
        body, content_type = view.metrics.render()
        return Response(body, media_type=content_type)

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET", "HEAD"]),
        Route("/readyz", readyz, methods=["GET", "HEAD"]),
        Route("/status", status, methods=["GET", "HEAD"]),
        Route("/metrics", metrics, methods=["GET", "HEAD"]),
    ])
