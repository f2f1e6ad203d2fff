"""Logging set-up: readable lines by default, JSON lines for log shippers, journald priorities.

Under systemd (stderr is the journal stream named by $JOURNAL_STREAM) text lines start with the kernel
style priority prefix `<N>` so `journalctl -p warning` works; the journal adds its own timestamps.
Structured fields passed as `extra={...}` (request logs) appear as JSON keys in JSON mode.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping

# Request-log fields a JSON line carries as keys (never secrets: no query strings, no headers), the
# request's trace and server span ids (when tracing is on), and the worker process that wrote the line
# (--workers; absent for the daemon itself).
STRUCTURED_FIELDS = ("app", "component", "method", "path", "status", "duration_ms", "trace_id", "span_id",
                     "worker")

_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def journal_priority(levelno: int) -> int:
    """syslog priority for a logging level: error 3, warning 4, info 6, debug 7."""
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _PRIORITY[level]
    return 7


def under_journal(env: Mapping[str, str], fd: int) -> bool:
    """True when `fd` is the journal stream systemd connected ($JOURNAL_STREAM is "dev:inode")."""
    value = env.get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not sep or not dev.isdigit() or not ino.isdigit():
        return False
    try:
        st = os.fstat(fd)
    except OSError:
        return False
    # A child whose stderr was redirected inherits the variable; only the very stream counts.
    return st.st_dev == int(dev) and st.st_ino == int(ino)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in STRUCTURED_FIELDS:
            value = record.__dict__.get(key)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class JournalFormatter(logging.Formatter):
    """`<priority>message`: journald parses the prefix and stamps the time itself."""

    def __init__(self) -> None:
        super().__init__("%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return f"<{journal_priority(record.levelno)}>{super().format(record)}"


def make_formatter(fmt: str, *, journal: bool) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if journal:
        return JournalFormatter()
    return logging.Formatter("%(asctime)s %(levelname)-5s %(message)s", "%H:%M:%S")


MAX_RECORD_CHARS = 64 * 1024
"""One log record's message at most: registry-supplied strings (an app's name, routes) can be huge."""


class ClipFilter(logging.Filter):
    """Cut over-long messages (formatted once, here) so no input can flood the log through one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if len(message) > MAX_RECORD_CHARS:
            cut = len(message) - MAX_RECORD_CHARS
            message = f"{message[:MAX_RECORD_CHARS]}... ({cut} more characters cut)"
        # Formatted once: the formatter's getMessage() then returns it as is.
        record.msg, record.args = message, None
        return True


def clip(text: str, limit: int = 200) -> str:
    """A registry- or guest-supplied string for a log line: at most `limit` characters."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def setup_logging(level: str, fmt: str, env: Mapping[str, str] | None = None) -> None:
    env = os.environ if env is None else env
    handler = logging.StreamHandler(sys.stderr)
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    handler.setFormatter(make_formatter(fmt, journal=fd >= 0 and under_journal(env, fd)))
    handler.addFilter(ClipFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # N embedded uvicorn servers would each announce themselves; tauon prints its own banner.
    logging.getLogger("uvicorn.error").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("urllib3").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("oras").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("watchfiles").setLevel(max(logging.INFO, root.level))


def tag_worker(index: int) -> None:
    """Mark every record of this (worker) process with its index: a `worker` key in JSON lines."""
    def tag(record: logging.LogRecord) -> bool:
        record.worker = index
        return True

    for handler in logging.getLogger().handlers:
        handler.addFilter(tag)
