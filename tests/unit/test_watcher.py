"""The directory watcher (control/watcher.py) on real temp directories and real inotify events, and
the scan it triggers (control/dirscan.py). No fixed sleeps: each test waits for the tick it expects,
with a deadline."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from tauon.control.dirscan import MAX_APP_FILE_BYTES, scan_directory
from tauon.control.spec import AppSpec
from tauon.control.watcher import Watcher, _start, run_watcher
from tauon.errors import SpecError

GOOD = b'{"reference": "r:1", "address": "127.0.0.1:8000"}'
DEADLINE = 20.0


async def next_tick(ticks: AsyncIterator[str], timeout: float = DEADLINE) -> str:
    with anyio.fail_after(timeout):
        return await ticks.__anext__()


async def tick_matching(ticks: AsyncIterator[str], text: str) -> str:
    """The first tick naming `text` (inotify may report an earlier step of the same write first)."""
    with anyio.fail_after(DEADLINE):
        while True:
            reason = await ticks.__anext__()
            if text in reason:
                return reason


@asynccontextmanager
async def watching(directory: Path, *, poll_missing: float = 1.0) -> AsyncIterator[AsyncIterator[str]]:
    """A watcher polling for a missing directory every `poll_missing` s (run_watcher: 1 s)."""
    watcher = Watcher(directory, resync_interval=3600, poll_missing=poll_missing)
    async with anyio.create_task_group() as tg:
        _start(tg, watcher)
        await watcher.armed.wait()
        yield watcher.ticks()
        tg.cancel_scope.cancel()


def test_startup_then_every_kind_of_write_is_a_tick(tmp_path: Path) -> None:
    async def main() -> list[str]:
        seen = []
        async with run_watcher(tmp_path, resync_interval=3600) as watcher:
            ticks = watcher.ticks()
            seen.append(await next_tick(ticks))
            (tmp_path / "a.json").write_bytes(GOOD)  # a plain write
            seen.append(await tick_matching(ticks, "a.json"))
            temp = tmp_path / ".b.json.tmp"  # temp file, then rename: what atomic writers do
            temp.write_bytes(GOOD)
            temp.rename(tmp_path / "b.json")
            seen.append(await tick_matching(ticks, "b.json"))
            (tmp_path / "a.json").unlink()
            seen.append(await tick_matching(ticks, "a.json"))
            watcher.request("SIGHUP")  # explicit requests come through the same stream
            seen.append(await tick_matching(ticks, "SIGHUP"))
        return seen

    seen = anyio.run(main)
    assert seen[0] == "startup"
    assert all(reason.startswith("changed: ") for reason in seen[1:4])
    assert seen[4] == "SIGHUP"


def test_a_burst_of_requests_is_one_tick(tmp_path: Path) -> None:
    async def main() -> tuple[str, int]:
        watcher = Watcher(tmp_path, resync_interval=3600)
        for reason in ("first", "second", "third"):
            watcher.request(reason)
        tick = await next_tick(watcher.ticks())
        return tick, watcher._receive.statistics().current_buffer_used

    assert anyio.run(main) == ("first", 0)  # one rescan covers the three


def test_a_configmap_symlink_swap_is_a_tick(tmp_path: Path) -> None:
    """kubelet writes a new timestamped directory and swaps `..data` to it: the app file's name
    never appears in the event, yet the rescan reads the new content."""
    def version(name: str, port: int) -> None:
        real = tmp_path / name
        real.mkdir()
        (real / "cm.json").write_bytes(GOOD.replace(b"8000", str(port).encode()))

    version("..2026_01", 8001)
    os.symlink("..2026_01", tmp_path / "..data")
    os.symlink("..data/cm.json", tmp_path / "cm.json")

    async def main() -> str:
        async with watching(tmp_path) as ticks:
            assert "cm.json" in scan_directory(tmp_path).apps
            version("..2026_02", 8002)
            os.symlink("..2026_02", tmp_path / "..data_tmp")
            os.rename(tmp_path / "..data_tmp", tmp_path / "..data")
            return await tick_matching(ticks, "..data")

    assert "..data" in anyio.run(main)
    spec = scan_directory(tmp_path).apps["cm.json"]
    assert isinstance(spec, AppSpec) and spec.address is not None and spec.address.port == 8002


def test_a_deleted_directory_is_noticed_and_watched_again_when_it_is_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    watched = tmp_path / "apps"
    watched.mkdir()

    async def main() -> list[str]:
        async with watching(watched, poll_missing=0.02) as ticks:
            (watched / "a.json").write_bytes(GOOD)
            await tick_matching(ticks, "a.json")
            (watched / "a.json").unlink()
            watched.rmdir()
            gone = await tick_matching(ticks, "directory deleted")
            assert not scan_directory(watched).directory_present  # the daemon keeps its apps
            with anyio.fail_after(DEADLINE):  # the old watch has ended and the wait has begun
                while "is missing; waiting for it" not in caplog.text:
                    await anyio.sleep(0.01)
            watched.mkdir()
            back = await tick_matching(ticks, "directory recreated")
            (watched / "c.json").write_bytes(GOOD)  # the new directory is watched again
            again = await tick_matching(ticks, "c.json")
            return [gone, back, again]

    with caplog.at_level(logging.INFO, logger="tauon.watch"):
        assert anyio.run(main)[2].startswith("changed: ")


def test_scan_refuses_what_cannot_be_an_app_file_by_name(tmp_path: Path) -> None:
    (tmp_path / "ok.json").write_bytes(GOOD)
    (tmp_path / "big.json").write_bytes(b" " * MAX_APP_FILE_BYTES + GOOD)
    os.mkdir(tmp_path / "dir.json")
    raw = os.fsencode(tmp_path) + b"/caf\xe9.json"
    with open(raw, "wb") as fh:
        fh.write(GOOD)
    apps = scan_directory(tmp_path).apps
    assert isinstance(apps["ok.json"], AppSpec) and "dir.json" not in apps
    big = apps["big.json"]
    assert isinstance(big, SpecError) and "larger than 1 MiB" in str(big)
    name = "caf\\xe9.json"
    bad = apps[name]
    assert isinstance(bad, SpecError) and "not valid UTF-8" in str(bad) and name in str(bad)
