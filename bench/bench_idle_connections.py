#!/usr/bin/env python3
"""Idle client connections against a real tauon process: what they cost while open and how long they
last. Opens N connections that never send a byte (as a port scanner or a slowloris client would), then
prints the serving process's open descriptors and resident memory before and with them, the latency of
a normal request meanwhile, and when tauon has closed them all (its --head-timeout).

Usage: .venv/bin/python bench/bench_idle_connections.py [--connections 10000] [--head-timeout 30]
(needs a descriptor limit above N for this process and tauon: `ulimit -n`).
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.daemon import free_port, run_tauon, wait_http  # noqa: E402


def fds_and_rss(pid: int) -> tuple[int, float]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    with open(f"/proc/{pid}/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    return fds, rss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--head-timeout", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tauon-idle-") as tmpdir:
        tmp = Path(tmpdir)
        watch = tmp / "apps"
        watch.mkdir()
        shutil.copytree(ROOT / "tauon" / "images", watch / "images")
        port = free_port()
        (watch / "hello.json").write_text(json.dumps({"reference": "./images/hello",
                                                      "address": f"127.0.0.1:{port}"}))
        url = f"http://127.0.0.1:{port}/hello"
        with run_tauon(tmp, "--workers", "1", "--head-timeout", str(args.head_timeout),
                       "--max-connections", str(args.connections + 100), "--log-level", "info",
                       watch_dir=watch) as tauon:
            wait_http(url, contains="Hello")
            before = fds_and_rss(tauon.proc.pid)
            opened = time.monotonic()
            sel = selectors.DefaultSelector()
            socks = []
            for _ in range(args.connections):
                sock = socket.create_connection(("127.0.0.1", port))
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ)
                socks.append(sock)
            took = time.monotonic() - opened
            time.sleep(1)
            held = fds_and_rss(tauon.proc.pid)
            started = time.perf_counter()
            assert "Hello" in httpx.get(url, timeout=30).text
            latency = (time.perf_counter() - started) * 1000
            open_count = len(socks)
            closed_at: list[float] = []
            deadline = time.monotonic() + args.head_timeout * 3 + 30
            while open_count and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=1):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    try:
                        data = sock.recv(1)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(sock)
                        sock.close()
                        open_count -= 1
                        closed_at.append(time.monotonic() - opened)
            after = fds_and_rss(tauon.proc.pid)
            for sock in socks:
                if sock.fileno() >= 0:
                    sock.close()
    print(f"idle connections: {args.connections} opened in {took:.1f} s; "
          f"--head-timeout {args.head_timeout:g} s")
    print(f"  tauon before:             {before[0]:6d} fds  {before[1]:7.1f} MiB RSS")
    print(f"  tauon holding them:       {held[0]:6d} fds  {held[1]:7.1f} MiB RSS  "
          f"(+{(held[1] - before[1]) * 1024 / max(1, args.connections):.1f} KiB per connection)")
    print(f"  a request meanwhile:      {latency:.1f} ms")
    if closed_at:
        print(f"  closed by tauon:          {len(closed_at)} of {args.connections}, the first after "
              f"{min(closed_at):.1f} s, the last after {max(closed_at):.1f} s from the first connect")
    print(f"  tauon after:              {after[0]:6d} fds  {after[1]:7.1f} MiB RSS")


if __name__ == "__main__":
    main()
