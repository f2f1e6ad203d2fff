"""tauon's own component runtime (`--component-runtime tauon`) against the wasmtime component path, in one
run, on every fixture the new runtime serves.

Usage: .venv/bin/python bench/bench_component_runtime.py [--requests 300] [--rounds 5]
       [--fixtures handler,c,python-raw,python-sdk,js]

For each fixture and runtime, in this process, with the executor the daemon would build, in rounds that
alternate the runtimes (a shared machine's load drifts; each figure is the median of the rounds):
- instantiation: median time of a fresh Store + instance (what every request pays first);
- requests: N sequential GETs through the executor with no
  server in between (tests/support/direct.py): `/hello` on the wasi-http handler, `/` on c, `/echo`
  otherwise; requests/s and CPU per request (process CPU time, so
  the event loop and the guest thread are both counted);
- 1 MiB in and out, where the fixture has the routes (`/count` and `/big?N` on the wasi-http handler,
  `/echo` and `/big?n=N` on python-raw and js): median request time;
- host-call cost on the wasi-http handler (`/calls?N`: monotonic-clock.now in a guest loop, and
  `/checkwrite?N`: a borrow and a result; the guest measures).
Then the ratio tauon / wasmtime of each figure (times: < 1 is faster; requests/s: > 1 is faster). The
Python fixtures run a third of the requests.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from tauon.app.plan import ComponentPlan, Limits
from tauon.executors.base import Executor
from tauon.executors.builder import build_component_executor
from tauon.executors.oneshot import new_store
from tauon.hostif.state import HostConfig, HostState
from tauon.wasm.engine import WasmEngine

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
sys.path.insert(0, str(ROOT / "tests"))
from support.direct import serve_direct as serve  # noqa: E402  (the tests' in-process request helper)

LIMITS = Limits(request_timeout=60, max_memory=256 * MIB, max_request_body=16 * MIB, max_concurrency=8)
HANDLER = ROOT / "tests" / "fixtures" / "wasi-http" / "build" / "handler.wasm"
FIXTURES = ("handler", "c", "python-raw", "python-sdk", "js")
RUNTIMES = ("wasmtime", "tauon")


def fixture_path(name: str) -> Path:
    if name == "handler":
        subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                       capture_output=True)
        return HANDLER
    subprocess.run([str(ROOT / "scripts" / "build-components"), name], check=True, capture_output=True)
    return ROOT / "tests" / "fixtures" / "build" / "components" / f"{name}.wasm"


def executor_for(engine: WasmEngine, wasm: Path, runtime: str) -> Executor:
    plan = ComponentPlan(id="bench", wasm_path=str(wasm),
                         wasm_digest="sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest())
    executor = build_component_executor(
        app_id="bench", component=plan, engine=engine, limits=LIMITS, limiter=anyio.CapacityLimiter(8),
        logger=logging.getLogger("bench"), trigger_executor="http", wagi_argv="", component_runtime=runtime)
    name = executor._runner.name  # type: ignore[attr-defined]
    if name != runtime:
        raise SystemExit(f"{wasm.name}: asked for the {runtime} runtime, got {name}")
    return executor


def instantiation_ms(engine: WasmEngine, executor: Executor, runs: int) -> float:
    runner = executor._runner  # type: ignore[attr-defined]
    config = HostConfig(label="bench", logger=logging.getLogger("bench"))
    times = []
    for _ in range(runs):
        state = HostState(config, timeout=60)
        started = time.perf_counter()
        store = new_store(engine, LIMITS)
        runner.instantiate(store, state)
        times.append((time.perf_counter() - started) * 1000)
        state.finish()
        del store
    return statistics.median(times)


def requests(executor: Executor, target: str, count: int) -> tuple[float, float]:
    """(requests/s, CPU ms per request) of `count` sequential GETs."""
    async def run() -> None:
        for _ in range(count):
            status, _ = await serve(executor, "GET", target)
            assert status == 200, status

    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(run())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return count / wall, cpu / count * 1000


def median_ms(executor: Executor, method: str, target: str, body: bytes = b"", runs: int = 7,
              check: Callable[[bytes], bool] | None = None) -> float:
    async def run() -> list[float]:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            status, out = await serve(executor, method, target, body)
            times.append((time.perf_counter() - started) * 1000)
            assert status == 200 and (check is None or check(out)), (status, out[:80])
        return times

    return statistics.median(asyncio.run(run()))


def host_call_us(executor: Executor, kind: str, calls: int = 20_000) -> float:
    figures = []
    for _ in range(3):
        status, body = asyncio.run(serve(executor, "GET", f"/{kind}?{calls}"))
        assert status == 200, status
        figures.append(int(body) / calls / 1000)
    return statistics.median(figures)


def measure_once(engine: WasmEngine, name: str, executor: Executor, count: int) -> dict[str, float]:
    heavy = name.startswith(("python", "js"))
    out: dict[str, float] = {"instantiate ms": instantiation_ms(engine, executor, 10 if heavy else 100)}
    target = {"handler": "/hello", "c": "/"}.get(name, "/echo")
    out["req/s"], out["CPU ms/req"] = requests(executor, target, count)
    body = bytes(range(256)) * 4096
    if name == "handler":
        out["1 MiB in ms"] = median_ms(executor, "POST", "/count", body, runs=3)
        out["1 MiB out ms"] = median_ms(executor, "GET", f"/big?{MIB}", runs=3, check=lambda b: len(b) == MIB)
        out["host call us"] = host_call_us(executor, "calls")
        out["host call borrow us"] = host_call_us(executor, "checkwrite")
    elif name in ("python-raw", "js"):
        digest = hashlib.sha256(body).hexdigest().encode()
        out["1 MiB in ms"] = median_ms(executor, "POST", "/echo", body, runs=3, check=lambda b: digest in b)
        out["1 MiB out ms"] = median_ms(executor, "GET", f"/big?n={MIB}", runs=3,
                                        check=lambda b: len(b) == MIB)
    return out


def compare(engine: WasmEngine, name: str, count: int, rounds: int) -> None:
    """Both runtimes, interleaved round by round (the machine's load drifts), medians of the rounds."""
    path = fixture_path(name)
    executors = {runtime: executor_for(engine, path, runtime) for runtime in RUNTIMES}
    for executor in executors.values():
        median_ms(executor, "GET", {"handler": "/hello", "c": "/"}.get(name, "/echo"), runs=3)  # warm up
    samples: dict[str, dict[str, list[float]]] = {runtime: {} for runtime in RUNTIMES}
    per_round = max(10, count // rounds // (3 if name.startswith(("python", "js")) else 1))
    for round_ in range(rounds):
        for runtime in (RUNTIMES if round_ % 2 == 0 else RUNTIMES[::-1]):
            for key, value in measure_once(engine, name, executors[runtime], per_round).items():
                samples[runtime].setdefault(key, []).append(value)
    for executor in executors.values():
        executor.close()
    print(f"\n{name} (medians of {rounds} interleaved rounds):")
    print(f"  {'':22}{'wasmtime':>12}{'tauon':>12}{'tauon/wasmtime':>16}")
    for key, values in samples["wasmtime"].items():
        base, new = statistics.median(values), statistics.median(samples["tauon"][key])
        print(f"  {key:22}{base:12.3f}{new:12.3f}{new / base:16.2f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300, help="requests per fixture and runtime")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fixtures", default=",".join(FIXTURES))
    args = parser.parse_args()
    engine = WasmEngine(Path(tempfile.mkdtemp(prefix="tauon-bench-")))
    engine.start()
    logging.basicConfig(level=logging.WARNING)
    try:
        for name in args.fixtures.split(","):
            compare(engine, name, args.requests, args.rounds)
    finally:
        engine.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
