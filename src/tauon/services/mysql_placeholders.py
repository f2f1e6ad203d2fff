"""`?` placeholders of a MySQL statement bound to escaped literals.

Spin sends the statement to the server as a prepared statement, so a `?` is a parameter wherever the
server's parser sees one: not inside quoted strings, quoted identifiers or comments. This scanner
skips exactly those (MySQL's lexical rules: '...' and "..." with backslash escapes and doubled quotes,
`...` identifiers, `-- `, `#` and /* */ comments) and replaces every other `?` in order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class PlaceholderError(ValueError):
    pass


def _skip_quoted(sql: str, i: int, quote: str) -> int:
    """Index just past the quoted run starting at sql[i] (== quote)."""
    n = len(sql)
    i += 1
    while i < n:
        ch = sql[i]
        if ch == "\\" and quote != "`":
            i += 2
            continue
        if ch == quote:
            if i + 1 < n and sql[i + 1] == quote:  # doubled quote: a literal quote character
                i += 2
                continue
            return i + 1
        i += 1
    return n


def _skip_comment(sql: str, i: int) -> int | None:
    """Index just past a comment starting at sql[i], or None if none starts there."""
    n = len(sql)
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        return n if end < 0 else end + 2
    if sql[i] == "#" or (sql.startswith("--", i) and (i + 2 == n or sql[i + 2] in " \t\r\n")):
        end = sql.find("\n", i)
        return n if end < 0 else end + 1
    return None


def bind(sql: str, params: Sequence[Any], escape: Callable[[Any], str]) -> str:
    """`sql` with its `?` placeholders replaced by `escape(param)`, in order. Raises PlaceholderError
    when the counts differ (as the server does for a prepared statement)."""
    out: list[str] = []
    used = 0
    start = i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i = _skip_quoted(sql, i, ch)
            continue
        skipped = _skip_comment(sql, i) if ch in "/#-" else None
        if skipped is not None:
            i = skipped
            continue
        if ch == "?":
            if used >= len(params):
                raise PlaceholderError(f"Statement takes more than {len(params)} parameters")
            out.append(sql[start:i])
            out.append(escape(params[used]))
            used += 1
            start = i + 1
        i += 1
    if used != len(params):
        raise PlaceholderError(f"Statement takes {used} parameters but {len(params)} was supplied")
    out.append(sql[start:])
    return "".join(out)
