"""Instance reuse for WASIp3 handlers (executors/reuse.py), as Spin does it for `wasi:http/handler@0.3.x`
(spin-spec §3.7): the real spin-sdk 5 app (python-p3) through the registry and the `tauon` process.

The guest's `/count` route answers how many requests its instance has handled (a module global), so
each test reads straight from the guest which instance served it. One serving process
(`--workers 1`), so consecutive requests meet the same idle instances.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.components import extra_component_path
from support.daemon import TauonProcess, free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(registry: RegistryServer) -> str:
    wasm = extra_component_path("python-p3").read_bytes()
    app = SpinAppSpec(name="p3", components=[SpinComponent(id="p3", wasm=wasm,
                                                           metadata={"key_value_stores": ["default"]})],
                      triggers=[{"route": "/...", "component": "p3"}])
    return push_app(registry, "wasip3/reuse", "v1", app)


@pytest.fixture(scope="module")
def cache(shared_cache: Path) -> Path:
    return shared_cache  # the 25 MB component compiles once for the session


@contextlib.contextmanager
def serve(tmp: Path, cache: Path, reference: str, *args: str,
          **app: object) -> Iterator[tuple[str, TauonProcess]]:
    port = free_port()
    with run_tauon(tmp, "--workers", "1", *args, cache_dir=cache) as tauon:
        (tauon.watch_dir / "p3.json").write_text(app_file(reference, port, **app))
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/echo", timeout=300)
        yield url, tauon


def counts(client: httpx.Client, url: str, n: int, pause: float = 0.05) -> list[int]:
    """`n` sequential /count requests. Between two, a pause: a response is out just before its task
    exits, and a request arriving before the instance is back (a busy CI machine can take longer than
    the executor's hand-over wait) would rightly get a fresh one, which these tests do not count on."""
    replies = []
    for _ in range(n):
        replies.append(client.get(f"{url}/count"))
        time.sleep(pause)
    assert all(r.status_code == 200 for r in replies), [r.text for r in replies]
    return [int(r.text.removeprefix("count ")) for r in replies]


def cycling(start: int, n: int, limit: int) -> list[int]:
    """What `n` sequential requests read when the first reads `start` and an instance serves `limit`."""
    seen = [start]
    while len(seen) < n:
        seen.append(seen[-1] + 1 if seen[-1] < limit else 1)
    return seen


def test_an_instance_serves_up_to_the_reuse_count_then_a_fresh_one_takes_over(
        tmp_path: Path, cache: Path, reference: str) -> None:
    with (serve(tmp_path, cache, reference, "--max-instance-reuse-count", "4",
                "--idle-instance-timeout", "30") as (url, _),
          httpx.Client(timeout=60) as client):
        seen = counts(client, url, 11)
    assert 2 <= seen[0] <= 4  # wait_http's request was the first instance's first
    assert seen == cycling(seen[0], 11, 4)


def test_the_default_is_spins_128_and_state_persists_across_requests(
        tmp_path: Path, cache: Path, reference: str) -> None:
    with (serve(tmp_path, cache, reference, "--idle-instance-timeout", "30") as (url, _),
          httpx.Client(timeout=60) as client):
        assert client.put(f"{url}/kv/a", content=b"1").text == "stored"
        seen = counts(client, url, 130)
        assert client.get(f"{url}/kv/a").content == b"1"
    assert seen[0] >= 3  # after wait_http's request and the PUT
    assert seen == cycling(seen[0], 130, 128)
    assert 1 in seen


def test_reuse_count_1_gives_every_request_a_fresh_instance(
        tmp_path: Path, cache: Path, reference: str) -> None:
    with (serve(tmp_path, cache, reference, "--max-instance-reuse-count", "1") as (url, _),
          httpx.Client(timeout=60) as client):
        assert counts(client, url, 5) == [1, 1, 1, 1, 1]


def test_an_idle_instance_is_dropped_after_the_idle_timeout(
        tmp_path: Path, cache: Path, reference: str) -> None:
    with (serve(tmp_path, cache, reference, "--idle-instance-timeout", "0.5") as (url, _),
          httpx.Client(timeout=60) as client):
        first = counts(client, url, 3)
        assert first[1:] == [first[0] + 1, first[0] + 2]
        time.sleep(1.5)  # idle past the timeout: the instance is gone
        assert counts(client, url, 2) == [1, 2]


def test_an_instance_that_timed_out_is_not_reused(tmp_path: Path, cache: Path, reference: str) -> None:
    with (serve(tmp_path, cache, reference, "--idle-instance-timeout", "30",
                limits={"request_timeout": 2}) as (url, tauon),
          httpx.Client(timeout=60) as client):
        before = counts(client, url, 2)
        assert before[1] == before[0] + 1
        assert client.get(f"{url}/spin", params={"ms": "100"}).text == "spun"  # within the limit
        assert counts(client, url, 1) == [before[1] + 2]
        assert client.get(f"{url}/spin", params={"ms": "10000"}).status_code == 500
        tauon.wait_log(r"p3\.json.*(timed out|timeout|interrupt)", timeout=30)
        assert counts(client, url, 2) == [1, 2]


def test_concurrent_requests_each_take_an_instance_and_a_new_generation_starts_afresh(
        tmp_path: Path, cache: Path, reference: str) -> None:
    with serve(tmp_path, cache, reference, "--idle-instance-timeout", "30") as (url, tauon):
        with httpx.Client(timeout=120) as client, concurrent.futures.ThreadPoolExecutor(4) as pool:
            spins = list(pool.map(lambda _: client.get(f"{url}/spin", params={"ms": "300"}).text, range(4)))
            assert spins == ["spun"] * 4
            # the spins left up to 4 idle instances: every later request finds one, none is fresh
            assert all(n >= 2 for n in counts(client, url, 8))
        port = int(url.rsplit(":", 1)[1])
        (tauon.watch_dir / "p3.json").write_text(app_file(reference, port, limits={"request_timeout": 20}))
        tauon.wait_log(r"p3\.json: updated to generation 2", timeout=120)
        with httpx.Client(timeout=60) as client:
            assert counts(client, url, 3) == [1, 2, 3]
