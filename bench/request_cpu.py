#!/usr/bin/env python3
"""CPU per request of tauon's whole request path in one process, with no sockets: for comparing
interpreters or code versions where a wrk run's noise (other load, the load generator sharing the
CPUs) hides a difference of a few percent.

A child process builds the fixture's generation (the executor the daemon would build), its switchboard
and the HTTP protocol tauon's listeners speak (server/httpproto.py) on a transport that only counts
writes, then feeds it keep-alive GET requests one at a time: the parser, uvicorn's request cycle, the
switchboard, routing, the executor, the guest with its host calls and the response head and body are
all the real ones. It prints the process CPU time per request of each round.

The parent runs one child per `--python` interpreter (default: this one) and `--src` tree (default:
this checkout) in turn, `--repeat` times, and prints per variant the minimum, lower quartile and
median of all rounds, and each variant's ratio to the first. With `--instructions`, each variant
instead runs under `valgrind --tool=callgrind` twice (N and 3N requests, the garbage collector off
after the warm-up) and prints instructions per request from the difference: a count that other load
on the machine does not move. (Under valgrind wasmtime cannot reserve its instance pool and allocates
each instance on demand, so those counts include that allocator, not the pool tauon serves from.)

Needs: the fixture (scripts/build-components builds it); valgrind for `--instructions` (Debian).
Usage: .venv/bin/python bench/request_cpu.py [--component c] [--requests 5000] [--rounds 4]
       [--repeat 6] [--python PATH ...] [--src DIR ...] [--instructions]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:3000\r\nUser-Agent: bench\r\n\r\n"
WARM_UP = 2000
"""Requests before measuring (an executor's guests first warm up on threads, then on the loop)."""


class CountingTransport(asyncio.Transport):
    """Where responses go: counted, and the request loop woken, as a socket write would."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.waiter: asyncio.Future[None] | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 3000), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def write(self, data: Any) -> None:
        self.writes += 1
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def writelines(self, data: Any) -> None:
        self.write(b"".join(data))

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


async def child(component: str, requests: int, rounds: int, warm_up: int, freeze_gc: bool) -> None:
    import gc
    import hashlib

    import anyio
    import uvicorn
    from uvicorn.server import ServerState

    sys.path.insert(0, str(ROOT / "tests"))
    from support.components import component_path
    from tauon.app.plan import ComponentPlan, GenerationPlan, Limits, TriggerPlan
    from tauon.server.generation import build_generation
    from tauon.server.httpproto import BoundedHttpToolsProtocol
    from tauon.server.switchboard import Switchboard
    from tauon.wasm.engine import WasmEngine

    wasm = component_path(component)
    digest = "sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest()
    plan = GenerationPlan(
        app_id=f"{component}.json", reference=f"localhost/{component}:v1", digest="sha256:" + "2" * 64,
        name=component, version="1",
        triggers=(TriggerPlan(id="t", route="/...", component=component, executor="http"),),
        components={component: ComponentPlan(id=component, wasm_path=str(wasm), wasm_digest=digest)},
        limits=Limits(request_timeout=30.0, max_memory=128 << 20, max_request_body=1 << 20))
    with tempfile.TemporaryDirectory() as cache:
        engine = WasmEngine(Path(cache))
        engine.start()
        generation = await build_generation(plan, 1, engine, anyio.CapacityLimiter(1))
        config = uvicorn.Config(Switchboard(plan.app_id, generation), lifespan="off", log_config=None,
                                server_header=False, access_log=False, http=BoundedHttpToolsProtocol,
                                ws="none", proxy_headers=False)
        config.load()
        loop = asyncio.get_running_loop()
        protocol = BoundedHttpToolsProtocol(config=config, server_state=ServerState(), app_state={},
                                            _loop=loop)
        transport = CountingTransport()
        protocol.connection_made(transport)

        async def serve(n: int) -> None:
            for _ in range(n):
                transport.waiter = loop.create_future()
                protocol.data_received(REQUEST)
                await transport.waiter
                await asyncio.sleep(0)  # the request's task finishes (uvicorn's bookkeeping)

        await serve(warm_up)
        if freeze_gc:
            gc.collect()
            gc.disable()
        out = []
        for _ in range(rounds):
            started = time.process_time()
            await serve(requests)
            out.append((time.process_time() - started) / requests * 1e6)
        if transport.writes < warm_up + rounds * requests:  # more: a head sent before its body
            raise SystemExit(f"expected a response write per request, got {transport.writes}")
        print(json.dumps(out), flush=True)
        engine.stop()


def run_child(python: str, src: str, args: argparse.Namespace, requests: int, rounds: int,
              valgrind: list[str] | None = None) -> str:
    env = {**os.environ, "PYTHONPATH": src}
    cmd = [*(valgrind or []), python, __file__, "--child", "--component", args.component,
           "--requests", str(requests), "--rounds", str(rounds),
           "--warm-up", str(200 if valgrind else WARM_UP)] + (["--freeze-gc"] if valgrind else [])
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout if valgrind is None else result.stderr  # valgrind reports on stderr


def instructions(python: str, src: str, args: argparse.Namespace, requests: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = run_child(python, src, args, requests, 1,
                        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out"])
    found = re.search(r"Collected : (\d+)", out)
    if not found:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--component", default="c")
    parser.add_argument("--requests", type=int, default=5000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per child process")
    parser.add_argument("--repeat", type=int, default=6, help="child processes per variant, interleaved")
    parser.add_argument("--python", action="append", help="interpreter to compare (repeatable)")
    parser.add_argument("--src", action="append", help="a tauon src/ tree to compare (repeatable)")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm-up", type=int, default=WARM_UP, help=argparse.SUPPRESS)
    parser.add_argument("--freeze-gc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        import uvloop

        uvloop.run(child(args.component, args.requests, args.rounds, args.warm_up, args.freeze_gc))
        return
    variants = [(python, src) for python in (args.python or [sys.executable])
                for src in (args.src or [str(ROOT / "src")])]
    print(f"== {args.component}: CPU per request of the in-process request path (keep-alive GET /)")
    if args.instructions:
        n = max(100, args.requests // 5)
        counts = []
        for python, src in variants:
            many, few = instructions(python, src, args, 3 * n), instructions(python, src, args, n)
            per_request = (many - few) / (2 * n)
            counts.append(per_request)
            print(f"  {python} {src}: {per_request / 1e6:.3f} M instructions per request (callgrind, "
                  f"{n} and {3 * n} requests), {per_request / counts[0]:.3f}x the first")
        return
    rounds: dict[tuple[str, str], list[float]] = {v: [] for v in variants}
    for _ in range(args.repeat):
        for variant in variants:
            out = run_child(*variant, args, args.requests, args.rounds)
            rounds[variant] += json.loads(out.splitlines()[-1])
    first = statistics.median(rounds[variants[0]])
    for (python, src), values in rounds.items():
        ordered = sorted(values)
        median = statistics.median(values)
        print(f"  {python} {src}: min {ordered[0]:.1f}, p25 {ordered[len(ordered) // 4]:.1f}, median "
              f"{median:.1f} us CPU per request ({len(values)} rounds of {args.requests}); median "
              f"{median / first:.3f}x the first")


if __name__ == "__main__":
    main()
