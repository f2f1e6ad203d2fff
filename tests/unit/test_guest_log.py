"""Guest stdout/stderr is logged line by line within a per-request budget that empty lines cannot dodge."""

from __future__ import annotations

import logging

import pytest

from tauon.hostif.state import LINE_COST, LOG_LIMIT, HostConfig, HostState

LOGGER = "tauon.test.guestlog"


def state() -> HostState:
    return HostState(HostConfig(label="app.json/web", logger=logging.getLogger(LOGGER)), timeout=30)


def test_empty_lines_count_against_the_budget(caplog: pytest.LogCaptureFixture) -> None:
    s = state()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        s.stdout.write(b"\n" * 3_000_000)  # 3M empty lines used to be logged: len(b"") == 0
    lines = [r for r in caplog.records if r.name == LOGGER]
    assert len(lines) <= LOG_LIMIT // LINE_COST + 2
    assert "guest output over" in lines[-1].getMessage()


def test_ordinary_output_is_logged_with_its_label(caplog: pytest.LogCaptureFixture) -> None:
    s = state()
    with caplog.at_level(logging.INFO, logger=LOGGER):
        s.stderr.write(b"hello\nworld")
        s.finish()
    assert [r.getMessage() for r in caplog.records] == ["app.json/web stderr: hello",
                                                        "app.json/web stderr: world"]
