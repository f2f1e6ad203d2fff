"""A compile child started while an app's pull is still downloading, so that its start-up overlaps the
download instead of following it.

A compile child spends ~100 ms starting (Python, wasmtime, tauon's compile modules) before it reads its
request (wasm/compile_child.py). A new app's pull spends about as long downloading its wasm, and its
compile can only start after that. So when a pull starts downloading (which an app whose blobs are
cached, as in a warm restart, never does), `head_start` starts a child that loads its modules and waits
for a request; the next compile child run (wasm/compile_batch.py), this app's or another's, takes it
instead of starting one. A child not taken by the time its app's deploy has built its generation (its
code was cached after all, or the attempt failed) is handed to another deploy that wanted one, or
stopped if none is left. At most one such child waits at a time in the process: a cold start of many
apps starts no more children than before, only earlier.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.abc import Process

log = logging.getLogger("tauon.wasm.sandbox")


@dataclass(eq=False)
class _Waiting:
    process: Process
    taken: bool = False


_waiting: _Waiting | None = None
"""The child started ahead of need, until a compile child run takes it or its deploy stops it."""
_starting = False
_open: list[_HeadStart] = []
"""Deploys in progress: one ending with its child untaken hands it to one that wanted a child too."""


async def open_child() -> Process:
    """A new compile child (it reads its request on stdin)."""
    return await anyio.open_process([sys.executable, "-m", "tauon.wasm.compile_child"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def take() -> Process | None:
    """The child waiting for a request, if one is (its owner will not stop it now)."""
    global _waiting
    waiting, _waiting = _waiting, None
    if waiting is None or waiting.process.returncode is not None:
        return None  # none, or it went (killed from outside): the caller starts one as before
    waiting.taken = True
    return waiting.process


@contextlib.asynccontextmanager
async def head_start(app_id: str) -> AsyncIterator[Callable[[], None]]:
    """Yields `want`, callable from any thread but the event loop's (a pull's progress sink): it
    starts a child unless one waits or is starting, and returns once it has. On exit, a child this
    started (or was handed) and nobody took goes to another deploy in progress that wanted one, or is
    stopped. No task group: the deploy's own errors pass through as they are."""
    start = _HeadStart(app_id, anyio.lowlevel.current_token())
    _open.append(start)
    try:
        yield start.want
    finally:
        with anyio.CancelScope(shield=True):
            await start.close()


class _HeadStart:
    def __init__(self, app_id: str, token: anyio.lowlevel.EventLoopToken) -> None:
        self.app_id = app_id
        self.token = token
        self.wanted = False
        self.closed = False
        self.mine: _Waiting | None = None

    def want(self) -> None:
        if self.wanted or self.closed:
            return
        self.wanted = True
        # RuntimeError: the event loop has gone (a pull thread abandoned at shutdown).
        with contextlib.suppress(RuntimeError):
            anyio.from_thread.run(self._start, token=self.token)

    async def _start(self) -> None:
        global _waiting, _starting
        if self.closed or _waiting is not None or _starting:
            return
        _starting = True
        try:
            with anyio.CancelScope(shield=True):  # a child started is always recorded or stopped
                waiting = _Waiting(await open_child())
                if self.closed:  # its deploy ended while it started
                    await _stop(waiting)
                    return
        except OSError as exc:  # out of processes or fds: the compile tries again, and says so
            log.debug("%s: cannot start a compile child ahead of its compile: %s", self.app_id, exc)
            return
        finally:
            _starting = False
        self.mine = _waiting = waiting
        log.debug("%s: started a compile child while its pull downloads", self.app_id)

    async def close(self) -> None:
        self.closed = True
        _open.remove(self)
        mine, self.mine = self.mine, None
        if mine is None or mine.taken:
            return
        if mine is _waiting:  # alive and untaken: another deploy that wanted one may use it yet
            heir = next((o for o in _open if o.wanted and o.mine is None), None)
            if heir is not None:  # (a cold start of many apps: their compiles queue for slots)
                heir.mine = mine
                return
        await _stop(mine)


async def _stop(waiting: _Waiting) -> None:
    global _waiting
    if _waiting is waiting:
        _waiting = None
    with contextlib.suppress(ProcessLookupError):  # it went already (killed from outside)
        waiting.process.kill()
    await waiting.process.wait()
    await waiting.process.aclose()
