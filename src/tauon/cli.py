"""Command line: arguments and environment -> Settings -> the daemon. No logic of its own."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import anyio

from tauon import __version__, tracing
from tauon.app.plan import InstanceReuse
from tauon.control.spec import parse_address
from tauon.errors import SpecError, TauonError
from tauon.gctune import freeze_startup_heap
from tauon.log import setup_logging
from tauon.model.address import Address
from tauon.settings import (
    Settings,
    default_cache_dir,
    default_runtime_config,
    default_state_root,
    default_watch_dir,
    home_dir,
    loop_options,
    request_head_limit,
    worker_count,
)
from tauon.wasm.compile_limits import MIN_MEMORY_MIB, CompileLimits
from tauon.wasm.pool import PoolSettings, warm_slots_per_process
from tauon.wasm.slots import default_slots

DESCRIPTION = """\
Serve Spin WebAssembly HTTP apps declared by JSON files in a watched directory.

Each *.json file in DIR is one app, named by its file name:
  {"reference": "ghcr.io/acme/shop:v3", "address": "0.0.0.0:8080", "state_dir": "shop"}
Adding a file starts the app, editing it moves the app to the new configuration without dropping
requests, deleting it stops the app. SIGHUP rescans and re-resolves tags; SIGTERM/SIGINT drain and exit.

Lepton mode: `tauon --apps lepton.json` serves the fixed list {"apps": [{...}, ...]} instead (no
watching; SIGHUP re-reads the file).

`tauon status [--admin ADDR] [--json]` asks a running tauon (started with --admin) what it serves.
The first argument `status` always means this command; to watch a directory named status, write ./status.
"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tauon", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_places(p, os.environ)
    _add_lifecycle(p, os.environ)
    _add_capacity(p, os.environ)
    _add_compile_limits(p, os.environ)
    p.add_argument("--version", action="version", version=f"tauon {__version__}")
    return p


def _add_places(p: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Where tauon reads app files and keeps state and cache, and how it logs."""
    home = home_dir(env)
    p.add_argument("directory", nargs="?", type=Path, default=None, metavar="DIR",
                   help="watched directory of app files (default: $TAUON_WATCH_DIR, "
                   "$CONFIGURATION_DIRECTORY/apps.d under systemd, else ./tauon; created if missing)")
    p.add_argument("--state-root", type=Path, default=None, metavar="PATH",
                   help="root for apps' relative state_dir (default: $TAUON_STATE_DIR, $STATE_DIRECTORY, "
                   f"$XDG_STATE_HOME/tauon; now {default_state_root(env, home)})")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="PATH",
                   help="pulled blobs and compiled wasm (default: $TAUON_CACHE_DIR, $CACHE_DIRECTORY, "
                   f"$XDG_CACHE_HOME/tauon; now {default_cache_dir(env, home)})")
    p.add_argument("--log-level", default=env.get("TAUON_LOG_LEVEL", "info"),
                   choices=["debug", "info", "warning", "error"], help="log level (default: info)")
    p.add_argument("--log-format", default=env.get("TAUON_LOG_FORMAT", "text"), choices=["text", "json"],
                   help="text lines for people, JSON lines for log shippers (default: text)")


def _add_lifecycle(p: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """Swaps, pulls, the cache, retries, where the apps come from, and the admin endpoint."""
    p.add_argument("--drain-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long in-flight requests may run after a swap, stop or shutdown (default: 30)")
    p.add_argument("--resync-interval", type=float, default=30.0, metavar="SECONDS",
                   help="full rescan of the directory even without events, a safety net (default: 30)")
    p.add_argument("--pull-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="per-request timeout for registry calls (default: 10)")
    p.add_argument("--pull-deadline", type=float, default=600.0, metavar="SECONDS",
                   help="longest a whole pull may take; a pull that receives under 1 KiB in 30 s has "
                   "stalled and fails at once (default: 600)")
    p.add_argument("--cache-max-gib", type=float, default=None, metavar="GIB",
                   help="size bound of the pull cache; content no serving app uses is removed first "
                   "(default: a quarter of the cache's file system; $TAUON_CACHE_MAX_GIB)")
    p.add_argument("--max-blob-mib", type=float, default=2048.0, metavar="MIB",
                   help="largest blob (wasm, file, archive) an image may declare (default: 2048)")
    p.add_argument("--start-grace", type=float, default=60.0, metavar="SECONDS",
                   help="how long readiness (/readyz, systemd READY=1) and the worker processes wait "
                   "for the initial apps; slower ones keep starting and are reported pending "
                   "(default: 60)")
    p.add_argument("--ca-bundle", type=Path, default=env.get("TAUON_CA_BUNDLE") or None, metavar="PATH",
                   help="CA certificates (PEM file or directory) to trust for registries instead of the "
                   "system roots; an app file's ca_bundle wins (default: $TAUON_CA_BUNDLE, else "
                   "REQUESTS_CA_BUNDLE / SSL_CERT_FILE / SSL_CERT_DIR / the bundled roots)")
    p.add_argument("--max-backoff", type=float, default=60.0, metavar="SECONDS",
                   help="longest wait between retries of a failing app (default: 60)")
    p.add_argument("--progress", default="auto", choices=["auto", "bar", "log", "off"],
                   help="pull progress: a bar on a terminal, log lines otherwise (default: auto)")
    p.add_argument("--apps", type=Path, default=None, metavar="FILE",
                   help="lepton mode: serve the apps listed in FILE ({\"apps\": [...]}) instead of watching "
                   "a directory; relative references resolve against FILE's directory")
    p.add_argument("--runtime-config", type=Path, default=None, metavar="FILE",
                   help="a Spin runtime-config.toml for every app whose file names no runtime_config "
                   "(default: $TAUON_RUNTIME_CONFIG, else the systemd credential runtime-config.toml)")
    p.add_argument("--admin", default=env.get("TAUON_ADMIN") or None, metavar="HOST:PORT",
                   help="serve /healthz, /readyz, /status and /metrics on this address, e.g. "
                   "127.0.0.1:9180 (default: $TAUON_ADMIN, else off)")
    p.add_argument("--access-log", action="store_true",
                   default=env.get("TAUON_ACCESS_LOG", "") not in ("", "0", "false", "no"),
                   help="log every request at info level (default: at debug; $TAUON_ACCESS_LOG=1)")


def _add_capacity(p: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """What the serving processes hold at once, and the limits at the edge."""
    p.add_argument("--instance-pool", type=int, default=1000, metavar="N",
                   help="wasm instances alive at once across all apps, pre-reserved (4 GiB of address "
                   "space each) and reused between requests; a request finding the pool full gets 503; "
                   "0: allocate on demand instead (slower per request) (default: 1000)")
    p.add_argument("--keep-resident-mib", type=int, default=32, metavar="MIB",
                   help="MiB at the start of each pooled linear memory reset in place instead of "
                   "returned to the kernel: fewer page faults per request; up to MIB x 32 warm slots "
                   "(shared among the --workers processes) stay resident (default: 32)")
    p.add_argument("--running-guests", type=int, default=None, metavar="N",
                   help="guests executing wasm at once across all apps; guests blocked on I/O do not "
                   "count; waiting guests take turns in arrival order, and run anyway when no turn "
                   "has come free for 50 ms (default: the CPUs tauon may use divided among the --workers "
                   "processes, rounded up)")
    p.add_argument("--workers", default=env.get("TAUON_WORKERS", "auto"), metavar="N|auto",
                   help="processes serving requests: this one plus N-1 workers sharing its listening "
                   "sockets, each with its own GIL; 'auto': the CPUs this process may use (affinity, "
                   "capped by a cgroup CPU quota); 1: this process alone. Per-app concurrency and "
                   "the instance pool are per process (default: auto; $TAUON_WORKERS)")
    p.add_argument("--max-request-head", default=env.get("TAUON_MAX_REQUEST_HEAD", "408KiB"),
                   metavar="BYTES",
                   help="largest request head (request line and headers) accepted, in bytes or with a "
                   "KiB/MiB suffix; a larger one, or one with over 100 header fields, is answered 431 as "
                   "Spin does (default: 408KiB, Spin's; $TAUON_MAX_REQUEST_HEAD)")
    p.add_argument("--head-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="a connection that has not sent a whole request head this long after connecting "
                   "(or after the head's first byte) is closed, as hyper's header_read_timeout (default: 30)")
    p.add_argument("--body-timeout", type=float, default=60.0, metavar="SECONDS",
                   help="a request body that sends no byte this long while tauon reads it is cut off "
                   "(default: 60)")
    p.add_argument("--max-connections", type=int, default=None, metavar="N",
                   help="open client connections per serving process; more are closed at once, with a "
                   "warning (default: three quarters of the descriptor limit, at most 10000)")


def _add_compile_limits(p: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    """The bounds of the child process that compiles an app's wasm."""
    defaults = CompileLimits()
    p.add_argument("--compile-memory-mib", type=int, metavar="MIB",
                   default=env.get("TAUON_COMPILE_MEMORY_MIB") or defaults.memory_mib,
                   help="memory (data segment) the child process compiling an app's wasm may use; "
                   "an app whose wasm needs more fails to load, naming the component (default: "
                   f"{defaults.memory_mib}; $TAUON_COMPILE_MEMORY_MIB)")
    p.add_argument("--compile-timeout", type=float, metavar="SECONDS",
                   default=env.get("TAUON_COMPILE_TIMEOUT") or defaults.timeout,
                   help="wall-clock seconds compiling one app's wasm may take before its child process "
                   f"is killed and the app fails to load (default: {defaults.timeout:g}; "
                   "$TAUON_COMPILE_TIMEOUT)")
    p.add_argument("--component-runtime", default=env.get("TAUON_COMPONENT_RUNTIME") or "wasmtime",
                   metavar="RUNTIME",
                   help="what runs components: 'wasmtime' (wasmtime's component API) or 'tauon' (tauon's "
                   "own component runtime over wasmtime's core API, for the components it supports; the "
                   "others run on wasmtime and say so at load) (default: wasmtime; "
                   "$TAUON_COMPONENT_RUNTIME)")
    p.add_argument("--max-instance-reuse-count", type=int, default=128, metavar="N",
                   help="requests one instance of a WASIp3 component (wasi:http/handler@0.3.x) serves, "
                   "one at a time, before a fresh one is made; 1: a fresh instance per request, as for "
                   "every other component (default: 128, Spin's)")
    p.add_argument("--idle-instance-timeout", type=float, default=1.0, metavar="SECONDS",
                   help="how long an unused WASIp3 instance is kept for the next request (default: 1, "
                   "Spin's)")
    p.add_argument("--tiering", choices=["on", "off"], default=env.get("TAUON_TIERING") or "on",
                   help="on: an app whose compiled code is not cached is compiled with wasmtime's "
                   "baseline compiler Winch first and served, then with Cranelift in the background "
                   "and swapped over; off: wait for Cranelift (default: on; $TAUON_TIERING)")


def _check_bounds(args: argparse.Namespace) -> None:
    """Refuse numbers out of range, naming the option."""
    for name in ("drain_timeout", "resync_interval", "pull_timeout", "pull_deadline", "start_grace",
                 "max_backoff", "head_timeout", "body_timeout", "compile_timeout"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"tauon: --{name.replace('_', '-')} must be > 0")
    if args.max_instance_reuse_count < 1:
        raise SystemExit("tauon: --max-instance-reuse-count must be >= 1")
    if args.idle_instance_timeout < 0:
        raise SystemExit("tauon: --idle-instance-timeout must be >= 0")
    for name in ("instance_pool", "keep_resident_mib"):
        if getattr(args, name) < 0:
            raise SystemExit(f"tauon: --{name.replace('_', '-')} must be >= 0")
    if args.max_connections is not None and args.max_connections < 1:
        raise SystemExit("tauon: --max-connections must be >= 1")
    if args.compile_memory_mib < MIN_MEMORY_MIB:
        raise SystemExit(f"tauon: --compile-memory-mib must be >= {MIN_MEMORY_MIB}")
    if args.running_guests is not None and args.running_guests < 1:
        raise SystemExit("tauon: --running-guests must be >= 1")
    if args.component_runtime not in ("wasmtime", "tauon"):
        raise SystemExit("tauon: --component-runtime (or $TAUON_COMPONENT_RUNTIME) must be 'wasmtime' or "
                         f"'tauon', got {args.component_runtime!r}")
    if args.tiering not in ("on", "off"):
        raise SystemExit(f"tauon: --tiering (or $TAUON_TIERING) must be 'on' or 'off', got {args.tiering!r}")
    if args.max_blob_mib <= 0:
        raise SystemExit("tauon: --cache-max-gib and --max-blob-mib must be > 0")


def _cache_max_bytes(args: argparse.Namespace, env: Mapping[str, str]) -> int | None:
    cache_max = args.cache_max_gib if args.cache_max_gib is not None else env.get("TAUON_CACHE_MAX_GIB")
    try:
        cache_max_bytes = None if cache_max is None else int(float(cache_max) * 1024**3)
    except ValueError:
        raise SystemExit(f"tauon: $TAUON_CACHE_MAX_GIB must be a number, got {cache_max!r}") from None
    if cache_max_bytes is not None and cache_max_bytes <= 0:
        raise SystemExit("tauon: --cache-max-gib and --max-blob-mib must be > 0")
    return cache_max_bytes


def settings_from_args(args: argparse.Namespace) -> Settings:
    env = os.environ
    home = home_dir(env)
    _check_bounds(args)
    cache_max_bytes = _cache_max_bytes(args, env)
    try:
        workers = worker_count(args.workers)
    except ValueError as exc:
        raise SystemExit(f"tauon: --workers: {exc}") from None
    try:
        max_request_head = request_head_limit(args.max_request_head)
    except ValueError as exc:
        raise SystemExit(f"tauon: --max-request-head: {exc}") from None
    if args.apps is not None and args.directory is not None:
        raise SystemExit("tauon: give either a directory to watch or --apps FILE, not both")
    runtime_config = args.runtime_config or default_runtime_config(env)
    return Settings(
        watch_dir=(args.directory or default_watch_dir(env)).absolute(),
        state_root=(args.state_root or default_state_root(env, home)).absolute(),
        cache_dir=(args.cache_dir or default_cache_dir(env, home)).absolute(),
        log_level=args.log_level,
        log_format=args.log_format,
        drain_timeout=args.drain_timeout,
        resync_interval=args.resync_interval,
        pull_timeout=args.pull_timeout,
        pull_deadline=args.pull_deadline,
        start_grace=args.start_grace,
        cache_max_bytes=cache_max_bytes,
        max_blob_bytes=int(args.max_blob_mib * 1024**2),
        ca_bundle=Path(args.ca_bundle).absolute() if args.ca_bundle else None,
        max_backoff=args.max_backoff,
        progress=args.progress,
        admin=admin_address(args.admin, "--admin") if args.admin else None,
        access_log=args.access_log,
        apps_file=args.apps.absolute() if args.apps is not None else None,
        runtime_config=runtime_config.absolute() if runtime_config is not None else None,
        pool=PoolSettings(instances=args.instance_pool, keep_resident_mib=args.keep_resident_mib,
                          warm_slots=warm_slots_per_process(workers)),
        running_guests=args.running_guests if args.running_guests is not None else default_slots(workers),
        workers=workers,
        max_request_head=max_request_head,
        head_timeout=args.head_timeout,
        body_timeout=args.body_timeout,
        max_connections=args.max_connections,
        compile=CompileLimits(memory_mib=args.compile_memory_mib, timeout=args.compile_timeout),
        tiering=args.tiering == "on",
        component_runtime=args.component_runtime,
        instance_reuse=InstanceReuse(max_requests=args.max_instance_reuse_count,
                                     idle_timeout=args.idle_instance_timeout),
    )


def admin_address(value: str, option: str) -> Address:
    try:
        return parse_address(value, option)
    except SpecError as exc:
        raise SystemExit(f"tauon: {option}: {exc.message} ({exc.hint})") from None


def build_status_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tauon status",
                                description="Show what a running tauon serves (asks its --admin endpoint).")
    p.add_argument("--admin", default=os.environ.get("TAUON_ADMIN") or None, metavar="HOST:PORT",
                   help="the daemon's --admin address (default: $TAUON_ADMIN)")
    p.add_argument("--json", action="store_true", help="print the raw /status JSON")
    p.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS", help="default: 5")
    return p


def status_main(argv: Sequence[str]) -> int:
    from tauon.status import fetch_status, format_table

    args = build_status_parser().parse_args(argv)
    if not args.admin:
        print("tauon status: no admin address: pass --admin HOST:PORT or set TAUON_ADMIN "
              "(the daemon must run with --admin)", file=sys.stderr)
        return 2
    try:
        doc = fetch_status(admin_address(args.admin, "--admin"), timeout=args.timeout)
    except ConnectionError as exc:
        hint = " (to watch a directory named status, run `tauon ./status`)" if Path("status").is_dir() else ""
        print(f"tauon status: {exc}{hint}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=2) if args.json else format_table(doc))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["status"]:
        return status_main(argv[1:])
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    setup_logging(settings.log_level, settings.log_format)
    if not start_tracing():
        return 1
    # Start-up allocates what it keeps: the collector's passes over it are wasted (35 ms of importing
    # the daemon); freeze_startup_heap turns it back on.
    gc.disable()
    from tauon.daemon import run_daemon  # imported late so --help stays fast

    options = loop_options()
    freeze_startup_heap()  # everything serving needs is imported by now
    # SIGINT is handled inside the daemon (drain, exit 0); this only covers a second, impatient ^C.
    try:
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(run_daemon, settings, backend="asyncio", backend_options=options)
    except TauonError as exc:
        print(f"tauon: {exc}", file=sys.stderr)
        return 1
    finally:
        tracing.shutdown()  # export the spans still queued
    return 0


def start_tracing() -> bool:
    """OpenTelemetry traces when the OTEL_* variables ask for them; False on a configuration that
    cannot work (said on stderr)."""
    try:
        tracing.setup()
    except tracing.TracingConfigError as exc:
        print(f"tauon: tracing: {exc}", file=sys.stderr)
        return False
    if tracing.ACTIVE is not None:
        logging.getLogger("tauon").info("tracing: exporting OpenTelemetry traces over OTLP (%s)",
                                        tracing.ACTIVE.protocol)
    return True


if __name__ == "__main__":
    sys.exit(main())
