"""Failures outside tauon's own error types still tell the operator what to do (no bare traceback)."""

from __future__ import annotations

import errno
import logging

import pytest

from tauon.control.appslot import describe_failure


def test_a_full_disk_names_the_path_and_the_fix(caplog: pytest.LogCaptureFixture) -> None:
    exc = OSError(errno.ENOSPC, "No space left on device", "/var/cache/tauon/blobs/x")
    with caplog.at_level(logging.ERROR):
        text = describe_failure("shop.json", exc)
    assert text.startswith("shop.json: no space left on device (/var/cache/tauon/blobs/x)")
    assert "--cache-dir" in text
    assert not caplog.records  # not an "unexpected failure" with a traceback


def test_recursion_and_other_os_errors_are_described() -> None:
    assert "nested too deeply" in describe_failure("a.json", RecursionError("maximum recursion depth"))
    text = describe_failure("a.json", PermissionError(errno.EACCES, "Permission denied", "/srv/x"))
    assert text == "a.json: Permission denied (/srv/x) (check that tauon may use that path)"


def test_a_bug_still_gets_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        try:
            raise KeyError("boom")
        except KeyError as exc:
            text = describe_failure("a.json", exc)
    assert text == "a.json: unexpected failure: KeyError('boom')"
    assert caplog.records and caplog.records[0].exc_info is not None
