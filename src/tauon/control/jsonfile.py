"""Decode the JSON of an operator's file (app file, lepton apps file) with bounded depth.

`json.loads` recurses once per nesting level, so a file of 100,000 `[` raises RecursionError (or worse,
overflows the C stack) instead of a parse error. App files are a few levels deep; anything nested more
than MAX_DEPTH is rejected by a flat scan before the parser runs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tauon.errors import SpecError

MAX_DEPTH = 32
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nesting_depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """The deepest bracket nesting outside strings, counted up to `limit + 1` (then it stops)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def load_json(file: str, data: bytes, *, after: str = "") -> Any:
    """The decoded value; SpecError naming `file` if it is not UTF-8, too deep, or not JSON.
    `after` ends the hints (e.g. what keeps running meanwhile)."""
    tail = f"; {after}" if after else ""
    try:
        text = data.decode("utf-8-sig")  # bytes would let json guess UTF-16/32
    except UnicodeDecodeError:
        raise SpecError("is not UTF-8 text", file=file, hint="save the file as UTF-8 JSON") from None
    if nesting_depth(data) > MAX_DEPTH:
        raise SpecError(f"is nested more than {MAX_DEPTH} levels deep", file=file,
                        hint=f"these files are JSON objects a few levels deep{tail}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(
            f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            file=file, hint=f"fix the JSON syntax{tail}",
        ) from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise SpecError(f"cannot be decoded: {exc}", file=file, hint=f"fix the value{tail}") from None
