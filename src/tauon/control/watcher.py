"""Ticks that say "rescan the watched directory now".

watchfiles batches are unordered and lossy (renames, ConfigMap swaps and editors all look different), so
an event carries no meaning beyond "something changed": the consumer rescans and diffs. Ticks also come
from a periodic resync (the safety net), from explicit requests (SIGHUP, retry timers), and when a
deleted watched directory comes back, which watchfiles itself never reports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from watchfiles import awatch

log = logging.getLogger("tauon.watch")


class Watcher:
    def __init__(self, directory: Path, *, resync_interval: float, poll_missing: float = 1.0) -> None:
        self.directory = directory
        self.resync_interval = resync_interval
        self.poll_missing = poll_missing
        send, receive = anyio.create_memory_object_stream[str](math.inf)
        self._send: MemoryObjectSendStream[str] = send
        self._receive: MemoryObjectReceiveStream[str] = receive
        self.armed = anyio.Event()

    def request(self, reason: str) -> None:
        """Ask for a rescan from anywhere in the event loop (retry timers, SIGHUP)."""
        self._send.send_nowait(reason)

    async def ticks(self) -> AsyncIterator[str]:
        """Yield one reason per rescan; bursts are coalesced into one tick."""
        async for reason in self._receive:
            # Coalesce whatever else queued up meanwhile: one rescan covers them all.
            while True:
                try:
                    self._receive.receive_nowait()
                except anyio.WouldBlock:
                    break
            yield reason

    async def _resync_loop(self) -> None:
        while True:
            await anyio.sleep(self.resync_interval)
            self.request("periodic resync")

    async def _watch_loop(self) -> None:
        while True:
            if not self.directory.is_dir():
                log.warning("watched directory %s is missing; waiting for it to come back", self.directory)
                self.armed.set()
                while not self.directory.is_dir():
                    await anyio.sleep(self.poll_missing)
                log.info("watched directory %s is back", self.directory)
                self.request("directory recreated")
            stop = anyio.Event()
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._watch_gone, stop)
                    # A tiny debounce merges the add/delete pairs editors produce, without delaying much.
                    async for changes in awatch(
                        self.directory, recursive=False, stop_event=stop, debounce=50, step=20,
                        watch_filter=None, yield_on_timeout=False, rust_timeout=1000,
                    ):
                        names = sorted({Path(p).name for _, p in changes})
                        self.request("changed: " + ", ".join(names[:5]) + (" ..." if len(names) > 5 else ""))
                    tg.cancel_scope.cancel()
            except FileNotFoundError:
                pass
            except OSError as exc:  # e.g. inotify limits: fall back to the periodic resync alone
                log.error("cannot watch %s: %s; relying on periodic resync", self.directory, exc)
                await anyio.sleep(self.resync_interval)
            except Exception as exc:  # watchfiles' own errors, often in a group
                # e.g. a file name that is not UTF-8: watchfiles cannot decode it and stops. Rescan
                # (the scan reports the name) and watch again; events meanwhile are caught by the rescan.
                log.warning("watching %s stopped: %s; watching again", self.directory, _reason(exc))
                await anyio.sleep(self.poll_missing)
                self.request("watch re-armed")

    async def _watch_gone(self, stop: anyio.Event) -> None:
        # awatch goes silent after its directory is deleted; notice that ourselves and re-arm.
        self.armed.set()
        while self.directory.is_dir():
            await anyio.sleep(self.poll_missing)
        self.request("directory deleted")
        stop.set()


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


@asynccontextmanager
async def run_watcher(directory: Path, *, resync_interval: float) -> AsyncIterator[Watcher]:
    watcher = Watcher(directory, resync_interval=resync_interval)
    async with anyio.create_task_group() as tg:
        _start(tg, watcher)
        watcher.request("startup")
        await watcher.armed.wait()
        try:
            yield watcher
        finally:
            tg.cancel_scope.cancel()


def _start(tg: TaskGroup, watcher: Watcher) -> None:
    tg.start_soon(watcher._watch_loop)
    tg.start_soon(watcher._resync_loop)
