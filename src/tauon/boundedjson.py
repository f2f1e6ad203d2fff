"""`json.loads` for JSON from outside (app files, registries, token endpoints), with bounded nesting.

The parser recurses once per nesting level: a document of 100,000 `[` raises RecursionError from deep in
the stack (or overflows the C stack) instead of a decode error. Here nesting beyond a limit is refused by
a flat scan first, and every failure, including integers too long to convert, is a JSONDecodeError,
which every caller already handles.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
"""Locked apps, manifests and token answers nest a handful of levels; 64 leaves room to spare."""
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class TooDeep(json.JSONDecodeError):
    pass


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


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode `data`; JSONDecodeError (TooDeep for nesting beyond `max_depth`) if it cannot be.
    UnicodeDecodeError for bytes that are not UTF-8 (as `json.loads` raises it)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if nesting_depth(raw, max_depth) > max_depth:
        raise TooDeep(f"nested more than {max_depth} levels deep", "", 0)
    try:
        return json.loads(data)
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise json.JSONDecodeError(str(exc), "", 0) from None
