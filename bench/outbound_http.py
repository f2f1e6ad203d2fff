"""Outbound calls from a guest through tauon, against a reference run in the same invocation.

Usage: .venv/bin/python bench/bench_outbound.py http --http-args '...', or directly:
  .venv/bin/python bench/outbound_http.py [SECTION ...] [--requests N] [--rounds R]
Sections (default: all): http. Other outbound families add a function here and a name in SECTIONS.

http: outbound HTTP requests/s from the C wasi:http fixture (`/outbound?<url>`, one guest request =
one outbound GET) to a keep-alive HTTP/1.1 server on loopback (its own process), with tauon's
connection pool on (the default) against a new connection per request
(`TAUON_OUTBOUND_HTTP_POOLING=0`, a diagnostic switch), over plain HTTP and over HTTPS (a self-signed
certificate made with `openssl`, trusted through SSL_CERT_FILE). Guest requests run one after another
straight into the executor (no inbound HTTP), pooled and unpooled in turns, so the figure is the
guest plus its outbound call, and load from elsewhere on the machine falls on both alike.
Target: the pooled rate >= 2x the unpooled one. On loopback a plain TCP connect costs ~0.2 ms of a
~2.5 ms guest request, so plain HTTP shows little; a TLS handshake is what a pool saves in practice.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import os
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
from tauon.hostif.http_pool import POOLING_ENV
from tauon.model.component_meta import ComponentMeta
from tauon.wasm.engine import WasmEngine

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
sys.path.insert(0, str(ROOT / "tests"))
from support.direct import serve_direct  # noqa: E402  (the tests' in-process request helper)

UPSTREAM = r"""
import http.server, socket, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # in this connection's thread, not in accept()
        super().setup()
    def do_GET(self):
        # One write for head and body, as production servers do: two small writes on a kept-alive
        # connection would wait for the client's delayed ACK (Nagle), 40 ms a response.
        self.wfile.write(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\npong")
    def log_message(self, *a):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
server.daemon_threads = True
# As production servers do; accepted connections inherit it (no Nagle waits in TLS handshakes).
server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if len(sys.argv) > 2:  # certificate and key: serve HTTPS
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(sys.argv[1], sys.argv[2])
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _executor(engine: WasmEngine, wasm: Path, allowed: list[str], *, pooling: bool) -> Executor:
    plan = ComponentPlan(id="bench", wasm_path=str(wasm),
                         wasm_digest="sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest(),
                         metadata=ComponentMeta(allowed_outbound_hosts=tuple(allowed)))
    limits = Limits(request_timeout=30, max_memory=64 * MIB, max_request_body=MIB, max_concurrency=8)
    previous = os.environ.get(POOLING_ENV)
    os.environ[POOLING_ENV] = "1" if pooling else "0"  # read when the executor's pool is made
    try:
        return build_component_executor(app_id="bench", component=plan, engine=engine, limits=limits,
                                        limiter=anyio.CapacityLimiter(8),
                                        logger=logging.getLogger("bench"), trigger_executor="http",
                                        wagi_argv="")
    finally:
        if previous is None:
            os.environ.pop(POOLING_ENV, None)
        else:
            os.environ[POOLING_ENV] = previous


def _rates(pooled: Executor, unpooled: Executor, target: str, requests: int) -> tuple[float, float]:
    """Requests/s of each executor over `requests` guest requests each, taken in turns (pooled,
    unpooled, pooled, ...) so that load from elsewhere on the machine falls on both alike."""
    async def run() -> tuple[float, float]:
        spent = {True: 0.0, False: 0.0}
        for i in range(2 * requests):
            pooling = i % 2 == 0
            started = time.perf_counter()
            status, body = await serve_direct(pooled if pooling else unpooled, "GET", target)
            spent[pooling] += time.perf_counter() - started
            if status != 200 or not body.endswith(b"pong"):
                raise RuntimeError(f"unexpected answer {status} {body[:80]!r}")
        return requests / spent[True], requests / spent[False]

    return asyncio.run(run())


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _compare(engine: WasmEngine, wasm: Path, scheme: str, port: int, requests: int, rounds: int) -> None:
    allowed = [f"{scheme}://127.0.0.1:{port}"]
    pooled = _executor(engine, wasm, allowed, pooling=True)
    unpooled = _executor(engine, wasm, allowed, pooling=False)
    target = f"/outbound?{scheme}://127.0.0.1:{port}/ping"
    _rates(pooled, unpooled, target, 30)  # warm-up: compile cache, first connection
    ratios, on_rates, off_rates = [], [], []
    for _ in range(rounds):
        on, off = _rates(pooled, unpooled, target, requests)
        on_rates.append(on)
        off_rates.append(off)
        ratios.append(on / off)
    print(f"{scheme}: {requests} sequential guest requests x {rounds} rounds, one outbound GET each")
    print(f"  pooled (default):            {statistics.median(on_rates):7.0f} req/s median "
          f"({', '.join(f'{r:.0f}' for r in on_rates)})")
    print(f"  new connection per request:  {statistics.median(off_rates):7.0f} req/s median "
          f"({', '.join(f'{r:.0f}' for r in off_rates)})")
    print(f"  ratio pooled / unpooled:     {statistics.median(ratios):7.2f}x median "
          f"({', '.join(f'{r:.2f}' for r in ratios)}); target >= 2x")
    pooled.close()
    unpooled.close()


def http(requests: int, rounds: int) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    wasm = ROOT / "tests" / "fixtures" / "wasi-http" / "build" / "handler.wasm"
    work = Path(tempfile.mkdtemp(prefix="tauon-bench-"))
    cert, key = _certificate(work)
    os.environ["SSL_CERT_FILE"] = str(cert)  # before tauon's TLS context is first made
    engine = WasmEngine(work / "cache")
    engine.start()
    servers = []
    try:
        for scheme, extra in (("http", []), ("https", [str(cert), str(key)])):
            server = subprocess.Popen([sys.executable, "-c", UPSTREAM, *extra], stdout=subprocess.PIPE,
                                      text=True)
            servers.append(server)
            assert server.stdout is not None
            _compare(engine, wasm, scheme, int(server.stdout.readline()), requests, rounds)
    finally:
        engine.stop()
        for server in servers:
            server.terminate()
            server.wait()


SECTIONS: dict[str, Callable[[int, int], None]] = {"http": http}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=list(SECTIONS))
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    for name in args.sections or list(SECTIONS):
        SECTIONS[name](args.requests, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
