"""Resolved settings: every directory and knob, decided once at start-up.

Directory precedence is the usual one for services: command-line flag > TAUON_* environment variable >
systemd's $STATE_DIRECTORY / $CACHE_DIRECTORY / $CONFIGURATION_DIRECTORY > XDG base directories >
~/.local defaults. The functions here only read the mapping they are given, so they are unit-testable.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tauon.app.plan import InstanceReuse
from tauon.cpus import usable_cpus
from tauon.model.address import Address
from tauon.registry.gc import CacheLimits, default_max_bytes
from tauon.wasm.compile_limits import CompileLimits
from tauon.wasm.pool import PoolSettings

DEFAULT_MAX_REQUEST_HEAD = 8192 + 4096 * 100
"""Bytes of request head (request line and headers) accepted: hyper's default `max_buf_size`, 408 KiB,
which is what Spin accepts unless given `--http1-max-buf-size` (server/httpproto.py)."""
MIN_MAX_REQUEST_HEAD = 8192
"""hyper refuses a smaller buffer (its MINIMUM_MAX_BUFFER_SIZE)."""


@dataclass(frozen=True, slots=True)
class EdgeLimits:
    """What one client connection may hold (server/httpproto.py)."""

    max_head: int = DEFAULT_MAX_REQUEST_HEAD
    head_timeout: float = 30.0
    body_timeout: float = 60.0
    max_connections: int = 10_000


def default_max_connections() -> int:
    """Three quarters of the descriptor limit (the rest: files, sockets, the cache), at most 10,000."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 10_000
    return max(64, min(10_000, soft * 3 // 4))


@dataclass(frozen=True, slots=True)
class Settings:
    watch_dir: Path
    state_root: Path
    cache_dir: Path
    log_level: str = "info"
    log_format: str = "text"
    drain_timeout: float = 30.0
    resync_interval: float = 30.0
    pull_timeout: float = 10.0
    pull_deadline: float = 600.0
    """Seconds a whole pull may take (each registry read also has `pull_timeout`)."""
    start_grace: float = 60.0
    """Seconds readiness and the worker processes wait for the initial apps before going ahead."""
    cache_max_bytes: int | None = None
    """The pull cache's size bound; None: a quarter of its file system (`gc.default_max_bytes`)."""
    max_blob_bytes: int = 2 * 1024**3
    """The largest blob a registry may declare."""
    max_backoff: float = 60.0
    progress: str = "auto"
    """'auto' (bar on a terminal, log lines otherwise), 'bar', 'log' or 'off'."""
    admin: Address | None = None
    """Where the admin endpoints (/healthz, /readyz, /status, /metrics) listen; None: off."""
    access_log: bool = False
    """Log every request at info (otherwise at debug)."""
    ca_bundle: Path | None = None
    """CA certificates (PEM file or directory) trusted for registries, unless an app file names its own."""
    apps_file: Path | None = None
    runtime_config: Path | None = None
    """A Spin runtime-config.toml for every app whose file names none (runtimeconfig/)."""
    """Lepton mode: serve the fixed list of apps in this file instead of watching `watch_dir`."""
    pool: PoolSettings = field(default_factory=PoolSettings)
    """The wasm instance pool (wasm/pool.py)."""
    running_guests: int | None = None
    """Guests executing at once across apps, per process (wasm/slots.py); None: the CPUs this process
    may use (the command line passes its default, those CPUs divided among the processes)."""
    workers: int = 1
    """Processes serving requests: the daemon plus workers - 1 (workers/pool.py)."""
    compile: CompileLimits = field(default_factory=CompileLimits)
    tiering: bool = True
    """Serve uncached apps from Winch's code first and swap Cranelift's in when it is compiled
    (control/runner.py); False: every app waits for Cranelift."""
    """Limits of the child process that compiles an app's wasm (wasm/sandbox.py)."""
    component_runtime: str = "wasmtime"
    """What runs components: 'wasmtime' or 'tauon' (tauon's own runtime where it supports them)."""
    instance_reuse: InstanceReuse = field(default_factory=InstanceReuse)
    """Reuse of WASIp3 handler instances between requests (executors/reuse.py)."""
    max_request_head: int = DEFAULT_MAX_REQUEST_HEAD
    """Bytes of request line and headers accepted; a larger head is answered 431 (server/httpproto.py)."""
    head_timeout: float = 30.0
    """Seconds a connection may take to send a request head (from connecting or its first byte)."""
    body_timeout: float = 60.0
    """Seconds a request body may go without a byte while tauon is ready to read it."""
    max_connections: int | None = None
    """Open client connections per process; None: derived from the descriptor limit."""

    def edge_limits(self) -> EdgeLimits:
        return EdgeLimits(max_head=self.max_request_head, head_timeout=self.head_timeout,
                          body_timeout=self.body_timeout,
                          max_connections=self.max_connections or default_max_connections())

    def cache_limits(self) -> CacheLimits:
        max_bytes = self.cache_max_bytes or default_max_bytes(self.cache_dir)
        return CacheLimits(max_bytes=max_bytes, max_blob=self.max_blob_bytes)

    @property
    def reference_base(self) -> Path:
        """Relative references (OCI layout directories) resolve against the file that names them."""
        return self.apps_file.parent if self.apps_file is not None else self.watch_dir


def default_runtime_config(env: Mapping[str, str]) -> Path | None:
    """$TAUON_RUNTIME_CONFIG, else a systemd credential named runtime-config.toml (LoadCredential=)."""
    if env.get("TAUON_RUNTIME_CONFIG"):
        return Path(env["TAUON_RUNTIME_CONFIG"])
    credentials = _systemd_dir(env, "CREDENTIALS_DIRECTORY")
    if credentials is not None and (credentials / "runtime-config.toml").is_file():
        return credentials / "runtime-config.toml"
    return None


def _systemd_dir(env: Mapping[str, str], name: str) -> Path | None:
    # systemd may list several colon-separated directories; the first is ours.
    value = env.get(name)
    if value:
        return Path(value.split(":", 1)[0])
    return None


def default_state_root(env: Mapping[str, str], home: Path) -> Path:
    if env.get("TAUON_STATE_DIR"):
        return Path(env["TAUON_STATE_DIR"])
    systemd = _systemd_dir(env, "STATE_DIRECTORY")
    if systemd is not None:
        return systemd
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "tauon"
    return home / ".local" / "state" / "tauon"


def default_cache_dir(env: Mapping[str, str], home: Path) -> Path:
    if env.get("TAUON_CACHE_DIR"):
        return Path(env["TAUON_CACHE_DIR"])
    systemd = _systemd_dir(env, "CACHE_DIRECTORY")
    if systemd is not None:
        return systemd
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]) / "tauon"
    return home / ".cache" / "tauon"


def default_watch_dir(env: Mapping[str, str]) -> Path:
    # No XDG step: app files are configuration an operator points at, ./tauon when run by hand.
    if env.get("TAUON_WATCH_DIR"):
        return Path(env["TAUON_WATCH_DIR"])
    systemd = _systemd_dir(env, "CONFIGURATION_DIRECTORY")
    if systemd is not None:
        return systemd / "apps.d"
    return Path("tauon")


def home_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or os.path.expanduser("~"))


def loop_options() -> dict[str, bool]:
    """anyio's asyncio options for tauon's processes: uvloop (libuv) halves the event loop's share of
    a small request; plain asyncio where it is absent."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {"use_uvloop": False}
    return {"use_uvloop": True}


def worker_count(value: str) -> int:
    """`--workers`: a number >= 1, or `auto` (the CPUs this process may use, cpus.py)."""
    if value == "auto":
        return usable_cpus()
    try:
        count = int(value)
    except ValueError:
        raise ValueError(f"'{value}' is neither a number nor 'auto'") from None
    if count < 1:
        raise ValueError("must be >= 1 (1: the daemon alone serves)")
    return count


def request_head_limit(value: str) -> int:
    """`--max-request-head`: bytes, optionally with a KiB or MiB suffix; at least 8 KiB, as hyper."""
    text = value.strip()
    scale = 1
    for suffix, factor in (("KiB", 1024), ("MiB", 1024 * 1024), ("K", 1024), ("M", 1024 * 1024)):
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)].strip(), factor
            break
    if not text.isdigit():
        raise ValueError(f"'{value}' is not a size in bytes (e.g. 417792, 408KiB or 1MiB)")
    size = int(text) * scale
    if size < MIN_MAX_REQUEST_HEAD:
        raise ValueError(f"must be at least {MIN_MAX_REQUEST_HEAD} bytes (8KiB), as in Spin")
    return size
