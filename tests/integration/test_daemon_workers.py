"""`--workers N` through the real registry and the real tauon process: worker processes accept on the
daemon's sockets, follow every generation, share in-memory state, survive a crash, and drain on stop.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import wasmtime

from support.apps import AppImages, app_file, push_app, push_sleep_app
from support.daemon import TauonProcess, free_port, run_tauon, wait_http, wait_refused
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def images(registry: RegistryServer) -> AppImages:
    return AppImages(
        v1=push_sleep_app(registry, "workers/app", "v1", version="v1"),
        v2=push_sleep_app(registry, "workers/app", "v2", version="v2"),
    )


def status(tauon: TauonProcess) -> dict[str, Any]:
    assert tauon.admin is not None
    doc: dict[str, Any] = httpx.get(f"{tauon.admin}/status").json()
    return doc


def fresh_connections(url: str, count: int, threads: int = 8) -> list[httpx.Response]:
    """`count` GETs, each on a new connection, several at once: new connections go to whichever
    process accepts first."""
    def one(_: int) -> httpx.Response:
        return httpx.get(url, headers={"connection": "close"}, timeout=20)

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


def requests_total(tauon: TauonProcess, app: str) -> int:
    assert tauon.admin is not None
    text = httpx.get(f"{tauon.admin}/metrics").text
    return sum(int(float(v)) for v in re.findall(
        rf'^tauon_http_requests_total{{app="{re.escape(app)}",[^}}]*}} (\S+)$', text, re.M))


def wait_until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def reported(tauon: TauonProcess, app: str, served: int) -> None:
    """Until /metrics counts all `served` requests of `app`: every process that served some has
    reported them (workers do once a second)."""
    wait_until(lambda: requests_total(tauon, app) == served)


def workers_up(tauon: TauonProcess, count: int) -> None:
    """The daemon serves without waiting for its workers: they start once its initial apps are up
    (`ready`), and each logs when it is up."""
    for index in range(1, count + 1):
        log = tauon.wait_log(rf"worker {index} \(pid \d+\) serving")
        assert log.index("ready: ") < log.index(f"worker {index} (pid ")


def test_workers_accept_on_the_shared_socket_and_follow_every_generation(
        tmp_path: Path, images: AppImages) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/?0"
    with run_tauon(tmp_path, "--workers", "3", admin=True) as tauon:
        tauon.wait_log(r"3 processes serve requests: this one and 2 workers")
        workers_up(tauon, 2)
        (tauon.watch_dir / "app.json").write_text(app_file(images.v1, port))
        wait_http(url, contains="in v1")
        responses = fresh_connections(url, 90)
        assert all(r.status_code == 200 and "in v1" in r.text for r in responses)
        # Every process counts what it served; the daemon's /metrics adds them up (within a second).
        wait_until(lambda: requests_total(tauon, "app.json") == 91)
        processes = status(tauon)["processes"]
        assert [p["worker"] for p in processes] == [0, 1, 2]
        assert sum(p["requests"] for p in processes) == 91
        assert sum(1 for p in processes if p["requests"] > 0) >= 2, processes  # not one process alone
        assert tauon.admin is not None
        table = subprocess.run([sys.executable, "-m", "tauon", "status", "--admin", tauon.admin[7:]],
                               capture_output=True, text=True, check=True).stdout
        assert f"processes: 0: pid {tauon.proc.pid}, " in table and f"2: pid {processes[2]['pid']}, " in table
        metrics = httpx.get(f"{tauon.admin}/metrics").text
        assert "tauon_instance_pool_slots 3000.0" in metrics  # each process has its own pool
        assert ", 0 connections" in table

        # Keep-alive connections are spread over the processes (server/acceptor.py): 3 each.
        spread = keep_alive_spread(tauon, port, 9)
        assert max(spread) - min(spread) <= 1 and sum(spread) == 9, spread
        wait_until(lambda: [p["connections"] for p in status(tauon)["processes"]] == [0, 0, 0])

        # An update is announced once every process serves it: no old answer after the banner.
        (tauon.watch_dir / "app.json").write_text(app_file(images.v2, port))
        tauon.wait_log(r"app\.json: updated to generation 2")
        responses = fresh_connections(url, 60)
        assert [r.text.count("in v2") for r in responses] == [1] * 60

        # Removing the file closes the port in every process.
        (tauon.watch_dir / "app.json").unlink()
        tauon.wait_log(r"app\.json: stopped")
        wait_refused(url)
        pids = [p["pid"] for p in processes[1:]]
        assert tauon.stop() == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


def keep_alive_spread(tauon: TauonProcess, port: int, count: int) -> list[int]:
    """Open `count` keep-alive connections one after another, a request on each, and return how
    many each process holds (`/status`). A process slow enough (over DEFER, 25 ms, on a loaded
    machine) is passed over as stuck, so one more try is allowed before the spread is judged."""
    for _ in range(2):
        connections = []
        for _ in range(count):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
            conn.request("GET", "/?0")
            assert conn.getresponse().read()
            connections.append(conn)
        spread = [p["connections"] for p in status(tauon)["processes"]]
        for conn in connections:
            conn.close()
        if max(spread) - min(spread) <= 1:
            break
        wait_until(lambda: sum(p["connections"] for p in status(tauon)["processes"]) == 0)
    return spread


def legacy_counter_app() -> SpinAppSpec:
    wasm = wasmtime.wat2wasm((ROOT / "tests/fixtures/legacy/spin-legacy-app.wat").read_text())
    return SpinAppSpec(
        name="legacy",
        components=[SpinComponent(id="legacy", wasm=bytes(wasm), env={"MARKER": "w"},
                                  metadata={"key_value_stores": ["default"]})],
        triggers=[{"route": "/...", "component": "legacy"}],
    )


def count_of(response: httpx.Response) -> int:
    assert response.status_code == 200, response.text
    return int(response.text.strip().rsplit(None, 1)[-1])


def test_a_killed_worker_is_restarted_and_in_memory_state_is_shared(
        tmp_path: Path, registry: RegistryServer) -> None:
    ref = push_app(registry, "workers/counter", "v1", legacy_counter_app())
    port = free_port()
    url = f"http://127.0.0.1:{port}/count"
    with run_tauon(tmp_path, "--workers", "2", admin=True) as tauon:
        workers_up(tauon, 1)
        (tauon.watch_dir / "counter.json").write_text(app_file(ref, port))  # no state_dir: in memory
        last = count_of(wait_http(url))
        # One store for the app, whichever process answers: the count never repeats or skips.
        for _ in range(10):
            counts = [count_of(httpx.get(url, headers={"connection": "close"})) for _ in range(30)]
            assert counts == list(range(last + 1, last + 31))
            last = counts[-1]
            reported(tauon, "counter.json", last)
            if status(tauon)["processes"][1]["requests"] > 0:
                break  # the worker has answered some of them
        else:
            pytest.fail(f"the worker never answered: {status(tauon)['processes']}")

        worker = status(tauon)["processes"][1]
        os.kill(worker["pid"], signal.SIGKILL)
        tauon.wait_log(rf"worker 1 \(pid {worker['pid']}\) exited \(signal SIGKILL\)")
        # The daemon's own copy of the socket keeps accepting while the worker is restarted (1 s).
        after = [count_of(httpx.get(url, headers={"connection": "close"})) for _ in range(10)]
        assert after == list(range(last + 1, last + 11))
        log = tauon.wait_log(r"worker 1 \(pid \d+\) serving", count=2)
        assert "restarting in 1s; the other processes keep serving" in log
        wait_until(lambda: status(tauon)["processes"][1]["pid"] != worker["pid"]
                   and len(status(tauon)["processes"]) == 2)
        # The new worker was re-sent the app: it serves it (and the same store) too.
        for _ in range(10):
            # One at a time: the counter is a get and a set, which concurrent requests would race.
            counts = [count_of(httpx.get(url, headers={"connection": "close"})) for _ in range(20)]
            assert counts == list(range(last + 11, last + 31))
            last += 20
            reported(tauon, "counter.json", counts[-1])
            if status(tauon)["processes"][1]["requests"] > 0:
                break
        else:
            pytest.fail(f"the restarted worker never answered: {status(tauon)['processes']}")
        assert tauon.admin is not None
        metrics = httpx.get(f"{tauon.admin}/metrics").text
        assert "tauon_worker_restarts_total 1.0" in metrics


def test_stopping_drains_requests_running_in_workers_and_ignores_their_own_sigterm(
        tmp_path: Path, images: AppImages) -> None:
    port = free_port()
    with run_tauon(tmp_path, "--workers", "3", admin=True) as tauon:
        workers_up(tauon, 2)
        (tauon.watch_dir / "app.json").write_text(app_file(images.v1, port))
        wait_http(f"http://127.0.0.1:{port}/?0", contains="in v1")
        workers = [p["pid"] for p in status(tauon)["processes"][1:]]
        with ThreadPoolExecutor(9) as pool:
            slow = [pool.submit(httpx.get, f"http://127.0.0.1:{port}/?5000",
                                headers={"connection": "close"}, timeout=30) for _ in range(9)]
            # /status counts what runs in every process (workers report once a second); the
            # requests run for 5 s, so this must hold well within that.
            wait_until(lambda: status(tauon)["apps"][0]["in_flight"] == 9, timeout=4.0)
            running = [p["in_flight"] for p in status(tauon)["processes"]]
            assert sum(running) == 9 and sum(running[1:]) > 0, running  # workers have some
            # systemd's default KillMode sends SIGTERM to every process of the unit at once.
            for pid in workers:
                os.kill(pid, signal.SIGTERM)
            tauon.signal(signal.SIGTERM)
            results = [f.result() for f in slow]
        assert [r.status_code for r in results] == [200] * 9
        assert all("in v1" in r.text for r in results)
        assert tauon.proc.wait(30) == 0
        log = tauon.log()
        assert "tauon stopped" in log and "exited (signal" not in log
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists()
