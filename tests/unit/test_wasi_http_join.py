"""`_join`: the request task waits for its guest thread to end, even when it is cancelled meanwhile."""

from __future__ import annotations

import asyncio
import threading
import time

import anyio
import pytest

from tauon.executors.wasi_http import _join


def _resolve_later(loop: asyncio.AbstractEventLoop, future: asyncio.Future[str], delay: float) -> None:
    def run() -> None:
        time.sleep(delay)
        loop.call_soon_threadsafe(future.set_result, "guest done")

    threading.Thread(target=run, daemon=True).start()


def test_nothing_to_wait_for() -> None:
    async def main() -> None:
        done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        done.set_result("x")
        await _join(None, done)

    anyio.run(main)


@pytest.mark.parametrize("delay", [0.0, 0.2])
def test_waits_for_every_future(delay: float) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        first: asyncio.Future[str] = loop.create_future()
        second: asyncio.Future[str] = loop.create_future()
        _resolve_later(loop, first, delay)
        _resolve_later(loop, second, delay / 2)
        await _join(first, None, second)
        assert first.done() and second.done()

    anyio.run(main)


def test_cancelled_task_still_waits_then_is_cancelled() -> None:
    """anyio keeps re-delivering a scope's cancellation; the shield taken on the first delivery
    holds it off until the guest is done, and the cancellation then goes on up."""
    seen: dict[str, object] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        guest: asyncio.Future[str] = loop.create_future()
        _resolve_later(loop, guest, 0.3)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                async def cancel_soon() -> None:
                    await anyio.sleep(0.05)
                    scope.cancel()

                tg.start_soon(cancel_soon)
                started = time.monotonic()
                try:
                    await _join(guest)
                finally:
                    seen["waited"] = time.monotonic() - started
                    seen["guest_done"] = guest.done()
                seen["after"] = True  # never reached: the cancellation goes on up
        seen["cancelled"] = scope.cancelled_caught

    anyio.run(main)
    assert seen["guest_done"] is True
    assert isinstance(seen["waited"], float) and seen["waited"] >= 0.25
    assert "after" not in seen
    assert seen["cancelled"] is True
