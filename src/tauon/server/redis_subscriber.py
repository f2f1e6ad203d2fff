"""An app's Redis subscriptions: one connection per Redis server, living across generations.

Like the HTTP switchboard, the subscription belongs to the app file, not to a generation: a swap
subscribes the new generation's channels first (waiting for Redis to confirm them), then points the
connection at the new generation, then unsubscribes channels nobody wants any more. A channel both
generations use stays subscribed throughout, so each message arrives once and is handled once, by the
generation that was current when tauon read it (Spin restarts to update, and misses what is published
meanwhile). Messages are handled one at a time per server, in order, as Spin does; a fresh instance
runs for each. If the connection drops, it reconnects with backoff (1 s doubling to 30 s) and
subscribes again; Redis does not keep what was published while nobody listened.

redis-py's asyncio client is used on the event loop (never blocking it); guests run in worker threads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import anyio
import redis.asyncio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tauon.app.redis_triggers import redact_url
from tauon.executors.base import GuestError
from tauon.metrics import Metrics
from tauon.server.generation import Generation

log = logging.getLogger("tauon.redis")

QUEUE_SIZE = 1024
"""Messages read but not yet handled; beyond it tauon stops reading (Redis buffers, then drops us)."""
CONFIRM_TIMEOUT = 10.0
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 30.0
POLL = 0.25
"""How often the reader looks at subscription changes while no message arrives."""


@dataclass(slots=True)
class _Message:
    gen: Generation
    channel: str
    payload: bytes
    components: tuple[str, ...]


def _text(exc: BaseException, url: str) -> str:
    # redis-py's messages may quote the address; never let a password through.
    shown, raw = redact_url(url), str(exc) or type(exc).__name__
    return raw.replace(url, shown)


class RedisConnection:
    """One app's subscriber connection to one Redis server."""

    def __init__(self, owner: AppRedis, url: str) -> None:
        self.owner = owner
        self.url = url
        self.shown = redact_url(url)
        self.wanted: set[str] = set()
        self.subscribed: set[str] = set()
        self.state = "connecting"
        self.last_error: str | None = None
        self.since = time.time()
        self.scope = anyio.CancelScope()
        self._progress = anyio.Event()
        self._failures = 0
        self._send: MemoryObjectSendStream[_Message]
        self._receive: MemoryObjectReceiveStream[_Message]
        self._send, self._receive = anyio.create_memory_object_stream[_Message](QUEUE_SIZE)

    def _set_state(self, state: str, error: str | None = None) -> None:
        if state != self.state:
            self.since = time.time()
        self.state = state
        if error is not None:
            self.last_error = error
        self._progress.set()
        self._progress = anyio.Event()

    async def want(self, channels: set[str]) -> None:
        """Subscribe `channels` too; return once Redis confirmed them, or a connection attempt failed
        (they are subscribed when it reconnects), or after CONFIRM_TIMEOUT."""
        self.wanted |= channels
        failures = self._failures
        with anyio.move_on_after(CONFIRM_TIMEOUT):
            while not channels <= self.subscribed and self._failures == failures:
                await self._progress.wait()

    def keep_only(self, channels: set[str]) -> None:
        self.wanted &= channels

    def close(self) -> None:
        self.scope.cancel()

    async def run(self) -> None:
        with self.scope:
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._handle_loop)
                    await self._connect_loop()
            finally:
                self._discard_queue()

    def _discard_queue(self) -> None:
        while True:
            try:
                message = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                return
            message.gen.leave()

    async def _connect_loop(self) -> None:
        delay = BACKOFF_FIRST
        while True:
            started = time.monotonic()
            try:
                await self._session()
                error = "the server closed the connection"
            except (RedisError, OSError) as exc:
                error = _text(exc, self.url)
            self.subscribed.clear()
            if time.monotonic() - started > BACKOFF_MAX:
                delay = BACKOFF_FIRST  # it was up for a while: this is a new outage
            self._failures += 1
            log.warning("%s: Redis %s: %s; reconnecting in %.0fs", self.owner.app_id, self.shown, error,
                        delay)
            self._set_state("reconnecting", error)
            await anyio.sleep(delay)
            delay = min(BACKOFF_MAX, delay * 2)

    async def _session(self) -> None:
        client = redis.asyncio.Redis.from_url(
            self.url, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=15,
            retry=Retry(NoBackoff(), 0))  # failures come to _connect_loop, which reports them
        pubsub = client.pubsub()
        try:
            pending: set[str] = set()
            while True:
                add = self.wanted - self.subscribed - pending
                drop = (self.subscribed | pending) - self.wanted
                if add:
                    await pubsub.subscribe(*sorted(add))
                    pending |= add
                if drop:
                    await pubsub.unsubscribe(*sorted(drop))
                    pending -= drop
                if not self.wanted and not self.subscribed:
                    await anyio.sleep(POLL)  # nothing to listen to (yet)
                    continue
                message = await pubsub.get_message(timeout=POLL)
                if message is not None:
                    await self._on_message(message, pending)
        finally:
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()
                await client.aclose()

    async def _on_message(self, message: dict[str, Any], pending: set[str]) -> None:
        kind = message.get("type")
        if kind not in ("subscribe", "unsubscribe", "message"):
            return  # health-check pongs and the like
        channel = message["channel"]
        channel = channel.decode("utf-8", "surrogateescape") if isinstance(channel, bytes) else str(channel)
        if kind == "subscribe":
            pending.discard(channel)
            self.subscribed.add(channel)
            if self.state != "connected":
                log.info("%s: Redis %s: connected", self.owner.app_id, self.shown)
            self._set_state("connected")
        elif kind == "unsubscribe":
            self.subscribed.discard(channel)
        elif kind == "message":
            data = message["data"]
            payload = data if isinstance(data, bytes) else str(data).encode()
            await self.owner.received(self, channel, payload)

    async def enqueue(self, message: _Message) -> None:
        await self._send.send(message)

    async def _handle_loop(self) -> None:
        async for message in self._receive:
            try:
                await self.owner.dispatch(message)
            finally:
                message.gen.leave()

    def describe(self) -> dict[str, Any]:
        return {"type": "redis", "address": self.shown, "channels": sorted(self.wanted),
                "state": self.state, "last_error": self.last_error, "since": self.since}


class AppRedis:
    """The Redis side of one app file: its connections and the generation they deliver to."""

    def __init__(self, app_id: str, tg: TaskGroup, metrics: Metrics) -> None:
        self.app_id = app_id
        self.tg = tg
        self.metrics = metrics
        self.current: Generation | None = None
        self.pending: Generation | None = None
        """A generation being activated: it gets messages on channels only it subscribes."""
        self.connections: dict[str, RedisConnection] = {}

    async def activate(self, gen: Generation) -> None:
        """Subscribe `gen`'s channels, then make it current, then drop what it no longer needs."""
        subs = gen.redis.subscriptions if gen.redis is not None else {}
        self.pending = gen
        try:
            for url, channels in subs.items():
                connection = self.connections.get(url)
                if connection is None:
                    connection = self.connections[url] = RedisConnection(self, url)
                    self.tg.start_soon(connection.run)
                await connection.want(set(channels))
            self.current = gen
        finally:
            self.pending = None
        for url, connection in list(self.connections.items()):
            if url in subs:
                connection.keep_only(set(subs[url]))
            else:
                connection.close()
                del self.connections[url]

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()
        self.connections.clear()
        self.current = None

    async def received(self, connection: RedisConnection, channel: str, payload: bytes) -> None:
        self.metrics.redis_received(self.app_id, channel)
        for gen in (self.current, self.pending):
            if gen is None or gen.redis is None:
                continue
            components = gen.redis.subscriptions.get(connection.url, {}).get(channel)
            if components:
                gen.enter()  # retiring waits for queued messages too
                await connection.enqueue(_Message(gen, channel, payload, components))
                return
        log.debug("%s: Redis %s: no handler for a message on channel %r (unsubscribing)", self.app_id,
                  connection.shown, channel)

    async def dispatch(self, message: _Message) -> None:
        """Every component subscribed to the channel handles the message (concurrently, as Spin)."""
        async with anyio.create_task_group() as tg:
            for component in message.components:
                tg.start_soon(self._run_one, message, component)

    async def _run_one(self, message: _Message, component: str) -> None:
        assert message.gen.redis is not None
        handler = message.gen.redis.handlers[component]
        try:
            await handler.handle(message.payload)
        except GuestError as exc:
            self.metrics.redis_done(self.app_id, message.channel, component, ok=False)
            log.warning("%s: Redis message on channel %r failed: %s", self.app_id, message.channel, exc)
        except Exception as exc:  # a host bug must not stop the subscriber
            self.metrics.redis_done(self.app_id, message.channel, component, ok=False)
            log.exception("%s/%s: handling a Redis message failed: %r", self.app_id, component, exc)
        else:
            self.metrics.redis_done(self.app_id, message.channel, component, ok=True)

    def describe(self) -> list[dict[str, Any]]:
        return [connection.describe() for connection in self.connections.values()]
