"""An app generation described as plain data.

The control plane (pull, verify, materialize) produces a `GenerationPlan`; the data plane (listeners,
executors) builds its runtime from it. Everything here is JSON-friendly on purpose: a later step ships
plans to worker processes that share the listening sockets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tauon.model.component_meta import ComponentMeta
from tauon.model.mount import Mount

if TYPE_CHECKING:  # a type only: app stays below the runtime config's I/O
    from tauon.runtimeconfig.model import RuntimeConfig


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-app guest limits (Spin enforces the same kinds of limit; the numbers are tauon's defaults)."""

    request_timeout: float = 30.0
    """Seconds of guest execution per request before it is interrupted (epoch deadline) -> 500."""
    max_memory: int = 256 * 1024 * 1024
    """Bytes of linear memory one instance may grow to; growth beyond traps -> 500."""
    max_request_body: int = 64 * 1024 * 1024
    """Bytes of request body accepted; larger requests get 413 before the guest runs."""
    max_concurrency: int = 32
    """Requests of this app executing at once; others wait in line (bounded by the listener)."""


@dataclass(frozen=True, slots=True)
class InstanceReuse:
    """How long a `wasi:http/handler@0.3.x` instance is kept for later requests (Spin's instance reuse,
    spin-spec §3.7: every other handler type gets a fresh instance per request)."""

    max_requests: int = 128
    """Requests one instance serves, the first included (1: a fresh instance per request)."""
    idle_timeout: float = 1.0
    """Seconds an unused instance is kept before it is dropped."""


@dataclass(frozen=True, slots=True)
class DependencyPlan:
    """One of a component's `dependencies` (spin-spec §2.5), composed into it before it runs."""

    name: str
    """The dependency name as the lock writes it: 'ns:pkg/iface@1.0.0', 'ns:pkg@1.0.0', 'ns:pkg', 'plain'."""
    wasm_path: str
    wasm_digest: str
    export: str | None = None
    """The dependency's export that satisfies the matched imports (default: the import's own name)."""
    inherit: str | tuple[str, ...] = ()
    """'all', or the capability sets the dependency inherits from the component (() = none)."""


@dataclass(frozen=True, slots=True)
class ComponentPlan:
    id: str
    wasm_path: str
    """Absolute path of the wasm bytes (in the content-addressed cache)."""
    wasm_digest: str
    """sha256:<hex> of the wasm bytes; keys the compiled-artifact cache."""
    env: dict[str, str] = field(default_factory=dict)
    mounts: tuple[Mount[str], ...] = ()
    """Host directories preopened read-only in the guest."""
    config: dict[str, str] = field(default_factory=dict)
    metadata: ComponentMeta = field(default_factory=ComponentMeta)
    """The locked app's component metadata, parsed by the loader (allowed_outbound_hosts, labels, ...)."""
    dependencies: tuple[DependencyPlan, ...] = ()


@dataclass(frozen=True, slots=True)
class StaticResponsePlan:
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class TriggerPlan:
    id: str
    route: str | None
    """Route as written in the app (None for private routes, which are not routable)."""
    component: str | None
    static_response: StaticResponsePlan | None = None
    executor: str = "http"
    """'http' (select from the component's exports) or 'wagi'."""
    wagi_argv: str = "${SCRIPT_NAME} ${ARGS}"


@dataclass(frozen=True, slots=True)
class RedisTriggerPlan:
    """A Redis trigger (spin-spec: crates/trigger-redis). `channel` and `address` are templates,
    rendered with the app's variables when the generation is built."""

    id: str
    component: str
    channel: str
    address: str
    """The trigger's own address, else the app's default (trigger metadata); '' if neither."""


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    app_id: str
    """The app file's name (e.g. 'shop.json')."""
    reference: str
    digest: str
    """Resolved manifest digest (or layout index digest) this generation was built from."""
    name: str
    version: str | None
    triggers: tuple[TriggerPlan, ...]
    components: dict[str, ComponentPlan]
    limits: Limits = field(default_factory=Limits)
    state_dir: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    app_variables: dict[str, Any] = field(default_factory=dict)
    self_origin: tuple[str, int] | None = None
    """(host, port) of the app's own listener, where self-requests go (a wildcard bind: loopback)."""
    cache_refs: tuple[str, ...] = ()
    """Digests of the cached blobs this generation uses (the cache's garbage collector keeps them)."""
    cache_assets: str | None = None
    """Its materialized files directory in the cache (assets/<name>), if it has files."""
    tls: tuple[str, str] | None = None
    """(certificate, key) PEM paths, absolute, when the app's listener serves HTTPS (server/tls.py)."""
    redis_triggers: tuple[RedisTriggerPlan, ...] = ()
    runtime_config: RuntimeConfig | None = None
    """The app's Spin runtime config (labelled stores and databases, variables providers), if any."""
    tier: str = "cranelift"
    """The compiler its code comes from: 'cranelift' (optimizing) or 'winch' (baseline: served while
    Cranelift compiles in the background, control/tiering.py); every process loads it with an engine
    of that strategy (WasmEngine.for_tier)."""
    component_runtime: str = "wasmtime"
    """What runs its components: 'wasmtime' (wasmtime's component API) or 'tauon' (tauon's own
    component runtime where it supports the component; `--component-runtime`)."""
    instance_reuse: InstanceReuse = field(default_factory=InstanceReuse)
    """Reuse of WASIp3 handler instances (`--max-instance-reuse-count`, `--idle-instance-timeout`)."""

    @property
    def listens(self) -> bool:
        """Whether the app needs its HTTP listener: it has HTTP triggers, or no triggers at all
        (then it answers 404, as before Redis triggers existed). A Redis-only app has none."""
        return bool(self.triggers) or not self.redis_triggers
