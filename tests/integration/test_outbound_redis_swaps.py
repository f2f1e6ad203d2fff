"""No leaked Redis connections across 100 swaps of an app whose guests hold connections open.

The real `tauon` process serves the python-outbound app; client threads keep its guests busy with
BLPOPs (each holds a Redis connection for a while, some past the drain timeout) and GET/SETs, while the
test rewrites the app file 100 times (each edit is a new generation). Afterwards redis-server itself
(`INFO clients`) must show no connection left over: requests that ended closed theirs, and the ones cut
off by the drain timeout were closed when their generation retired.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis

from support.apps import app_file, push_app
from support.components import component_path
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.servers.redis import run_redis
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration
SWAPS = 100
DRAIN = 1.0


def held_requests(base: str, address: str, stop: threading.Event, seconds: int,
                  statuses: list[int]) -> None:
    body = json.dumps({"command": "BLPOP", "args": [{"binary": b"swap:none".hex()}, {"int64": seconds}]})
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                r = client.post(f"{base}/redis/execute", headers={"redis-address": address}, content=body)
                statuses.append(r.status_code)
            except httpx.HTTPError:
                statuses.append(-1)


def quick_requests(base: str, address: str, stop: threading.Event, statuses: list[int]) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            try:
                r = client.get(f"{base}/redis/bench?n=5&p=swap", headers={"redis-address": address})
                statuses.append(r.status_code)
            except httpx.HTTPError:
                statuses.append(-1)


def test_hundred_swaps_with_open_connections_leak_nothing(tmp_path: Path, registry: RegistryServer) -> None:
    with run_redis(tmp_path / "redis") as server:
        app = SpinAppSpec(name="swaps", components=[SpinComponent(
            id="web", wasm=component_path("python-outbound").read_bytes(),
            metadata={"allowed_outbound_hosts": [f"redis://127.0.0.1:{server.port}"]})],
            triggers=[{"route": "/...", "component": "web"}])
        ref = push_app(registry, "outbound/redis-swaps", "v1", app)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        probe = redis.Redis(port=server.port)
        baseline = int(probe.info("clients")["connected_clients"])
        with run_tauon(tmp_path / "tauon", "--drain-timeout", str(DRAIN)) as tauon:
            path = tauon.watch_dir / "swaps.json"
            path.write_text(app_file(ref, port, limits={"request_timeout": 20}))
            wait_http(f"{base}/nothing", status=404, timeout=240)
            stop = threading.Event()
            statuses: list[int] = []
            address = server.address
            workers = [threading.Thread(target=held_requests, args=(base, address, stop, s, statuses))
                       for s in (1, 3)]  # 3 s outlives the drain timeout: its generation closes it
            workers.append(threading.Thread(target=quick_requests, args=(base, address, stop, statuses)))
            for w in workers:
                w.start()
            try:
                deadline = time.monotonic() + 30
                while int(probe.info("clients")["connected_clients"]) < baseline + 2:
                    assert time.monotonic() < deadline, "the guests never held their connections"
                    time.sleep(0.02)
                for i in range(1, SWAPS + 1):
                    path.write_text(app_file(ref, port, limits={"request_timeout": 20 + i / 1000}))
                    tauon.wait_log(r"updated to generation", count=i, timeout=120)
            finally:
                stop.set()
                for w in workers:
                    w.join(60)
            assert statuses.count(200) >= SWAPS, f"too few requests succeeded: {len(statuses)} sent"
            assert -1 not in statuses and 500 not in statuses, sorted(set(statuses))
            deadline = time.monotonic() + 30
            while (open_now := int(probe.info("clients")["connected_clients"])) > baseline:
                assert time.monotonic() < deadline, f"{open_now - baseline} Redis connection(s) leaked"
                time.sleep(0.1)
            # Still serving, with fresh connections.
            r = httpx.get(f"{base}/redis/conformance", headers={"redis-address": server.address}, timeout=30)
            assert (r.status_code, r.content) == (200, b""), r.text
        probe.close()
