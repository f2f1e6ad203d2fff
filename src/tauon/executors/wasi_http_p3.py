"""The wasi:http 0.3 executor (WASIp3, Spin 4: `wasi:http/handler@0.3.x`, spin-spec §4.4): `handle` on
tauon's own component runtime (the wasmtime binding has no component-model async), on an instance
kept from an earlier request where Spin would reuse one (executors/reuse.py), else a fresh one.

The guest runs in a worker thread (under the app's limiter) with a memory limit, an epoch deadline
and, for its waits in the async ABI's event loop, the request's deadline. The request body is a
stream the event loop feeds as the client sends it (bounded: the feeder waits while the guest does not
read); the guest's `task.return` hands over the response, whose head is sent at once and whose body
stream is sent to the client as the guest writes it, while the guest's task goes on running. A
failure before the head is a GuestError (the switchboard answers 500); after it, the response is cut
short and the error logged, as in Spin. Trailers (server/trailers.py): the request's trailers future
completes when its body has ended, with the fields after its last chunk; the response's trailers are
sent after its last chunk where hyper would send them (the client sent `TE: trailers`, the response is
chunked and declares them in `Trailer`), else the future's reader is dropped at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, NoReturn

import anyio
from starlette.types import Receive, Send
from wasmtime.component import Component

from tauon.app.plan import InstanceReuse
from tauon.executors.base import ExecutorSetup, GuestError, GuestExecutor, RoutedRequest
from tauon.executors.guestthreads import GuestThreads
from tauon.executors.oneshot import TauonRunner, new_store
from tauon.executors.p3_exchange import Exchange, Inbound
from tauon.executors.responses import send_empty, send_head, unsendable_status
from tauon.executors.reuse import InstanceCache, Kept
from tauon.executors.wasi_http import _framing, _join
from tauon.hostif.http import method_variant
from tauon.hostif.http_fields import FORBIDDEN_HEADERS, Fields
from tauon.hostif.http_p3 import Request, Response, trailers_from_guest, trailers_to_guest
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.component.guest import Trap
from tauon.wasm.component.host import bound_state
from tauon.wasm.runtime.async_host import (
    Dropped,
    FutureReader,
    StreamReader,
    future,
    listen,
    stream,
)
from tauon.wasm.runtime.streams import holds_async_ends
from tauon.wasm.runtime.tasks import AsyncGuestFunc, release, state_of

REQUEST_BUFFER = 1 << 20
"""Request body bytes buffered ahead of the guest's reads."""
RESPONSE_CHUNK = 1 << 20

_GUEST_THREADS = GuestThreads()


class WasiHttpP3Executor(GuestExecutor):
    """Serves `wasi:http/handler@0.3.x#handle`."""

    def __init__(self, setup: ExecutorSetup, *, component: Component, export: str, runner: TauonRunner,
                 config: HostConfig, reuse: InstanceReuse | None = None) -> None:
        super().__init__(setup)
        self._component = component  # the validated, compiled component (kept for the cache's sake)
        self._runner = runner
        self._config = config
        self.export = export
        self._handle = AsyncGuestFunc(runner.component, export, "handle")
        self.instances = InstanceCache(reuse or InstanceReuse(max_requests=1), self._drop_later)
        self._sweep: asyncio.TimerHandle | None = None
        self._dropping: set[asyncio.Future[None]] = set()

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        self.instances.close()
        self._config.close()

    async def serve(self, request: RoutedRequest, receive: Receive, send: Send) -> None:
        declared_too_large, has_body = _framing(request, self._limits.max_request_body)
        if declared_too_large:
            await send_empty(send, 413)
            return
        loop = asyncio.get_running_loop()
        wake, feed, notify = _wakers(loop)
        body_reader, body_writer = stream(capacity=REQUEST_BUFFER)
        listen(body_writer, notify)
        exchange = Exchange(notify)
        exchange.accepts_trailers = request.accepts_trailers
        trailers_reader, trailers_writer = future()
        inbound = Inbound(body_writer, trailers_writer, request.trailers)
        if not has_body:
            inbound.end()
        guest_request = self._guest_request(request, body_reader, trailers_reader)
        too_large = [False]

        def finished(_: Any) -> None:  # event loop
            exchange.done = True
            wake.set()
            feed.set()

        cut_short: GuestError | None = None
        try:  # the borrower is the request (an instance's state may be handed on before release)
            self._limiter.acquire_on_behalf_of_nowait(exchange)
        except anyio.WouldBlock:
            await self._limiter.acquire_on_behalf_of(exchange)
        try:
            state, kept = await self._instance()
            trailers_to_guest(trailers_reader, state)
            worker = _GUEST_THREADS.run(self._in_slot, state.slot, self._run, state, kept, guest_request,
                                        exchange)
            worker.add_done_callback(finished)
            finishing = [False]
            worker.add_done_callback(lambda done: self._given_back(done, finishing))
            feeder = (loop.create_task(self._feed(receive, inbound, feed, wake, too_large))
                      if has_body else None)
            try:
                await self._respond(send, exchange, wake, too_large)
                if not worker.done():  # its instance may be kept: a request arriving now waits for it
                    finishing[0] = True
                    self.instances.finishing += 1
            except GuestError as exc:
                cut_short = exc
            finally:
                if feeder is not None:
                    feeder.cancel()
                if exchange.body is not None:
                    exchange.body.close()  # nobody reads the rest: a writing guest sees DROPPED
                await _join(worker, feeder)
        finally:
            self._limiter.release_on_behalf_of(exchange)
        if cut_short is not None:
            raise cut_short
        if exchange.head is None and not too_large[0]:
            self._failed(exchange)

    async def _instance(self) -> tuple[HostState, Kept | None]:
        """A kept instance's state, renewed for this request, or a new state for a fresh instance."""
        kept = await self.instances.take_or_wait() if self.instances.enabled else None
        if kept is None:
            return HostState(self._config, timeout=self._limits.request_timeout), None
        kept.state.renew(self._limits.request_timeout)
        return kept.state, kept

    def _failed(self, exchange: Exchange) -> NoReturn:
        """No response head came: raise the GuestError saying why."""
        error = exchange.error
        if error is not None:
            raise GuestError(f"{self._label}: {error}", kind=getattr(error, "kind", "trap")) from error
        raise GuestError(f"{self._label}: {exchange.failure or 'the guest returned no response'}",
                         kind="no-response")

    def _guest_request(self, request: RoutedRequest, body: StreamReader, trailers: FutureReader) -> Request:
        headers = [(name, value.encode("utf-8")) for name, value in request.headers
                   if name not in FORBIDDEN_HEADERS]
        headers += [(v.header, v.value.encode("utf-8")) for v in request.spin_values]
        path = request.path + (f"?{request.query}" if request.query else "")
        return Request(Fields(headers, immutable=True), body, trailers, None,
                       method=method_variant(request.method), path_with_query=path, scheme=("HTTP", None),
                       authority=request.authority)

    def _run(self, state: HostState, kept: Kept | None, request: Request, exchange: Exchange) -> Kept | None:
        """Worker thread: `handle` on the kept instance or a fresh one, until its task exits. Returns
        the instance to keep for the next request, if it may be (executors/reuse.py)."""
        instance = None
        keep: Kept | None = None
        if kept is None:
            store = new_store(self._engine, self._limits)
        else:
            store, instance = kept.store, kept.instance
            store.set_epoch_deadline(self._engine.deadline_ticks(self._limits.request_timeout))
        try:
            if instance is None:
                instance = self._runner.instantiate(store, state)
            rep = state.table.push(request)
            self._handle.call(instance, state, (rep,), lambda result: self._returned(state, exchange, result),
                              deadline=state.deadline)
            if self.instances.enabled and _quiescent(instance):
                keep = Kept(store, instance, state, 1 if kept is None else kept.served + 1)
        except Trap as exc:
            exchange.error = exc
            if exchange.head is not None:
                self._log.error("%s: guest failed after the response started: %s", self._label, exc)
        except Exception as exc:  # a host-side bug: still a 500 for this request only
            self._log.exception("%s: executor failure", self._label)
            exchange.error = exc
        finally:
            if instance is not None and keep is None:
                release(instance)  # the guest's ends of streams go: the body reader sees the end
            if request.body is not None:
                request.body.close()  # never consumed: the feeder stops
            with bound_state(state):
                if keep is None:
                    state.finish()
                else:
                    state.end_request()
            exchange.wake()
            del store
        return keep

    def _given_back(self, worker: asyncio.Future[Kept | None], finishing: list[bool]) -> None:
        """Event loop: the request's guest is done; keep its instance if it returned one."""
        if finishing[0]:
            self.instances.finishing -= 1
        kept = None if worker.cancelled() or worker.exception() is not None else worker.result()
        if kept is None:
            if finishing[0]:
                self.instances.wake_one()
            return
        self.instances.give(kept)
        if self._sweep is None and len(self.instances):
            self._schedule_sweep(kept.idle_since + self.instances.policy.idle_timeout)

    def _schedule_sweep(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        self._sweep = loop.call_later(max(0.0, when - time.monotonic()) + 0.01, self._expire)

    def _expire(self) -> None:
        self._sweep = None
        next_expiry = self.instances.expire()
        if next_expiry is not None:
            self._schedule_sweep(next_expiry)

    def _drop_later(self, dropped: list[Kept]) -> None:
        """Drop instances on a guest thread: resetting a Store's memory takes milliseconds."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test closing the executor directly): here and now
            _drop(dropped)
            return
        future = _GUEST_THREADS.run(_drop, dropped)
        self._dropping.add(future)
        future.add_done_callback(self._dropped)

    def _dropped(self, future: asyncio.Future[None]) -> None:
        self._dropping.discard(future)
        if not future.cancelled() and future.exception() is not None:
            self._log.error("%s: dropping a kept instance failed: %s", self._label, future.exception())

    def _returned(self, state: HostState, exchange: Exchange, result: Any) -> None:
        tag, payload = result
        if tag == "ok":
            payload = state.table.take(payload, Response)  # the guest gave the response away
            trailers = payload.trailers
            if trailers is not None and exchange.accepts_trailers and any(
                    name == "trailer" for name, _ in payload.headers.entries):
                trailers_from_guest(trailers, state)
                listen(trailers, exchange.wake)
                exchange.trailers = trailers
        exchange.respond((tag, payload))

    async def _feed(self, receive: Receive, inbound: Inbound, feed: asyncio.Event, wake: asyncio.Event,
                    too_large: list[bool]) -> None:
        """Client body -> guest, as fast as the guest reads it; enforces the app's body limit."""
        total = 0
        limit = self._limits.max_request_body
        writer = inbound.body
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                inbound.cut()
                return
            chunk: bytes = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                too_large[0] = True
                inbound.cut()
                wake.set()
                return
            view = memoryview(chunk)
            while view:
                feed.clear()
                if writer.reader_gone:
                    return
                view = view[writer.try_write(view):]
                if view:
                    await feed.wait()  # the guest reads: the pipe's listener sets it
            if not message.get("more_body", False):
                inbound.end()
                return

    async def _respond(self, send: Send, exchange: Exchange, wake: asyncio.Event,
                       too_large: list[bool]) -> None:
        started = False
        while True:
            wake.clear()
            if not started and too_large[0]:
                await send_empty(send, 413)
                return
            if not started and exchange.head is not None:
                status, headers = exchange.head
                unsendable = unsendable_status(self._label, status)
                if unsendable is not None:
                    raise unsendable
                await send_head(send, status, headers)
                started = True
            if started:
                if await self._send_body(send, exchange, wake):
                    return
            elif exchange.done or exchange.failure is not None:
                return
            await wake.wait()

    async def _last_body_message(self, exchange: Exchange, wake: asyncio.Event) -> dict[str, Any]:
        """The body's end, with the response's trailers once the guest has written them (if it may
        send any: server/trailers.py keeps those the response declared)."""
        message: dict[str, Any] = {"type": "http.response.body", "body": b"", "more_body": False}
        trailers = exchange.trailers
        if trailers is None:
            return message
        while not trailers.ready() and not exchange.done:
            wake.clear()
            if trailers.ready():
                break
            await wake.wait()
        try:
            value = trailers.read(timeout=0) if trailers.ready() else None
        except Dropped:
            value = None
        trailers.close()
        if value is not None and value[0] == "ok" and value[1]:
            message["trailers"] = value[1]
        return message

    async def _send_body(self, send: Send, exchange: Exchange, wake: asyncio.Event) -> bool:
        """Send what the guest has written; True once the body is complete."""
        body = exchange.body
        while True:
            data = body.try_read(RESPONSE_CHUNK) if body is not None else None
            if data is None:
                if exchange.error is not None:
                    raise GuestError(f"{self._label}: response body cut short: {exchange.error}")
                await send(await self._last_body_message(exchange, wake))
                if exchange.sent is not None:
                    exchange.sent.write(("ok", None))
                return True
            if not data:
                return False
            await send({"type": "http.response.body", "body": data, "more_body": True})


def _quiescent(instance: Any) -> bool:
    """Whether an instance whose task exited may serve another request: it holds no stream or future
    end, subtask or waitable, and has no backpressure on."""
    return not holds_async_ends(instance.handles) and state_of(instance.handles).backpressure == 0


def _drop(dropped: list[Kept]) -> None:
    """Guest thread: release what kept instances hold, then let their Stores go."""
    for kept in dropped:
        release(kept.instance)
        with bound_state(kept.state):
            kept.state.finish()
    dropped.clear()


def _wakers(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Event, asyncio.Event, Callable[[], None]]:
    """(wake, feed, notify): the events the response and body tasks wait on, and what other threads
    call when a stream or the exchange changes (a burst of changes is one wake-up of the loop)."""
    wake, feed = asyncio.Event(), asyncio.Event()
    pending = [False]

    def notify() -> None:  # any thread
        if not pending[0]:
            pending[0] = True
            loop.call_soon_threadsafe(_set, wake, feed, pending)
    return wake, feed, notify


def _set(wake: asyncio.Event, feed: asyncio.Event, pending: list[bool]) -> None:
    pending[0] = False
    wake.set()
    feed.set()
