"""Decode the JSON of an operator's file (app file, lepton apps file) into a value or a SpecError.

Nesting is bounded (see `tauon.boundedjson`): app files are a few levels deep, so anything nested more
than MAX_DEPTH is refused before the parser could recurse.
"""

from __future__ import annotations

import json
from typing import Any

from tauon.boundedjson import TooDeep, loads
from tauon.errors import SpecError

MAX_DEPTH = 32


def load_json(file: str, data: bytes, *, after: str = "") -> Any:
    """The decoded value; SpecError naming `file` if it is not UTF-8, too deep, or not JSON.
    `after` ends the hints (e.g. what keeps running meanwhile)."""
    tail = f"; {after}" if after else ""
    try:
        text = data.decode("utf-8-sig")  # bytes would let json guess UTF-16/32
    except UnicodeDecodeError:
        raise SpecError("is not UTF-8 text", file=file, hint="save the file as UTF-8 JSON") from None
    try:
        return loads(text, max_depth=MAX_DEPTH)
    except TooDeep:
        raise SpecError(f"is nested more than {MAX_DEPTH} levels deep", file=file,
                        hint=f"these files are JSON objects a few levels deep{tail}") from None
    except json.JSONDecodeError as exc:
        where = f" at line {exc.lineno} column {exc.colno}" if exc.doc else ""
        raise SpecError(f"is not valid JSON: {exc.msg}{where}", file=file,
                        hint=f"fix the JSON syntax{tail}") from None
