#!/usr/bin/env python3
"""Benchmark guests' outbound calls through tauon against the same operations made directly, in one
invocation: one section per service, each in its own module (they print numbers and ratios, never
assert).

  redis      GET/SET round trips from a guest vs redis-py directly        (bench/outbound_redis.py)
  postgres   point selects from a guest vs psycopg directly               (bench/outbound_pg.py)
  http       outbound HTTP with the connection pool vs a new connection     (bench/outbound_http.py)

Usage: .venv/bin/python bench/bench_outbound.py [SECTION ...] [--SECTION-args "OPTIONS"]
(no section: all). A section's own options: .venv/bin/python bench/outbound_<section>.py --help.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SECTIONS = {"redis": "outbound_redis", "postgres": "outbound_pg", "http": "outbound_http"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", metavar="SECTION",
                        help=f"{', '.join(SECTIONS)} (default: all)")
    for name in SECTIONS:
        parser.add_argument(f"--{name}-args", default="", metavar="OPTIONS",
                            help=f"options for the {name} section, as one string")
    args = parser.parse_args()
    unknown = [name for name in args.sections if name not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    for name in args.sections or list(SECTIONS):
        module = importlib.import_module(SECTIONS[name])
        module.main(shlex.split(getattr(args, f"{name}_args")))


if __name__ == "__main__":
    main()
