"""OpenTelemetry traces: off (and one `is None` check per request) unless the OTEL_* variables ask.

`setup()` runs once per process (the daemon and each --workers process) and, when tracing is
configured (tracing/config.py), loads the OpenTelemetry SDK and sets `ACTIVE`; nothing of the SDK
is imported otherwise. The spans follow Spin's (crates/trigger-http, crates/factor-outbound-*):

- a server span per request on an app's listener (`GET /hello/...`), continuing the client's
  `traceparent`/`tracestate`;
- a child span for the guest's execution (`execute_wasm_component <id>`), and under it
- a client span per outbound HTTP request (`GET`), whose context goes out as `traceparent`, and the
  spans of other outbound calls, made with `client_span`.

Guests run on their own threads, where the event loop's context is not current: the context of the
execution span travels in the request's HostState (`state.trace`), captured when the executor
creates it, and every span a host call opens takes its parent from there.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tauon.tracing.config import TracingConfigError, tracing_config

if TYPE_CHECKING:
    from tauon.tracing.spans import Tracing

ACTIVE: Tracing | None = None
"""The process's tracing when it is on; None when off (the hot paths check only this)."""


class SpanLike(Protocol):
    """What `client_span` yields: an OpenTelemetry span, or a stand-in that ignores everything."""

    def set_attribute(self, key: str, value: Any) -> None: ...

    def is_recording(self) -> bool: ...


class _NoSpan:
    """The span and context manager `client_span` returns when tracing is off: one shared object."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def set_attribute(self, key: str, value: Any) -> None:
        pass

    def is_recording(self) -> bool:
        return False


NO_SPAN = _NoSpan()


class HasTrace(Protocol):
    trace: Any


def setup(env: Mapping[str, str] | None = None, *, worker: int | None = None) -> bool:
    """Turn tracing on if the environment configures it; returns whether it is on. Raises
    TracingConfigError for a configuration tauon cannot serve (tauon then exits with it)."""
    global ACTIVE
    config = tracing_config(os.environ if env is None else env)
    if config is None:
        return False
    from tauon.tracing.spans import Tracing  # the SDK is loaded only when tracing is on

    for warning in config.warnings:
        if worker is None:  # said once, by the daemon
            logging.getLogger("tauon.tracing").warning("tracing: %s", warning)
    ACTIVE = Tracing.from_config(config, worker=worker)
    return True


def shutdown() -> None:
    """Export what is still queued (bounded by the exporter's timeout) and stop tracing."""
    global ACTIVE
    active, ACTIVE = ACTIVE, None
    if active is not None:
        active.shutdown()


def current_context() -> Any:
    """The trace context current on this thread (an OpenTelemetry Context), or None when off.
    HostState keeps it so host calls on the guest's thread can parent their spans."""
    active = ACTIVE
    return None if active is None else active.current()


def client_span(state: HasTrace | None, name: str, attributes: Mapping[str, Any] | None = None, *,
                kind: str = "client") -> Any:
    """A context manager for the span of one outbound call made by a host function on behalf of
    the guest whose HostState is `state`, e.g.

        with tracing.client_span(state, "GET", {"db.system.name": "redis"}) as span:
            ...  # the call; an exception marks the span as failed and propagates
            span.set_attribute("db.response.returned_rows", n)

    `kind` is "client" (the default), "producer" (MQTT publish), "internal" or "consumer". When
    tracing is off this returns one shared no-op object at the cost of a call and a comparison."""
    active = ACTIVE
    if active is None or state is None:
        return NO_SPAN
    return active.client_span(state.trace, name, attributes, kind)


def traced(funcs: Mapping[str, Callable[..., Any]], system: Mapping[str, Any], name: Callable[[str], str],
           *, kind: str = "client") -> dict[str, Callable[..., Any]]:
    """Host functions of an outbound client interface (Redis, PostgreSQL, MySQL, MQTT), each call in a
    client span named `name(operation)` (Spin's span names) with `system`'s attributes (semantic
    conventions: e.g. `db.system.name`) plus the operation's name. A result `("err", ...)` marks the
    span failed with the error's case. Resource drops are not traced. Off: one comparison per call."""

    def wrap(func_name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        operation = func_name.rsplit(".", 1)[-1].rsplit("]", 1)[-1]
        key = "messaging.operation.name" if kind == "producer" else "db.operation.name"
        attributes = {**system, key: operation}
        span_name = name(operation)

        def call(state: Any, *args: Any) -> Any:
            if ACTIVE is None or getattr(state, "trace", None) is None:
                return func(state, *args)
            with client_span(state, span_name, attributes, kind=kind) as span:
                result = func(state, *args)
                if isinstance(result, tuple) and len(result) == 2 and result[0] == "err":
                    case = result[1][0] if isinstance(result[1], tuple) else result[1]
                    from tauon.tracing.spans import mark_error
                    mark_error(span, str(case))
                return result

        call.__name__ = getattr(func, "__name__", operation)
        return call

    return {func_name: func if func_name.startswith("[resource-drop]") else wrap(func_name, func)
            for func_name, func in funcs.items()}


def start_outbound_http(state: HasTrace, method: str, scheme: str, authority: str, path: str,
                        entries: list[tuple[str, bytes]]) -> Any:
    """The client span of an outbound HTTP request (None when off); its context is put into the
    request's header `entries` as traceparent/tracestate. End it with `end_outbound_http`."""
    active = ACTIVE
    if active is None or state.trace is None:
        return None
    return active.outbound_http(state.trace, method, scheme, authority, path, entries)


def end_outbound_http(span: Any, result: tuple[str, Any] | None) -> None:
    """End an outbound HTTP span with the request's result (('ok', response), ('err', code), None)."""
    from tauon.tracing.spans import end_outbound_http as end

    end(span, result)


def set_error(span: SpanLike, error_type: str, description: str | None = None) -> None:
    """Mark `span` as failed (`error.type` and an error status) without an exception, e.g. when a
    host call returns the guest an error value. A no-op on NO_SPAN."""
    if span.is_recording():
        from tauon.tracing.spans import mark_error

        mark_error(span, error_type, description)


__all__ = ["ACTIVE", "NO_SPAN", "SpanLike", "TracingConfigError", "client_span", "current_context",
           "end_outbound_http", "set_error", "setup", "shutdown", "start_outbound_http"]
