"""The wasi:http 0.2 executor (spin-spec §4.3): `incoming-handler.handle` on a fresh instance per request.

The guest runs in a worker thread (under the app's limiter) with a memory limit and an epoch deadline.
Bodies stream both ways through bounded pipes: the event loop feeds the request body as the guest reads
it, and sends the response head and body chunks as the guest produces them, batched while it runs (at
most one epoch tick, see _Waker). A failure before the head is a GuestError (the switchboard answers
500); after it, the response is cut short and the error logged, as in Spin.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import anyio
from starlette.types import Receive, Send
from wasmtime.component import Component

from tauon.executors.base import ExecutorSetup, GuestError, RoutedRequest
from tauon.executors.guestthreads import GuestThreads
from tauon.executors.inline import INLINE_TICKS, INLINE_WALL, InlinePolicy, WouldBlock
from tauon.executors.oneshot import ComponentExecutor, GuestRunner, new_store
from tauon.executors.responses import send_empty, send_head, unsendable_status
from tauon.hostif.http import IncomingBody, ResponseOutparam
from tauon.hostif.http import IncomingRequest as GuestRequest
from tauon.hostif.http_fields import FORBIDDEN_HEADERS
from tauon.hostif.linker import LinkedComponent
from tauon.hostif.pipe import BytePipe, PipeError
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.component.guest import Trap
from tauon.wasm.component.host import LoopBudgetSpent, bound_state, cpu_deadline
from tauon.wasm.engine import WasmEngine, limited_store

REQUEST_BUFFER = 1 << 20
"""Request body bytes buffered ahead of the guest's reads."""
SLOW_TEARDOWN = 0.0001
"""Seconds of Store teardown (on average) past which the response is sent before it rather than
after: freeing a big guest's instance resets its memory (~0.6 ms for the JS fixture), which the
client need not wait for. Below it, an early wake-up of the event loop costs more than it saves."""

_GUEST_THREADS = GuestThreads()
"""Threads that run guests. Concurrency is bounded per app by its limiter, not here."""


class _Waker:
    """Wakes the event loop side of one request. Any thread may call `notify`; bursts of notifications
    (head, body chunks, close, end of the guest) collapse into one loop wake-up while one is pending.

    While the guest runs (`held`), its notifications are only recorded, and sent when it blocks in a
    host call (`flush`, via HostState.before_block), at the engine's next epoch tick (`flush`, a tick
    hook while held, so output written during a long computation goes out within a tick), or when it
    returns (the end of the guest wakes the loop anyway). A loop woken mid-guest takes the GIL the
    guest's host calls need: sending a small response in one wake-up instead of three or four cut a C
    request's CPU by a quarter and a JS request's by up to a sixth, in process."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending = False
        self.held = False
        self._owed = False
        self.respond = asyncio.Event()
        self.feed = asyncio.Event()

    def notify(self) -> None:
        if self.held:
            self._owed = True
        else:
            self.notify_now()

    def notify_now(self) -> None:
        if not self._pending:
            self._pending = True
            self._loop.call_soon_threadsafe(self.wake)

    def flush(self) -> None:
        if self._owed:
            self._owed = False
            self.notify_now()

    def wake(self) -> None:  # event loop only
        self._pending = False
        self.respond.set()
        self.feed.set()

    def hold(self, engine: WasmEngine) -> None:
        """The guest starts: record its notifications, and flush them on every epoch tick."""
        self.held = True
        engine.on_tick(self.flush)

    def release(self, engine: WasmEngine) -> None:
        engine.off_tick(self.flush)
        self.held = False


class _Exchange:
    """What the guest thread tells the event loop: the response head and body, or a failure."""

    def __init__(self, notify: Any, flush: Any) -> None:
        self.notify = notify
        self.flush = flush
        """Send what the guest has produced now, even while it is still held (its call returned)."""
        self.head: tuple[int, list[tuple[str, bytes]]] | None = None
        self.body: BytePipe | None = None
        self.failure: str | None = None
        self.done = False
        self.error: BaseException | None = None

    def start(self, status: int, headers: list[tuple[str, bytes]], body: BytePipe) -> None:
        body.listeners.append(self.notify)
        self.body = body
        self.head = (status, headers)
        self.notify()

    def fail(self, message: str) -> None:
        self.failure = message
        self.notify()


class WasiHttpExecutor(ComponentExecutor):
    def __init__(self, setup: ExecutorSetup, *, component: Component, export: str, linked: LinkedComponent,
                 config: HostConfig, runner: GuestRunner | None = None) -> None:
        super().__init__(setup, component=component, linked=linked, config=config, runner=runner)
        self.export = export
        self._handle = self._runner.func(export, "handle")
        self._teardown = 0.0
        """Moving average of the seconds a request's Store takes to free (no lock: a lost update only
        makes it staler)."""
        # Only through wasmtime's component API: tauon's own runtime keeps per-thread state of its
        # own, which the event loop's thread should not collect.
        self.inline = InlinePolicy(self._runner.name == "wasmtime")
        """Whether a request's guest may run on the event loop (executors/inline.py)."""
        self.inline_runs = 0
        """Requests served by a guest run on the event loop."""
        self._request_ticks = self._engine.deadline_ticks(self._limits.request_timeout)
        self._inline_ticks = min(INLINE_TICKS, self._request_ticks)
        """A run on the loop is abandoned at this deadline, unless it is the request's own."""

    async def serve(self, request: RoutedRequest, receive: Receive, send: Send) -> None:
        declared_too_large, has_body = _framing(request, self._limits.max_request_body)
        if declared_too_large:
            await send_empty(send, 413)
            return
        if not has_body and self.inline.wanted() and await self._serve_inline(request, send):
            return
        loop = asyncio.get_running_loop()
        waker = _Waker(loop)
        state = HostState(self._config, timeout=self._limits.request_timeout)
        state.before_block = waker.flush
        body_in = BytePipe(state.cond, REQUEST_BUFFER)
        # Not held: the feeder refills the request body while the guest reads it.
        body_in.listeners.append(waker.notify_now)
        if not has_body:
            body_in.close()  # nothing to feed: no feeder task, no receive() round trip
        exchange = _Exchange(waker.notify, waker.flush)
        guest_request = self._guest_request(request, body_in)
        too_large = [False]

        def finished(_: Any) -> None:  # event loop, when the worker thread is done
            waker.release(self._engine)  # nothing owed is lost: the wake below covers it
            exchange.done = True
            waker.wake()

        cut_short: GuestError | None = None
        # The request's own state is the borrower: anyio's plain acquire() looks up the current task
        # on every call, a measurable share of a small request.
        try:
            self._limiter.acquire_on_behalf_of_nowait(state)  # usual case: no trip through the loop
        except anyio.WouldBlock:
            await self._limiter.acquire_on_behalf_of(state)
        try:
            # A plain future rather than a task group + anyio worker: this is the per-request hot
            # path, and the thread hop plus wake-ups dominate small requests.
            waker.hold(self._engine)
            worker = _GUEST_THREADS.run(self._in_slot, state.slot, self._run, state, guest_request, exchange)
            worker.add_done_callback(finished)
            feeder = (loop.create_task(self._feed(receive, body_in, waker.feed, too_large))
                      if has_body else None)
            try:
                await self._respond(send, exchange, waker.respond, too_large)
            except GuestError as exc:
                cut_short = exc
            finally:
                if feeder is not None:
                    feeder.cancel()
                if not worker.done() and exchange.body is not None:
                    exchange.body.abandon()  # nobody reads the rest: a writing guest fails fast
                await _join(worker, feeder)  # the guest thread always runs to its end
        finally:
            self._limiter.release_on_behalf_of(state)
        if cut_short is not None:
            raise cut_short
        if exchange.error is not None and exchange.head is None and not too_large[0]:
            raise GuestError(f"{self._label}: {exchange.error}",
                             kind=getattr(exchange.error, "kind", "trap")) from exchange.error

    def _guest_request(self, request: RoutedRequest, body: BytePipe) -> GuestRequest:
        headers = [(name, value.encode("utf-8")) for name, value in request.headers
                   if name not in FORBIDDEN_HEADERS]
        headers += [(v.header, v.value.encode("utf-8")) for v in request.spin_values]
        path = request.path + (f"?{request.query}" if request.query else "")
        return GuestRequest(request.method, path, ("HTTP", None), request.authority, headers,
                            IncomingBody(body))

    async def _serve_inline(self, request: RoutedRequest, send: Send) -> bool:
        """Run the guest on the event loop, then send its response. False: not done (the run was
        abandoned): the caller serves the request on a thread."""
        state = HostState(self._config, timeout=self._limits.request_timeout)
        try:
            self._limiter.acquire_on_behalf_of_nowait(state)
        except anyio.WouldBlock:
            # The app is at its concurrency limit: wait for a turn here, then run on the loop. Sent
            # to a thread instead, the request would hold a place in the limit while it queued for a
            # run slot, and under steady load such requests kept the limit full, so every later
            # request went to threads too (64 connections: 730 requests/s against 2,000).
            await self._limiter.acquire_on_behalf_of(state)
        try:
            state.inline = True
            state.budget.held = []
            body_in = BytePipe(state.cond, REQUEST_BUFFER)
            body_in.close()
            exchange = _Exchange(_nothing, _nothing)  # the loop runs the guest: nobody to wake
            self._run(state, self._guest_request(request, body_in), exchange, inline=True)
        finally:
            self._limiter.release_on_behalf_of(state)
        error = exchange.error
        if isinstance(error, Trap) and isinstance(error.host_error, (WouldBlock, LoopBudgetSpent)):
            self.inline.abandoned()
            self._log.debug("%s: a guest run on the event loop was abandoned (%s); the request and "
                            "the next ones run on guest threads", self._label, error)
            return False
        state.budget.release()
        self.inline_runs += 1
        exchange.done = True
        if exchange.head is not None:
            # Everything is final: the body pipe is closed, so this never waits on `wake`.
            await self._respond(send, exchange, _NEVER_SET, [False])
        elif error is not None:
            raise GuestError(f"{self._label}: {error}", kind=getattr(error, "kind", "trap")) from error
        return True

    def _run(self, state: HostState, request: GuestRequest, exchange: _Exchange, *,
             inline: bool = False) -> None:
        """Worker thread, or the event loop (`inline`, with a short deadline): a fresh store and
        instance, then `handle`."""
        measured = self.inline.measures(inline)
        started = time.thread_time() if measured else 0.0
        if inline:
            store = limited_store(self._engine.engine, memory_limit=self._limits.max_memory,
                                  deadline_ticks=self._inline_ticks)
            if self._inline_ticks < self._request_ticks:  # else the deadline is the request's own
                cpu_deadline(store, INLINE_WALL)
        else:
            store = new_store(self._engine, self._limits)
        try:
            instance = self._runner.instantiate(store, state)
            req = state.table.push(request)
            out = state.table.push(ResponseOutparam(exchange))
            self._handle.call(store, instance, state, req, out)
            if exchange.head is None:
                exchange.error = GuestError(exchange.failure or
                                            "guest failed to produce a response prior to returning",
                                            kind="no-response")
        except Trap as exc:
            exchange.error = exc
            if exchange.head is not None:
                self._log.error("%s: guest failed after the response started: %s", self._label, exc)
        except Exception as exc:  # a host-side bug: still a 500 for this request only
            self._log.exception("%s: executor failure", self._label)
            exchange.error = exc
        finally:
            with bound_state(state):
                state.finish()  # unfinished bodies end with an error; output lines are flushed
            if self._teardown > SLOW_TEARDOWN:
                exchange.flush()  # the response goes out while the instance is freed
            freeing = time.perf_counter()
            del store
            self._teardown += (time.perf_counter() - freeing - self._teardown) * 0.1
            if measured:
                self.inline.record(time.thread_time() - started, inline=inline)

    async def _feed(self, receive: Receive, pipe: BytePipe, wake: asyncio.Event,
                    too_large: list[bool]) -> None:
        """Client body -> guest, as fast as the guest reads it; enforces the app's body limit."""
        total = 0
        limit = self._limits.max_request_body
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                pipe.close(error="the client went away")
                return
            chunk: bytes = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                too_large[0] = True
                pipe.close(error=f"request body over the limit of {limit} bytes")
                wake.set()
                return
            while chunk and not pipe.writable():
                wake.clear()
                if pipe.writable():
                    break
                await wake.wait()
            if pipe.reader_gone:
                return
            if chunk:
                pipe.write(chunk)
            if not message.get("more_body", False):
                pipe.close()
                return

    async def _respond(self, send: Send, exchange: _Exchange, wake: asyncio.Event,
                       too_large: list[bool]) -> None:
        started = False
        while True:
            wake.clear()
            if not started and too_large[0]:
                await send_empty(send, 413)
                if exchange.body is not None:
                    exchange.body.abandon()
                return
            if not started and exchange.head is not None:
                status, headers = exchange.head
                unsendable = unsendable_status(self._label, status)
                if unsendable is not None:
                    if exchange.body is not None:
                        exchange.body.abandon()
                    raise unsendable
                await send_head(send, status, headers)
                started = True
            if started:
                body = exchange.body
                assert body is not None
                while True:
                    try:
                        data = body.read(1 << 20)
                        # The guest often finishes the body before we get here: send the last
                        # chunk and the end together (one ASGI message, one write).
                        last = data is None or (bool(data) and body.finished())
                    except PipeError as exc:
                        raise GuestError(f"{self._label}: response body cut short: {exc}") from exc
                    if last:
                        await send({"type": "http.response.body", "body": data or b"", "more_body": False})
                        return
                    if not data:
                        break
                    await send({"type": "http.response.body", "body": data, "more_body": True})
            elif exchange.done:
                return
            await wake.wait()


def _nothing() -> None:
    pass


_NEVER_SET = asyncio.Event()
"""The wake-up of a response that is complete before it is sent (never awaited: see _serve_inline)."""


def _framing(request: RoutedRequest, limit: int) -> tuple[bool, bool]:
    """(the declared content-length is over `limit`, the request has a body at all)."""
    length: str | None = None
    chunked = False
    for name, value in request.headers:
        if name == "content-length":
            length = value
        elif name == "transfer-encoding":
            chunked = True
    too_large = length is not None and length.isdigit() and int(length) > limit
    # HTTP/1.x (all uvicorn serves): a request without content-length or transfer-encoding has no body.
    return too_large, chunked or (length is not None and length != "0")


async def _join(*futures: asyncio.Future[Any] | None) -> None:
    """Wait for `futures` whatever happens to this task meanwhile. Usually the guest is still
    returning when the response is out, so this runs on every request: the shield (which looks up
    the async backend each time it is made) is set up only once a cancellation arrives."""
    pending = [f for f in futures if f is not None and not f.done()]
    if not pending:
        return
    try:
        await asyncio.wait(pending)
    except asyncio.CancelledError:
        with anyio.CancelScope(shield=True):
            await asyncio.wait(pending)
        raise
