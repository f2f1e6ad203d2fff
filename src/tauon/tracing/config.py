"""Whether and how to export traces, read from the standard OTEL_* environment variables.

As Spin decides it (crates/telemetry/src/env.rs): tracing is on when OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set and not empty, unless the SDK is disabled. The protocol is
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf; an unknown
value falls back to http/protobuf with a warning, and http/json is refused, as in Spin. Everything
else (endpoint paths, headers, timeouts, TLS files, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
OTEL_TRACES_SAMPLER, OTEL_BSP_*) is read by the OpenTelemetry SDK and its exporters themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PROTOCOLS = ("http/protobuf", "grpc")


class TracingConfigError(ValueError):
    """The OTEL_* variables ask for something tauon cannot do; the message says what to change."""


@dataclass(frozen=True, slots=True)
class TracingConfig:
    protocol: str
    """'http/protobuf' or 'grpc'."""
    warnings: tuple[str, ...] = ()


def sdk_disabled(env: Mapping[str, str]) -> bool:
    """OTEL_SDK_DISABLED=true (any case) turns every signal off, as the OpenTelemetry spec says.
    (Spin treats any non-empty value as true, "false" included; see the README.)"""
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def tracing_config(env: Mapping[str, str]) -> TracingConfig | None:
    """None when tracing is off. Raises TracingConfigError for a protocol tauon cannot export."""
    if sdk_disabled(env):
        return None
    if not any(env.get(name, "") for name in ("OTEL_EXPORTER_OTLP_ENDPOINT",
                                             "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return None
    variable = ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" if "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" in env
                else "OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = env.get(variable, "http/protobuf").strip()
    if protocol in PROTOCOLS:
        return TracingConfig(protocol)
    if protocol == "http/json":
        raise TracingConfigError(f"{variable}=http/json: OTLP over HTTP with JSON is not supported; "
                                 "use http/protobuf (the default) or grpc")
    return TracingConfig("http/protobuf", (f"{variable}={protocol!r} is not an OTLP protocol "
                                           "(grpc, http/protobuf); exporting traces over http/protobuf",))
