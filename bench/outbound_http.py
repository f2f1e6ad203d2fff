"""Outbound calls from a guest through tauon, against a reference run in the same invocation.

Usage: .venv/bin/python bench/bench_outbound.py http --http-args '...', or directly:
  .venv/bin/python bench/outbound_http.py [SECTION ...] [--requests N] [--rounds R]
      [--per-request N] [--upstreams python,nginx]
Sections (default: all): http. Other outbound families add a function here and a name in SECTIONS.

http: outbound HTTP requests/s to a keep-alive HTTP/1.1 server on loopback (its own process: Python's
ThreadingHTTPServer, whose own cost per request is large, and nginx, a native server whose is not, so
the client's cost of a new connection shows; --upstreams picks), from two guests: the C wasi:http
fixture (`/outbound?<url>`, one guest request = one outbound GET through
`wasi:http/outgoing-handler`, so the guest's own request weighs as much as the outbound one), and the
C `fermyon:spin/http` fixture c-spin-http sending --per-request GETs one after another from each guest
request (which isolates the outbound cost the pool is about); each with tauon's
connection pool on (the default) against a new connection per request
(`TAUON_OUTBOUND_HTTP_POOLING=0`, a diagnostic switch), over plain HTTP and over HTTPS (a self-signed
certificate made with `openssl`, trusted through SSL_CERT_FILE). Guest requests run one after another
straight into the executor (no inbound HTTP), pooled and unpooled in turns, so the figure is the
guest plus its outbound call, and load from elsewhere on the machine falls on both alike.
Target: the pooled rate >= 2x the unpooled one. With one outbound GET per guest request, a loopback TCP
connect is a small part of the guest request, so plain HTTP shows little there; with many per guest
request, the connect (and the TLS handshake) is most of what each outbound request costs. A reference
run of Python's http.client against the same server, kept-alive vs a new connection per request, shows
the most pooling can give against that server on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import http.client
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio

from tauon.app.plan import ComponentPlan, Limits
from tauon.executors.base import Executor
from tauon.executors.builder import build_component_executor
from tauon.hostif.http_pool import POOLING_ENV, open_connection
from tauon.model.component_meta import ComponentMeta
from tauon.wasm.engine import WasmEngine

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
sys.path.insert(0, str(ROOT / "tests"))
from support.components import component_path  # noqa: E402
from support.direct import serve_direct  # noqa: E402  (the tests' in-process request helper)
from support.servers.nginx import run_nginx  # noqa: E402

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


@dataclass(frozen=True)
class Guest:
    """A benchmark guest: its wasm and how one guest request asks for `outbound` outbound GETs."""

    name: str
    wasm: Path
    target: Callable[[str], str]
    headers: Callable[[str], tuple[tuple[str, str], ...]]
    outbound: int


Rates = tuple[float, float, float, float]
"""(pooled requests/s, unpooled requests/s, pooled CPU s/request, unpooled CPU s/request)."""


def _rates(pooled: Executor, unpooled: Executor, guest: Guest, url: str, requests: int) -> Rates:
    """Outbound requests/s, and this process's CPU per outbound request (tauon's executor runs
    here), of each executor over `requests` guest requests each, taken in turns (pooled, unpooled,
    pooled, ...) so that load from elsewhere on the machine falls on both alike. CPU does not count
    the time spent waiting for a CPU, which on a busy machine dominates the wall-clock rates."""
    target, headers = guest.target(url), guest.headers(url)

    async def run() -> Rates:
        spent = {True: 0.0, False: 0.0}
        cpu = {True: 0.0, False: 0.0}
        for i in range(2 * requests):
            pooling = i % 2 == 0
            started, cpu_started = time.perf_counter(), time.process_time()
            status, body = await serve_direct(pooled if pooling else unpooled, "GET", target,
                                              headers=headers)
            spent[pooling] += time.perf_counter() - started
            cpu[pooling] += time.process_time() - cpu_started
            if status != 200 or not body.endswith(b"pong"):
                raise RuntimeError(f"unexpected answer {status} {body[:80]!r}")
        done = requests * guest.outbound
        return done / spent[True], done / spent[False], cpu[True] / done, cpu[False] / done

    return asyncio.run(run())


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _direct_rates(scheme: str, port: int, requests: int) -> Rates:
    """The reference with no guest and no tauon: Python's http.client GETting from the same server,
    over one kept-alive connection vs a new connection per request, taken in turns. Its ratio is what
    pooling can give at best against this server on this machine."""
    kept = open_connection((scheme, "127.0.0.1", port), 30)

    def get(conn: http.client.HTTPConnection) -> None:
        conn.request("GET", "/ping")
        if conn.getresponse().read() != b"pong":
            raise RuntimeError("unexpected answer from the upstream")

    spent = {True: 0.0, False: 0.0}
    cpu = {True: 0.0, False: 0.0}
    for i in range(2 * requests):
        pooling = i % 2 == 0
        started, cpu_started = time.perf_counter(), time.process_time()
        if pooling:
            get(kept)
        else:
            fresh = open_connection((scheme, "127.0.0.1", port), 30)
            get(fresh)
            fresh.close()
        spent[pooling] += time.perf_counter() - started
        cpu[pooling] += time.process_time() - cpu_started
    kept.close()
    return requests / spent[True], requests / spent[False], cpu[True] / requests, cpu[False] / requests


def _compare_direct(scheme: str, port: int, requests: int, rounds: int) -> None:
    _direct_rates(scheme, port, 30)
    runs = [_direct_rates(scheme, port, requests) for _ in range(rounds)]
    print(f"{scheme}, reference (http.client directly, no guest): {requests} GETs x {rounds} rounds")
    print(f"  kept-alive connection:       {statistics.median(r[0] for r in runs):7.0f} req/s median")
    print(f"  new connection per request:  {statistics.median(r[1] for r in runs):7.0f} req/s median")
    print(f"  ratio:                       {statistics.median(r[0] / r[1] for r in runs):7.2f}x median "
          f"({', '.join(f'{r[0] / r[1]:.2f}' for r in runs)}): the most a pool can give here")
    _print_cpu(runs)


def _print_cpu(runs: list[Rates]) -> None:
    on, off = statistics.median(r[2] for r in runs), statistics.median(r[3] for r in runs)
    print(f"  client CPU per request:      {on * 1e6:7.0f} us kept-alive / pooled, {off * 1e6:.0f} us new "
          f"connection: {statistics.median(r[3] / r[2] for r in runs):.2f}x median "
          f"({', '.join(f'{r[3] / r[2]:.2f}' for r in runs)})")


def _compare(engine: WasmEngine, guest: Guest, scheme: str, port: int, requests: int, rounds: int) -> None:
    allowed = [f"{scheme}://127.0.0.1:{port}"]
    pooled = _executor(engine, guest.wasm, allowed, pooling=True)
    unpooled = _executor(engine, guest.wasm, allowed, pooling=False)
    url = f"{scheme}://127.0.0.1:{port}/ping"
    _rates(pooled, unpooled, guest, url, 30)  # warm-up: compile cache, first connection
    ratios, on_rates, off_rates, runs = [], [], [], []
    for _ in range(rounds):
        run = _rates(pooled, unpooled, guest, url, requests)
        on, off = run[0], run[1]
        runs.append(run)
        on_rates.append(on)
        off_rates.append(off)
        ratios.append(on / off)
    print(f"{scheme}, {guest.name}: {requests} sequential guest requests x {rounds} rounds, "
          f"{guest.outbound} outbound GET(s) each (outbound requests/s)")
    print(f"  pooled (default):            {statistics.median(on_rates):7.0f} req/s median "
          f"({', '.join(f'{r:.0f}' for r in on_rates)})")
    print(f"  new connection per request:  {statistics.median(off_rates):7.0f} req/s median "
          f"({', '.join(f'{r:.0f}' for r in off_rates)})")
    print(f"  ratio pooled / unpooled:     {statistics.median(ratios):7.2f}x median "
          f"({', '.join(f'{r:.2f}' for r in ratios)}); target >= 2x")
    _print_cpu(runs)
    pooled.close()
    unpooled.close()


@contextlib.contextmanager
def _python_upstream(work: Path, scheme: str, cert: Path, key: Path) -> Iterator[int]:
    extra = [str(cert), str(key)] if scheme == "https" else []
    server = subprocess.Popen([sys.executable, "-c", UPSTREAM, *extra], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        yield int(server.stdout.readline())
    finally:
        server.terminate()
        server.wait()


@contextlib.contextmanager
def _nginx_upstream(work: Path, scheme: str, cert: Path, key: Path) -> Iterator[int]:
    tls = {"cert": cert, "key": key} if scheme == "https" else {}
    with run_nginx(work / f"nginx-{scheme}", **tls) as server:
        yield server.port


UPSTREAMS: dict[str, Callable[[Path, str, Path, Path], contextlib.AbstractContextManager[int]]] = {
    "python": _python_upstream, "nginx": _nginx_upstream}
"""Upstream servers: Python's ThreadingHTTPServer (slow per request: its own cost hides the client's)
and nginx (native: what a new connection costs the client shows)."""


def http(requests: int, rounds: int, per_request: int, upstreams: list[str]) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-wasi-http-fixtures")], check=True,
                   capture_output=True)
    guests = [
        Guest("wasi:http outgoing-handler", ROOT / "tests/fixtures/wasi-http/build/handler.wasm",
              lambda url: f"/outbound?{url}", lambda url: (), 1),
        Guest("fermyon:spin/http send-request", component_path("c-spin-http"), lambda url: "/",
              lambda url: (("url", url), ("count", str(per_request))), per_request),
    ]
    work = Path(tempfile.mkdtemp(prefix="tauon-bench-"))
    cert, key = _certificate(work)
    os.environ["SSL_CERT_FILE"] = str(cert)  # before tauon's TLS context is first made
    engine = WasmEngine(work / "cache")
    engine.start()
    print(f"load average {os.getloadavg()[0]:.1f}")
    try:
        for upstream in upstreams:
            for scheme in ("http", "https"):
                with UPSTREAMS[upstream](work, scheme, cert, key) as port:
                    print(f"== upstream {upstream}, {scheme}")
                    _compare_direct(scheme, port, requests * 20, rounds)
                    for guest in guests:
                        _compare(engine, guest, scheme, port, requests, rounds)
    finally:
        engine.stop()
    print(f"load average {os.getloadavg()[0]:.1f}")


SECTIONS: dict[str, Callable[[int, int, int, list[str]], None]] = {"http": http}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", choices=[*SECTIONS, []], default=[])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-request", type=int, default=20,
                        help="outbound GETs per guest request of the fermyon:spin/http guest")
    parser.add_argument("--upstreams", default=",".join(UPSTREAMS),
                        help=f"comma-separated upstream servers (default: all of {', '.join(UPSTREAMS)})")
    args = parser.parse_args(argv)
    upstreams = [name for name in args.upstreams.split(",") if name]
    if unknown := [name for name in upstreams if name not in UPSTREAMS]:
        parser.error(f"unknown upstream(s) {', '.join(unknown)}; known: {', '.join(UPSTREAMS)}")
    for name in args.sections or list(SECTIONS):
        SECTIONS[name](args.requests, args.rounds, args.per_request, upstreams)
    return 0


if __name__ == "__main__":
    sys.exit(main())
