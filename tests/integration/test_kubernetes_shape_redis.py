"""contrib/kubernetes/redis reproduced on one machine: three tauon replicas, each on its own loopback
address (a pod IP), app files from a kubelet-style ConfigMap volume, the runtime config from a
kubelet-style Secret volume (`--runtime-config`, as TAUON_RUNTIME_CONFIG in the Deployment), and one
real redis-server behind all of them as the default key-value store. Requests are spread round-robin
over the replicas (the Service) while the Secret is updated pod by pod: no request fails, every
replica moves to a new generation, and the shared counter equals the number of successful increments.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from test_kubernetes_shape import project_configmap

from support.apps import app_file, push_app
from support.daemon import free_port, run_tauon, wait_http
from support.kvapp import kv_app
from support.load import Load
from support.registry import RegistryServer
from support.servers.redis import RedisServer

pytestmark = pytest.mark.integration
PASSWORD = "k8s-redis-pass-0c1d"


def _outcome(r: httpx.Response) -> str:
    return "200" if r.status_code == 200 else f"{r.request.url}: {r.status_code} {r.text[:100]}"


@pytest.mark.timeout(900)  # three tauon processes compile a 37 MB component each
def test_replicas_share_redis_while_the_runtime_config_secret_changes(
        tmp_path: Path, registry: RegistryServer) -> None:
    ref = push_app(registry, "k8s/kv", "v1", kv_app(["default", "cache"]))
    redis = RedisServer(tmp_path / "redis", password=PASSWORD)
    redis.start()
    port = free_port()
    hosts = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    rc_v1 = ('[key_value_store.default]\ntype = "redis"\n'
             f'url = "{redis.address}"\n[key_value_store.cache]\ntype = "spin"\n')
    rc_v2 = rc_v1 + 'path = "cache.db"\n'  # the cache store moves from memory to a file
    try:
        with ExitStack() as stack:
            pods = []
            for i, host in enumerate(hosts):
                pod = tmp_path / f"pod{i}"
                text = app_file(ref, port).replace(f"127.0.0.1:{port}", f"{host}:{port}")
                project_configmap(pod / "apps.d", {"shop.json": text}, 1)
                project_configmap(pod / "runtime", {"runtime-config.toml": rc_v1}, 1)
                pods.append(stack.enter_context(run_tauon(
                    pod, "--runtime-config", str(pod / "runtime" / "runtime-config.toml"),
                    watch_dir=pod / "apps.d", wait_started=False)))
            endpoints = [f"http://{host}:{port}/incr/default/hits" for host in hosts]
            for host in hosts:
                wait_http(f"http://{host}:{port}/keys/cache", timeout=300)

            with Load(endpoints, clients=3, outcome=_outcome) as load:
                for i in range(len(pods)):
                    time.sleep(0.7)  # kubelet updates each pod at its own moment
                    project_configmap(tmp_path / f"pod{i}" / "runtime", {"runtime-config.toml": rc_v2}, 2)
                for pod in pods:  # picked up at the next rescan (--resync-interval 5 in tests)
                    pod.wait_log(r"shop\.json: updated to generation \d+", timeout=300)
                time.sleep(1.0)
            for host in hosts:  # the new generation's cache store: opening it creates its file
                r = httpx.get(f"http://{host}:{port}/keys/cache", timeout=30)
                assert r.status_code == 200, r.text
            logs = [pod.log() for pod in pods]
        hits = int(redis.command("GET", "hits").split(b"\r\n")[1])
    finally:
        redis.stop()
    assert load.unexpected("200") == {}
    assert load.count("200") > 30
    assert hits == load.count("200")  # every successful increment counted once, across replicas and swaps
    for i in range(len(hosts)):  # the new generation's store, next to the runtime config it came from
        assert (tmp_path / f"pod{i}" / "runtime" / "cache.db").is_file()
    for log in logs:
        assert PASSWORD not in log
