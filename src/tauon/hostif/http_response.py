"""Outbound HTTP responses read with a fast header parser (the connections http_pool.py opens use it).

http.client parses every response's header block with the `email` package's feed parser, which was
a fifth of the client CPU of a pooled request to a fast upstream (bench/outbound_http.py). Header
blocks made only of plain `name: value` lines (every server's, in practice) are split directly into
the same `HTTPMessage`, with the same names and values the feed parser gives (its compat32 policy:
the name as sent, the value without leading blanks or the line end). Anything else (folded lines,
malformed names, a block without its blank line) still goes to the feed parser, so nothing changes
for those.
"""

from __future__ import annotations

import email.parser
import http.client
import re
import types
from typing import Any, BinaryIO

MAX_LINE = 65536
"""Longest header line (http.client's own limit)."""
MAX_HEADERS = 100
"""Most header lines (http.client's own limit)."""
_PLAIN = re.compile(r"(?:[\041-\071\073-\176]+:[^\r\n]*\r?\n)*\r?\n")
"""A header block the feed parser would read as plain `name: value` lines (its header-name
characters: printable ASCII but the colon), ending with its blank line."""


def parse_headers(fp: BinaryIO) -> http.client.HTTPMessage:
    """http.client.parse_headers, the same result, without the feed parser for plain header blocks."""
    lines = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            break
    text = b"".join(lines).decode("iso-8859-1")
    if not _PLAIN.fullmatch(text):
        message: http.client.HTTPMessage = email.parser.Parser(
            _class=http.client.HTTPMessage).parsestr(text)
        return message
    message = http.client.HTTPMessage()
    for line in lines[:-1]:
        name, _, value = line.decode("iso-8859-1").partition(":")
        message.set_raw(name, value.lstrip(" \t").rstrip("\r\n"))
    return message


# The standard library's `begin` itself, run with this module's parse_headers in place of
# http.client's: the status line, 100-continue, framing and keep-alive logic stay exactly theirs.
_stdlib_begin: Any = http.client.HTTPResponse.begin
_begin = types.FunctionType(_stdlib_begin.__code__, {**http.client.__dict__, "parse_headers": parse_headers},
                            _stdlib_begin.__name__, _stdlib_begin.__defaults__, _stdlib_begin.__closure__)


class FastResponse(http.client.HTTPResponse):
    """An HTTPResponse whose `begin` is http.client's own, reading headers with `parse_headers`."""

    def begin(self) -> None:
        _begin(self)
