"""What an operator must be able to trust: no dropped requests, last good versions, drains, caches."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx

from support.apps import app_file, push_app, push_sleep_app
from support.daemon import free_port, run_tauon, wait_http, wait_refused
from support.fixtures import fixture_path
from support.load import Load
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent, build_artifact, push


def test_zero_failed_requests_while_replaced_under_load(tmp_path: Path, registry: RegistryServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    refs = [push_sleep_app(registry, "resilience/load", f"v{i}", version=f"v{i}") for i in range(2)]
    with run_tauon(tmp_path) as tauon:
        path = tauon.watch_dir / "app.json"
        path.write_text(app_file(refs[0], port))
        wait_http(url, contains="in v0")
        # An answer's outcome is the version that served it: both must appear, and nothing else.
        with Load(url, timeout=10, outcome=lambda r: f"{r.status_code} {r.text.split(' in ')[-1].strip()}") \
                as load:
            swaps = 8
            for i in range(1, swaps + 1):
                time.sleep(0.5)
                path.write_text(app_file(refs[i % 2], port))
            tauon.wait_log(r"updated to generation", count=swaps, timeout=30)
            time.sleep(0.5)
    assert load.unexpected("200 v0", "200 v1") == {}
    assert load.count("200 v0") > 0 and load.count("200 v1") > 0
    assert load.total() > 100


def test_swap_lets_in_flight_requests_finish_on_the_old_generation(
        tmp_path: Path, registry: RegistryServer) -> None:
    port = free_port()
    old = push_sleep_app(registry, "resilience/drain", "old", version="old")
    new = push_sleep_app(registry, "resilience/drain", "new", version="new")
    with run_tauon(tmp_path, admin=True) as tauon:
        path = tauon.watch_dir / "app.json"
        path.write_text(app_file(old, port))
        wait_http(f"http://127.0.0.1:{port}/?0", contains="in old")
        slow: dict[str, httpx.Response] = {}
        t = threading.Thread(target=lambda: slow.update(r=httpx.get(f"http://127.0.0.1:{port}/?2500",
                                                                    timeout=20)))
        t.start()
        tauon.wait_in_flight()
        path.write_text(app_file(new, port))
        wait_http(f"http://127.0.0.1:{port}/?0", contains="in new")
        t.join()
        assert slow["r"].status_code == 200
        assert slow["r"].text.strip() == "slept 2500 ms in old"


def test_sigterm_drains_in_flight_requests_and_exits_0(tmp_path: Path, registry: RegistryServer) -> None:
    port = free_port()
    ref = push_sleep_app(registry, "resilience/term", "v1", version="v1")
    with run_tauon(tmp_path, admin=True) as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(ref, port))
        wait_http(f"http://127.0.0.1:{port}/?0", contains="in v1")
        slow: dict[str, object] = {}

        def call() -> None:
            try:
                slow["r"] = httpx.get(f"http://127.0.0.1:{port}/?2000", timeout=20)
            except httpx.HTTPError as exc:
                slow["r"] = exc

        t = threading.Thread(target=call)
        t.start()
        tauon.wait_in_flight()
        tauon.signal(signal.SIGTERM)
        t.join()
        code = tauon.proc.wait(30)
        response = slow["r"]
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 200 and "slept 2000 ms" in response.text
        assert code == 0
        log = tauon.log()
        assert "SIGTERM: stopping" in log and "tauon stopped" in log
    wait_refused(f"http://127.0.0.1:{port}/?0", timeout=5)


def test_registry_down_app_starts_from_cache(tmp_path: Path, registry: RegistryServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    ref = push_sleep_app(registry, "resilience/offline", "v1", version="cached")
    cache = tmp_path / "shared-cache"
    with run_tauon(tmp_path / "first", cache_dir=cache) as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(ref, port))
        wait_http(url, contains="in cached")
    with registry.stopped():
        watch = tmp_path / "second" / "apps"
        watch.mkdir(parents=True)
        (watch / "app.json").write_text(app_file(ref, port))
        started = time.monotonic()
        with run_tauon(tmp_path / "second", cache_dir=cache, watch_dir=watch) as tauon:
            wait_http(url, contains="in cached", timeout=20)
            elapsed = time.monotonic() - started
            assert "registry unreachable; using cached" in tauon.log()
            # An app never pulled fails fast with a clear error instead of hanging.
            other = free_port()
            (watch / "never.json").write_text(app_file(f"{registry.host}/resilience/never:v1", other))
            log = tauon.wait_log(r"never\.json: .*(unreachable|refused)", timeout=15)
            assert "retrying in" in log
    assert elapsed < 15


def test_corrupt_blob_is_refused_and_old_generation_keeps_serving(
        tmp_path: Path, registry: RegistryServer) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    good = push_sleep_app(registry, "resilience/corrupt", "good", version="good")
    app = SpinAppSpec(
        name="sleepy", components=[SpinComponent(id="sleepy", wasm=fixture_path("sleep").read_bytes(),
                                                 env={"VERSION": "corrupted"})],
        triggers=[{"route": "/...", "component": "sleepy", "executor": {"type": "wagi"}}])
    artifact = build_artifact(app)
    push(artifact, registry.host, "resilience/corrupt", "bad")
    lock_digest = json.loads(artifact.manifest)["layers"][-1]["digest"]
    blob = registry.blob_file(lock_digest)
    data = bytearray(blob.read_bytes())
    data[10] ^= 0x01
    blob.write_bytes(bytes(data))
    with run_tauon(tmp_path) as tauon:
        path = tauon.watch_dir / "app.json"
        path.write_text(app_file(good, port))
        wait_http(url, contains="in good")
        path.write_text(app_file(f"{registry.host}/resilience/corrupt:bad", port))
        log = tauon.wait_log(r"app\.json: .*" + lock_digest.replace(":", ".")[:30])
        assert "generation 1 keeps serving" in log
        for _ in range(20):
            assert "in good" in httpx.get(url).text
        assert not list((tauon.cache_dir / "blobs" / "sha256").glob(lock_digest.split(":")[1]))


def test_guest_failures_cost_only_their_request(tmp_path: Path, registry: RegistryServer) -> None:
    port = free_port()
    components = [SpinComponent(id=name, wasm=fixture_path(name).read_bytes())
                  for name in ("echo", "loop", "trap", "oom")]
    app = SpinAppSpec(name="failing", components=components, triggers=[
        {"route": f"/{c.id}/...", "component": c.id, "executor": {"type": "wagi"}} for c in components])
    ref = push_app(registry, "resilience/failing", "v1", app)
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "app.json").write_text(
            app_file(ref, port, limits={"request_timeout": 1, "memory_mib": 16}))
        wait_http(f"http://127.0.0.1:{port}/echo/x", contains="REQUEST_METHOD")
        results: dict[str, httpx.Response] = {}
        threads = [threading.Thread(target=lambda n=n: results.update({n: httpx.get(
            f"http://127.0.0.1:{port}/{n}/", timeout=20)})) for n in ("loop", "trap", "oom")]
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(0.2)
        # While the bad guests misbehave, a good request is served promptly.
        r = httpx.get(f"http://127.0.0.1:{port}/echo/ok", timeout=5)
        assert r.status_code == 200
        for t in threads:
            t.join()
        assert time.monotonic() - started < 10
        for name in ("loop", "trap", "oom"):
            assert results[name].status_code == 500 and results[name].content == b"", name
        log = tauon.log()
        assert "app.json/loop" in log and "app.json/trap" in log and "app.json/oom" in log
        assert httpx.get(f"http://127.0.0.1:{port}/echo/again").status_code == 200


def test_files_inline_data_and_archive_layers_are_mounted_read_only(
        tmp_path: Path, registry: RegistryServer) -> None:
    big = bytes(range(256)) * 40
    files = {"small.txt": b"tiny file, inlined in the lock\n", "dir/big.bin": big}
    refs = {}
    for mode in ("simple", "archive"):
        app = SpinAppSpec(name="files", components=[
            SpinComponent(id="files", wasm=fixture_path("files").read_bytes(), files=files)],
            triggers=[{"route": "/...", "component": "files", "executor": {"type": "wagi"}}])
        refs[mode] = push_app(registry, "resilience/files", mode, app, mode=mode)
    with run_tauon(tmp_path) as tauon:
        for mode in ("simple", "archive"):
            port = free_port()
            (tauon.watch_dir / f"{mode}.json").write_text(app_file(refs[mode], port))
            base = f"http://127.0.0.1:{port}"
            r = wait_http(f"{base}/small.txt", contains="tiny file")
            assert r.headers["x-write"].startswith("denied"), mode
            assert httpx.get(f"{base}/dir/big.bin").content == big, mode
            assert httpx.get(f"{base}/missing").status_code == 404


def test_stop_drains_then_closes(tmp_path: Path, registry: RegistryServer) -> None:
    port = free_port()
    ref = push_sleep_app(registry, "resilience/stop", "v1", version="v1")
    with run_tauon(tmp_path, admin=True) as tauon:
        path = tauon.watch_dir / "app.json"
        path.write_text(app_file(ref, port))
        wait_http(f"http://127.0.0.1:{port}/?0", contains="in v1")
        slow: dict[str, httpx.Response] = {}
        t = threading.Thread(target=lambda: slow.update(r=httpx.get(f"http://127.0.0.1:{port}/?1500",
                                                                    timeout=20)))
        t.start()
        tauon.wait_in_flight()
        path.unlink()
        t.join()
        assert slow["r"].status_code == 200 and "slept 1500 ms" in slow["r"].text
        wait_refused(f"http://127.0.0.1:{port}/?0")


def test_start_module_on_a_plain_http_trigger_runs_as_wagi(tmp_path: Path, registry: RegistryServer) -> None:
    # Spin adapts a `_start` core module as a command, which only WAGI can serve (spin-spec §4.6).
    app = SpinAppSpec(name="plain", components=[SpinComponent(
        id="plain", wasm=fixture_path("sleep").read_bytes(), env={"VERSION": "plain"})],
        triggers=[{"route": "/...", "component": "plain"}])
    ref = push_app(registry, "resilience/plain", "v1", app)
    port = free_port()
    with run_tauon(tmp_path) as tauon:
        (tauon.watch_dir / "app.json").write_text(app_file(ref, port))
        wait_http(f"http://127.0.0.1:{port}/?0", contains="in plain")
        assert "serving it as WAGI" in tauon.log()
