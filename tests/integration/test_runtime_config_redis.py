"""The default key-value store in Redis (`[key_value_store.default] type = "redis"`), shared by several
real tauon processes as replicas behind a load balancer would share it: wasi:keyvalue/atomics
increments and compare-and-swap are exact under concurrent load across processes, the data survives a
restart without a state dir, and the Redis password never shows in logs, /status or `tauon status`."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.daemon import free_port, run_tauon, wait_http
from support.kvapp import kv_app
from support.registry import RegistryServer
from support.servers.redis import RedisServer

pytestmark = pytest.mark.integration

PASSWORD = "redis-pass-4b7e9"
REPLICAS = 3
INCREMENTS = 1000
CLIENTS_PER_REPLICA = 4
CAS_ROUNDS = 100


def hammer(bases: list[str], route: str, per_replica: int) -> list[str]:
    """`per_replica` requests to `route` on every replica at once (CLIENTS_PER_REPLICA threads each);
    returns the failures."""
    failures: list[str] = []

    def client(base: str, count: int) -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            for _ in range(count):
                r = http.get(route)
                if r.status_code != 200:
                    failures.append(f"{base}{route}: {r.status_code} {r.text[:200]}")

    threads = []
    for base in bases:
        share, extra = divmod(per_replica, CLIENTS_PER_REPLICA)
        for i in range(CLIENTS_PER_REPLICA):
            threads.append(threading.Thread(target=client, args=(base, share + (1 if i < extra else 0))))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return failures


@pytest.mark.timeout(900)  # three tauon processes compile a 37 MB component each
def test_three_replicas_share_one_redis_store(tmp_path: Path, registry: RegistryServer) -> None:
    ref = push_app(registry, "rc/kv", "redis", kv_app(["default"]))
    redis = RedisServer(tmp_path / "redis", password=PASSWORD)
    redis.start()
    rc = tmp_path / "rc.toml"
    rc.write_text(f'[key_value_store.default]\ntype = "redis"\nurl = "{redis.address}"\n')
    ports = [free_port() for _ in range(REPLICAS)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    logs: list[str] = []
    try:
        with ExitStack() as stack:
            replicas = []
            for i, port in enumerate(ports):
                # The daemon-wide runtime config, as the Kubernetes variant mounts it (no state dir).
                tauon = stack.enter_context(run_tauon(tmp_path / f"r{i}", "--runtime-config", str(rc),
                                                      admin=i == 0, wait_started=False))
                tauon.watch_dir.mkdir(parents=True, exist_ok=True)
                (tauon.watch_dir / "shop.json").write_text(app_file(ref, port))
                replicas.append(tauon)
            for base in bases:
                wait_http(f"{base}/keys/default", timeout=240)
            started = time.monotonic()
            assert hammer(bases, "/incr/default/hits", INCREMENTS) == []
            took = time.monotonic() - started
            print(f"\n{REPLICAS} replicas x {INCREMENTS} increments: {REPLICAS * INCREMENTS / took:.0f}/s "
                  f"({took:.1f} s)")
            assert httpx.get(f"{bases[1]}/incr/default/hits").text == str(REPLICAS * INCREMENTS + 1)
            assert redis.command("GET", "hits").split(b"\r\n")[1] == str(REPLICAS * INCREMENTS + 1).encode()
            # Compare-and-swap loops on one key from every replica: no lost update.
            assert hammer(bases, "/cas/default/casc", CAS_ROUNDS) == []
            assert httpx.get(f"{bases[2]}/kv/default/casc").text == str(REPLICAS * CAS_ROUNDS)
            assert httpx.put(f"{bases[0]}/kv/default/fruit", content=b"apple").status_code == 200
            assert httpx.get(f"{bases[2]}/kv/default/fruit").content == b"apple"  # another process
            status = replicas[0].admin and httpx.get(f"{replicas[0].admin}/status").text
            assert status and "shop.json" in status and PASSWORD not in status
            cli = subprocess.run([sys.executable, "-m", "tauon", "status", "--admin",
                                  replicas[0].admin.removeprefix("http://")],
                                 capture_output=True, text=True, check=False)
            assert cli.returncode == 0 and PASSWORD not in cli.stdout + cli.stderr
            logs += [t.log() for t in replicas]
        # A restart with no state dir: the data is in Redis, not in the process.
        with run_tauon(tmp_path / "again", "--runtime-config", str(rc)) as tauon:
            (tauon.watch_dir / "shop.json").write_text(app_file(ref, ports[0]))
            r = wait_http(f"{bases[0]}/kv/default/fruit", timeout=240)
            assert r.content == b"apple"
            logs.append(tauon.log())
    finally:
        redis.stop()
    for log in logs:
        assert PASSWORD not in log


def test_unreachable_redis_is_an_error_for_the_guest_not_a_crash(tmp_path: Path,
                                                                 registry: RegistryServer) -> None:
    ref = push_app(registry, "rc/kv", "redis", kv_app(["default"]))
    dead = free_port()
    port = free_port()
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "rc.toml").write_text(
            f'[key_value_store.default]\ntype = "redis"\nurl = "redis://:{PASSWORD}@127.0.0.1:{dead}"\n')
        (tauon.watch_dir / "shop.json").write_text(app_file(ref, port, runtime_config="rc.toml"))
        r = wait_http(f"http://127.0.0.1:{port}/incr/default/x", status=500, timeout=240)
        assert "Error_Other" in r.text and f"127.0.0.1:{dead}" in r.text and PASSWORD not in r.text
        assert PASSWORD not in tauon.log()
