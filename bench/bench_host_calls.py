"""Benchmark tauon's component binding and wasi:http host on the C fixture component.

Usage: .venv/bin/python bench/bench_host_calls.py [--requests 10000]

Prints:
- host call cost (guest-measured: N calls in a loop, divided by N; median of batches), for a call with
  no arguments (monotonic-clock.now) and one with a borrowed resource and a result (check-write);
- host time for a 1 MiB request body in (/count) and a 1 MiB response body out (/big), minus the same
  request with no body (the guest's own copying is negligible next to it);
- two threads, each with its own event loop, serving N requests between them (fresh instance each).
- 1 MiB request bodies into the JS and Python fixtures (ASCII and all byte values), their guest
  runtime's handling included;
Targets: host call <= 10 us, 1 MiB in/out <= 20 ms each, no errors.

Bodies reach and leave this component as latin1 strings, which cross the binding as one buffer
(wasm/component/rewriting/reads.py for reads, routing.py for writes from even addresses); the
request figure is given for ASCII and for all byte values. The list path they replace costs more:
wasmtime 50.0.1's C API passes a `list<u8>` as one 32-byte value per byte (~25 ms per MiB in, ~40 out);
`converter_share` shows how little of that is tauon's own.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hashlib
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio

from tauon.app.plan import ComponentPlan, Limits
from tauon.executors.base import Executor
from tauon.executors.builder import build_component_executor
from tauon.wasm.component import _capi
from tauon.wasm.component.codec_basic import byte_list as _bytes
from tauon.wasm.engine import WasmEngine

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
sys.path.insert(0, str(ROOT / "tests"))
from support.direct import serve_direct as serve  # noqa: E402  (the tests' in-process request helper)


def build(requests_limit: int) -> tuple[WasmEngine, Executor]:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    engine = WasmEngine(Path(tempfile.mkdtemp(prefix="tauon-bench-")))
    engine.start()
    return engine, executor_for(engine, ROOT / "tests" / "fixtures" / "wasi-http" / "build" / "handler.wasm")


def executor_for(engine: WasmEngine, wasm: Path) -> Executor:
    plan = ComponentPlan(id="bench", wasm_path=str(wasm),
                         wasm_digest="sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest())
    limits = Limits(request_timeout=30, max_memory=256 * MIB, max_request_body=16 * MIB, max_concurrency=8)
    return build_component_executor(app_id="bench", component=plan, engine=engine, limits=limits,
                                    limiter=anyio.CapacityLimiter(8), logger=logging.getLogger("bench"),
                                    trigger_executor="http", wagi_argv="")


def sdk_bodies(engine: WasmEngine) -> None:
    """1 MiB into the JS and Python fixtures (/count reads the body and drops it). These figures
    include the guest runtime's own handling of the body (JS concatenates it into an ArrayBuffer,
    Python into a bytearray), so they bound tauon's host time from above. Their allocators cannot
    take reads.py's retyping, so reads are routed (routing.py): every byte value crosses as one
    latin1 string per read."""
    subprocess.run([str(ROOT / "scripts" / "build-components"), "js", "python-raw"], check=True,
                   capture_output=True)
    for name in ("js", "python-raw"):
        executor = executor_for(engine, ROOT / "tests" / "fixtures" / "build" / "components" / f"{name}.wasm")
        empty = timed(executor, "POST", "/count", runs=9)
        figures = []
        for label, body in (("ASCII", b"x" * MIB), ("all byte values", bytes(range(256)) * 4096)):
            figures.append(f"{label} {timed(executor, 'POST', '/count', body, runs=9) - empty:6.2f} ms")
        print(f"1 MiB request body into {name:10} (guest's handling included): {'; '.join(figures)} "
              f"({empty:.2f} ms without body)")


def host_calls(executor: Executor, kind: str, calls: int = 20_000, batches: int = 15) -> float:
    per_call = []
    for _ in range(batches):
        status, body = asyncio.run(serve(executor, "GET", f"/{kind}?{calls}"))
        assert status == 200, status
        per_call.append(int(body) / calls / 1000)
    return statistics.median(per_call)


def timed(executor: Executor, method: str, target: str, body: bytes = b"", runs: int = 15) -> float:
    async def many() -> list[float]:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            status, _ = await serve(executor, method, target, body)
            times.append((time.perf_counter() - started) * 1000)
            assert status == 200, status
        return times

    return statistics.median(asyncio.run(many()))


def converter_share(chunk: int = 65536) -> tuple[float, float]:
    """Milliseconds tauon's own `list<u8>` converters spend per MiB (lower = host -> guest, lift =
    guest -> host), in the guest's 64 KiB chunks. The rest of the body host time is inside wasmtime's
    C API, which turns every byte into a 32-byte `wasmtime_component_val_t` and back."""
    codec = _bytes()
    value = _capi.Val()
    data = b"x" * chunk
    rounds = MIB // chunk
    started = time.perf_counter()
    for _ in range(rounds):
        codec.lower(0, data, value)
        _capi.val_delete(ctypes.byref(value))
    lower = (time.perf_counter() - started) * 1000
    codec.lower(0, data, value)
    started = time.perf_counter()
    for _ in range(rounds):
        codec.lift(0, value)
    lift = (time.perf_counter() - started) * 1000
    _capi.val_delete(ctypes.byref(value))
    return lower, lift


def two_threads(executor: Executor, total: int) -> tuple[float, int, int]:
    errors: list[str] = []
    done = [0]
    lock = threading.Lock()

    def worker(count: int, tag: int) -> None:
        async def loop() -> None:
            for i in range(count):
                payload = f"{tag}-{i}".encode()
                status, body = await serve(executor, "POST", "/echo", payload)
                with lock:
                    done[0] += 1
                    if status != 200 or body != payload:
                        errors.append(f"thread {tag} request {i}: {status} {body[:40]!r}")

        asyncio.run(loop())

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(total // 2, t)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for line in errors[:5]:
        print("  error:", line)
    return time.perf_counter() - started, done[0], len(errors)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()
    engine, executor = build(args.requests)
    try:
        now = host_calls(executor, "calls")
        check = host_calls(executor, "checkwrite")
        print(f"host call, no arguments (monotonic-clock.now):        {now:6.2f} us median")
        print(f"host call, borrow + result (output-stream.check-write): {check:6.2f} us median")
        empty_in = timed(executor, "POST", "/count")
        for label, body in (("ASCII", b"x" * MIB), ("all byte values", bytes(range(256)) * 4096)):
            full_in = timed(executor, "POST", "/count", body)
            print(f"1 MiB request body in ({label}):  {full_in - empty_in:6.2f} ms host time "
                  f"({full_in:.2f} ms total, {empty_in:.2f} ms without body)")
        empty_out = timed(executor, "GET", "/big?0")
        full_out = timed(executor, "GET", f"/big?{MIB}")
        print(f"1 MiB response body out: {full_out - empty_out:6.2f} ms host time "
              f"({full_out:.2f} ms total, {empty_out:.2f} ms without body)")
        odd_out = timed(executor, "GET", f"/odd?{MIB}")
        print(f"  the same written from an odd address (the list path): {odd_out - empty_out:6.2f} ms")
        lower, lift = converter_share()
        print(f"  list path: tauon's list<u8> converters take {lower:.2f} ms (to the guest) and "
              f"{lift:.2f} ms (from it) per MiB; the rest is wasmtime's per-byte value conversion")
        sdk_bodies(engine)
        seconds, served, errors = two_threads(executor, args.requests)
        print(f"two threads: {served} requests in {seconds:.2f} s ({served / seconds:.0f} req/s), "
              f"{errors} errors")
        return 1 if errors else 0
    finally:
        engine.stop()


if __name__ == "__main__":
    sys.exit(main())
