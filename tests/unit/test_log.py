"""Log formats: journald priority prefixes only on the journal stream, JSON lines with request fields."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tauon.log import (
    JsonFormatter,
    journal_priority,
    make_formatter,
    setup_logging,
    tag_worker,
    under_journal,
)


def _record(level: int, msg: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("tauon", level, __file__, 1, msg, None, None)
    record.__dict__.update(extra)
    return record


def test_priorities() -> None:
    assert [journal_priority(lv) for lv in (logging.CRITICAL, logging.ERROR, logging.WARNING,
                                            logging.INFO, logging.DEBUG, 5)] == [2, 3, 4, 6, 7, 7]


def test_under_journal_needs_the_same_stream(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        st = os.fstat(a.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert under_journal(env, a.fileno())
        assert not under_journal(env, b.fileno())  # stderr redirected elsewhere: a plain file
        assert not under_journal({}, a.fileno())
        assert not under_journal({"JOURNAL_STREAM": "garbage"}, a.fileno())


def test_journal_lines_carry_the_priority_and_no_timestamp() -> None:
    fmt = make_formatter("text", journal=True)
    assert fmt.format(_record(logging.ERROR, "broken")) == "<3>broken"
    assert fmt.format(_record(logging.WARNING, "careful")) == "<4>careful"
    assert fmt.format(_record(logging.INFO, "fine")) == "<6>fine"
    assert fmt.format(_record(logging.DEBUG, "detail")) == "<7>detail"
    plain = make_formatter("text", journal=False).format(_record(logging.ERROR, "broken"))
    assert not plain.startswith("<") and plain.endswith("ERROR broken")
    # JSON lines are for shippers: never prefixed, even on the journal.
    assert json.loads(make_formatter("json", journal=True).format(_record(logging.ERROR, "x")))["msg"] == "x"


def test_json_lines_carry_request_fields() -> None:
    line = JsonFormatter().format(_record(logging.INFO, "app.json/web GET /a -> 200", app="app.json",
                                          component="web", method="GET", path="/a", status=200,
                                          duration_ms=1.5, unrelated="no"))
    entry = json.loads(line)
    assert {k: entry[k] for k in ("app", "component", "method", "path", "status", "duration_ms")} == {
        "app": "app.json", "component": "web", "method": "GET", "path": "/a", "status": 200,
        "duration_ms": 1.5}
    assert "unrelated" not in entry and entry["level"] == "info"


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


def test_setup_logging_detects_the_journal_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     root_logger: logging.Logger) -> None:
    with (tmp_path / "journal").open("w+") as stream:
        st = os.fstat(stream.fileno())
        monkeypatch.setattr("sys.stderr", stream)
        setup_logging("info", "text", env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        logging.getLogger("tauon.test").warning("disk %s", "full")
        root_logger.handlers[0].flush()
        stream.seek(0)
        assert stream.read() == "<4>disk full\n"


def test_setup_logging_without_a_real_stderr(monkeypatch: pytest.MonkeyPatch,
                                             root_logger: logging.Logger) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr("sys.stderr", buffer)  # no fileno(): never the journal
    setup_logging("info", "text", env={"JOURNAL_STREAM": "1:2"})
    logging.getLogger("tauon.test").warning("disk full")
    assert buffer.getvalue().endswith(" WARNING disk full\n") and not buffer.getvalue().startswith("<")


def test_a_worker_process_tags_its_json_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("info", "json", env={})
        tag_worker(2)
        logging.getLogger("tauon.access").info("app.json/web GET / -> 200", extra={"status": 200})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    entry = json.loads(stream.getvalue())
    assert (entry["worker"], entry["status"], entry["msg"]) == (2, 200, "app.json/web GET / -> 200")


def test_an_over_long_record_is_cut_and_short_ones_pass_unchanged() -> None:
    from tauon.log import MAX_RECORD_CHARS, ClipFilter, clip

    huge = "n" * 20_000_000  # a registry-supplied app name
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "%s: serving: %s", ("a.json", huge), None)
    assert ClipFilter().filter(record)
    message = record.getMessage()
    assert len(message) < MAX_RECORD_CHARS + 100 and message.endswith("more characters cut)")
    short = logging.LogRecord("t", logging.INFO, __file__, 1, "%s -> %d", ("x", 5), None)
    ClipFilter().filter(short)
    assert short.getMessage() == "x -> 5"
    assert clip("n" * 1000).endswith("(1000 characters)") and clip("ok") == "ok"


def test_json_lines_carry_the_trace_of_a_traced_request() -> None:
    trace_id, span_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    entry = json.loads(JsonFormatter().format(_record(logging.INFO, "x", app="a", trace_id=trace_id,
                                                      span_id=span_id)))
    assert entry["trace_id"] == trace_id and entry["span_id"] == span_id
    assert "trace_id" not in json.loads(JsonFormatter().format(_record(logging.INFO, "x", app="a")))
