"""The supervisor's state machine on its real parts: app files parsed and reconciled as the daemon does,
apps pulled from OCI image-layout directories (no registry), a real WAT-built Spin 1.x module compiled
in-process, served on a loopback port and asked over HTTP. No fixed sleeps: each step waits for the
state it expects, with a deadline."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
import wasmtime

from support.servers import free_port
from support.spinpush import SpinAppSpec, SpinComponent, build_artifact, write_oci_layout
from tauon.control.reconcile import reconcile
from tauon.control.spec import parse_spec
from tauon.control.supervisor import Supervisor
from tauon.metrics import Metrics
from tauon.settings import Settings
from tauon.wasm.engine import WasmEngine
from tauon.wasm.pool import PoolSettings

ROOT = Path(__file__).resolve().parents[2]
WAT = ROOT / "tests/fixtures/legacy/spin-legacy-app.wat"


def write_image(directory: Path, version: str) -> str:
    """An OCI layout of the Spin 1.x legacy app whose `/config/version` answers `version`."""
    wasm = bytes(wasmtime.wat2wasm(WAT.read_text()))
    app = SpinAppSpec(name="legacy", components=[SpinComponent(id="legacy", wasm=wasm,
                                                               config={"version": version})],
                      triggers=[{"route": "/...", "component": "legacy"}])
    artifact = build_artifact(app)
    write_oci_layout(artifact, directory / "images" / version)
    return artifact.digest


class Harness:
    def __init__(self, tmp: Path, supervisor: Supervisor, port: int) -> None:
        self.tmp = tmp
        self.supervisor = supervisor
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.states: list[str] = []
        """Every app's state at each change the supervisor reported (its on_change)."""

    def write(self, name: str, reference: str, **extra: object) -> None:
        """Apply the directory as if it held this one app file (the daemon's rescan -> reconcile)."""
        data = json.dumps({"reference": reference, "address": f"127.0.0.1:{self.port}", **extra})
        self.supervisor.apply(reconcile({name: parse_spec(name, data.encode())}, self.supervisor.held()))

    def remove_all(self) -> None:
        self.supervisor.apply(reconcile({}, self.supervisor.held()))

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        try:
            with anyio.fail_after(timeout):
                while not check():
                    await anyio.sleep(0.01)
        except TimeoutError:
            raise AssertionError(f"{what}: not reached within {timeout}s") from None

    async def get(self, path: str) -> Response:
        """A GET on a new connection (raw HTTP/1.1: no client set-up to wait for)."""
        with anyio.fail_after(10):
            async with await anyio.connect_tcp("127.0.0.1", self.port) as stream:
                await stream.send(f"GET {path} HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n".encode())
                data = b""
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        data += await stream.receive()
        head, _, body = data.partition(b"\r\n\r\n")
        return Response(int(head.split(b" ", 2)[1]), body.decode())


@dataclass
class Response:
    status: int
    text: str


@asynccontextmanager
async def supervising(tmp: Path, **overrides: object) -> AsyncIterator[Harness]:
    settings = Settings(watch_dir=tmp, state_root=tmp / "state", cache_dir=tmp / "cache", progress="off",
                        drain_timeout=1.0, pool=PoolSettings(instances=0), **overrides)  # type: ignore[arg-type]
    engine = WasmEngine(settings.cache_dir / "compiled", pool=settings.pool, run_slots=2)
    engine.start()
    try:
        async with anyio.create_task_group() as tg:
            harness: Harness | None = None

            def changed() -> None:
                if harness is not None:
                    harness.states += [slot.state for slot in harness.supervisor.slots.values()]

            supervisor = Supervisor(settings, engine, tg, metrics=Metrics(), on_change=changed)
            harness = Harness(tmp, supervisor, free_port())
            try:
                yield harness
            finally:
                with anyio.CancelScope(shield=True):
                    await supervisor.shutdown()
                tg.cancel_scope.cancel()
    finally:
        engine.stop()


def failures(supervisor: Supervisor, app: str) -> float:
    value = supervisor.metrics.registry.get_sample_value("tauon_app_failures_total", {"app": app})
    return value or 0.0


def test_start_update_failed_update_and_stop(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    v1, v2 = write_image(tmp_path, "v1"), write_image(tmp_path, "v2")

    async def main() -> None:
        async with supervising(tmp_path) as h:
            h.write("app.json", "./images/v1")
            slot = h.supervisor.slots["app.json"]
            assert slot.state == "pending"
            await h.supervisor.wait_settled()
            assert h.states == ["pending", "pulling", "starting", "running"]
            assert slot.generation is not None and slot.generation.plan.digest == v1
            assert (await h.get("/config/version")).text == "v1"

            # A changed file whose image cannot be pulled: generation 1 keeps serving, the error shows.
            h.write("app.json", "./images/missing")
            await h.until(lambda: slot.error is not None, "the failed update")
            assert slot.state == "running" and "images/missing" in slot.error
            assert slot.generation.number == 1
            assert (await h.get("/config/version")).text == "v1"
            await h.supervisor.wait_attempts()  # a failed attempt has settled too

            # Fixed: generation 2 on the same listener; the error is gone and v1 is retired.
            old = slot.generation
            h.write("app.json", "./images/v2")
            await h.until(lambda: slot.generation is not None and slot.generation.plan.digest == v2,
                          "v2 serving")
            assert slot.state == "running" and slot.error is None and slot.generation.number == 2
            assert (await h.get("/config/version")).text == "v2"
            await h.until(lambda: old.services is None, "v1 retired")
            assert slot.replaced is not None and slot.replaced.digest == v1

            # SIGHUP with the same digest: nothing changes.
            h.supervisor.reload_all()
            await h.supervisor.wait_attempts()
            assert slot.generation.number == 2 and "still resolves to" in caplog.text

            # Removed: the slot goes, the port closes, the generation is released.
            serving = slot.generation
            h.remove_all()
            assert "app.json" not in h.supervisor.slots and slot.removed
            await h.until(lambda: serving.services is None, "stopped")
            with pytest.raises(OSError):  # refused
                await h.get("/config/version")

    with caplog.at_level(logging.INFO, logger="tauon"):
        anyio.run(main)
    assert "app.json: stopped" in caplog.text


def test_a_failing_app_backs_off_and_then_serves(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An app that never served is `failed` and retried after 1 s, then 2 s (capped by max_backoff);
    readiness does not wait for it; once its image appears it serves without a new event."""
    write_image(tmp_path, "v1")

    async def main() -> None:
        async with supervising(tmp_path, max_backoff=2.0) as h:
            h.write("late.json", "./images/late")
            slot = h.supervisor.slots["late.json"]
            await h.supervisor.wait_settled()
            assert slot.state == "failed" and slot.generation is None
            await h.until(lambda: failures(h.supervisor, "late.json") >= 2, "a retry")
            (tmp_path / "images" / "v1").rename(tmp_path / "images" / "late")
            await h.until(lambda: slot.state == "running", "served after retries")
            assert slot.error is None
            assert (await h.get("/config/version")).text == "v1"

    with caplog.at_level(logging.ERROR, logger="tauon"):
        anyio.run(main)
    retries = [r for r in caplog.records if "retrying in" in r.getMessage()]
    assert [r.getMessage().rsplit(" ", 1)[1] for r in retries[:2]] == ["1s", "2s"]
    assert retries[1].created - retries[0].created >= 0.9  # it waited out the first backoff


def test_a_file_replaced_while_it_is_pulled_supersedes_the_attempt(tmp_path: Path) -> None:
    """Two versions in a row: the second's run cancels the first's; only the second serves."""
    write_image(tmp_path, "v1")
    v2 = write_image(tmp_path, "v2")

    async def main() -> None:
        async with supervising(tmp_path) as h:
            h.write("app.json", "./images/v1")
            h.write("app.json", "./images/v2")
            slot = h.supervisor.slots["app.json"]
            await h.until(lambda: slot.state == "running", "running")
            await h.supervisor.wait_attempts()
            assert slot.generation is not None and slot.generation.plan.digest == v2
            assert slot.generation.number == 1  # v1's attempt never got to build a generation
            assert (await h.get("/config/version")).text == "v2"

    anyio.run(main)
