"""WASIp3 instances kept between requests: Spin's instance reuse for `wasi:http/handler@0.3.x`
(spin-spec §3.7; Spin's `crates/trigger-http/src/lib.rs` `InstanceReuseConfig`).

Spin instantiates a fresh instance for every request of every other handler type, but a component
exporting the final wasi:http 0.3 handler serves up to 128 requests per instance (the first is the
one it was created for) and is dropped after 1 s idle. tauon does the same with the same defaults
(`--max-instance-reuse-count`, `--idle-instance-timeout`), so module state in such a guest (a global
counter, a cache) lives as long in tauon as in Spin. Where tauon does less: an instance serves one
request at a time (Spin interleaves up to 16 on one instance), so concurrent requests each take an
instance of their own.

An instance goes back for reuse only when its request ended cleanly and it is quiescent: no trap or
timeout, and no stream or future end, subtask or waitable it still holds (an end left open would keep
the previous response's body, or a host thread, waiting). Anything else drops it, as before.

A response is usually complete a little before its guest's task exits, so a client sending its next
request at once would find no idle instance and pay for a new one. While such a "finishing" instance
exists, a request waits for it (at most HANDOFF_WAIT) and gets it handed over directly.

The cache lives on the event loop (taken and filled there, no lock); dropping an instance (its
Store's memory reset, its host resources closed) is done by the caller on a guest thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tauon.app.plan import InstanceReuse

HANDOFF_WAIT = 0.02
"""Seconds a request waits for a finishing instance before making a fresh one."""


@dataclass(eq=False, slots=True)
class Kept:
    """One instance between requests, with the Store and host state it was created with."""

    store: Any
    instance: Any
    state: Any
    served: int
    """Requests it has served so far."""
    idle_since: float = 0.0


class InstanceCache:
    """The idle instances of one executor in one serving process, most recently used first."""

    def __init__(self, policy: InstanceReuse, dispose: Callable[[list[Kept]], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._dispose = dispose
        """Called with instances to drop (expired, used up, or at close): the caller drops them off
        the event loop."""
        self._clock = clock
        self._idle: list[Kept] = []
        self._waiters: deque[asyncio.Future[Kept | None]] = deque()
        self.finishing = 0
        """Instances whose response is complete and whose task has not exited yet."""
        self.closed = False

    @property
    def enabled(self) -> bool:
        return self.policy.max_requests > 1

    def __len__(self) -> int:
        return len(self._idle)

    def take(self) -> Kept | None:
        """The most recently used idle instance still within its idle timeout, or None."""
        self.expire()
        return self._idle.pop() if self._idle else None

    async def take_or_wait(self) -> Kept | None:
        """`take()`, or else a finishing instance handed over within HANDOFF_WAIT, or None."""
        kept = self.take()
        if kept is not None or self.finishing <= len(self._waiters):
            return kept
        waiter: asyncio.Future[Kept | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), HANDOFF_WAIT)
        except TimeoutError:
            pass
        except asyncio.CancelledError:  # the request went away: an instance handed over goes back
            handed = waiter.result() if waiter.done() else None
            if handed is not None:
                self.give(handed)
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
                self._waiters.remove(waiter)
        return None if waiter.cancelled() else waiter.result()

    def give(self, kept: Kept) -> None:
        """A request ended cleanly on `kept`: hand it to a waiting request, or keep it for the next,
        unless it has served its share."""
        if self.closed or kept.served >= self.policy.max_requests:
            self._dispose([kept])
            self.wake_one()
            return
        if not self._hand_over(kept):
            kept.idle_since = self._clock()
            self._idle.append(kept)

    def wake_one(self) -> None:
        """A finishing instance went without being kept: the next waiter need not wait for it."""
        self._hand_over(None)

    def _hand_over(self, kept: Kept | None) -> bool:
        """Resolve the longest-waiting request's wait with `kept`; False if nobody waits."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(kept)
                return True
        return False

    def expire(self) -> float | None:
        """Drop the instances idle past the timeout; returns when the next one expires (None: none
        idle)."""
        if not self._idle:
            return None
        limit = self._clock() - self.policy.idle_timeout
        expired = [k for k in self._idle if k.idle_since <= limit]
        if expired:
            self._idle = [k for k in self._idle if k.idle_since > limit]
            self._dispose(expired)
        if not self._idle:
            return None
        return min(k.idle_since for k in self._idle) + self.policy.idle_timeout

    def close(self) -> None:
        """The generation retires: drop every idle instance, and every one given back later."""
        self.closed = True
        idle, self._idle = self._idle, []
        if idle:
            self._dispose(idle)


__all__ = ["InstanceCache", "Kept"]
