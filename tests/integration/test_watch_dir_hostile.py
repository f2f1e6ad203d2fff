"""Whatever lands in (or happens to) the watched directory, the daemon keeps running and serving.

Each case once stopped the daemon (rc 1): a file name that is not UTF-8 (watchfiles cannot decode it,
also at start-up), an app file of 100,000 `[` (RecursionError in the JSON parser), the same in a lepton
apps file followed by SIGHUP, and the watched directory becoming unlistable.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from support.daemon import NO_DAC_OVERRIDE, TauonProcess, free_port, run_tauon, wait_http

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BAD_NAME = b"\xff\xfebad.json"


def hello_app(directory: Path, name: str) -> str:
    """An app file serving the bundled example image (no registry needed); returns its URL."""
    if not (directory / "images").exists():
        shutil.copytree(ROOT / "tauon" / "images", directory / "images")
    port = free_port()
    (directory / name).write_text(json.dumps({"reference": "./images/hello", "address": f"127.0.0.1:{port}"}))
    return f"http://127.0.0.1:{port}/hello"


def assert_alive(tauon: TauonProcess) -> None:
    assert tauon.proc.poll() is None, f"tauon exited with {tauon.proc.returncode}:\n{tauon.log()}"


def test_a_file_name_that_is_not_utf8_is_reported_and_nothing_stops(tmp_path: Path) -> None:
    watch = tmp_path / "apps"
    watch.mkdir()
    first = hello_app(watch, "first.json")
    with open(os.fsencode(watch) + b"/" + BAD_NAME, "w") as fh:
        fh.write("{}")
    with run_tauon(tmp_path, "--workers", "1", watch_dir=watch) as tauon:  # present at start-up
        wait_http(first, contains="Hello")
        tauon.wait_log(r"\\xff\\xfebad\.json: has a file name that is not valid UTF-8 \(rename it")
        # and one appearing while watching (watchfiles raises on its event)
        with open(os.fsencode(watch) + b"/\xfflater.json", "w") as fh:
            fh.write("{}")
        tauon.wait_log(r"\\xfflater\.json: has a file name that is not valid UTF-8")
        second = hello_app(watch, "second.json")  # the watch still sees new files
        wait_http(second, contains="Hello")
        wait_http(first, contains="Hello")
        assert_alive(tauon)


def test_a_deeply_nested_app_file_is_an_error_for_that_file_only(tmp_path: Path) -> None:
    watch = tmp_path / "apps"
    watch.mkdir()
    url = hello_app(watch, "good.json")
    with run_tauon(tmp_path, "--workers", "1", watch_dir=watch) as tauon:
        wait_http(url, contains="Hello")
        (watch / "deep.json").write_text("[" * 100_000)
        tauon.wait_log(r"deep\.json: is nested more than 32 levels deep")
        # the same depth inside an otherwise good file's field
        (watch / "good.json").write_text(json.dumps({"reference": "./images/hello", "address": url[7:-6],
                                                     "variables": {"x": "y"}})[:-1]
                                         + ', "extra": ' + "[" * 50_000 + "]" * 50_000 + "}")
        tauon.wait_log(r"good\.json: is nested more than 32 levels deep")
        wait_http(url, contains="Hello")  # the last good version keeps serving
        assert_alive(tauon)


def test_a_deeply_nested_lepton_file_on_sighup_is_logged_and_everything_keeps_serving(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "tauon" / "images", tmp_path / "images")
    port = free_port()
    apps_file = tmp_path / "lepton.json"
    apps_file.write_text(json.dumps({"apps": [{"name": "hello", "reference": "./images/hello",
                                               "address": f"127.0.0.1:{port}"}]}))
    with run_tauon(tmp_path, "--workers", "1", apps_file=apps_file) as tauon:
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        apps_file.write_text("{\"apps\": " + "[" * 100_000)
        tauon.signal(signal.SIGHUP)
        tauon.wait_log(r"lepton\.json: is nested more than 32 levels deep.*the apps keep serving")
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        assert_alive(tauon)


def test_an_unlistable_watched_directory_keeps_the_apps_serving(tmp_path: Path) -> None:
    """Root reads any directory, so tauon runs without the capabilities that allow it (as a service
    user would); the directory then becomes unreadable to it."""
    watch = tmp_path / "apps"
    watch.mkdir()
    url = hello_app(watch, "good.json")
    wrapper = NO_DAC_OVERRIDE if os.getuid() == 0 else ()
    with run_tauon(tmp_path, "--workers", "1", "--resync-interval", "1", watch_dir=watch,
                   wrapper=wrapper) as tauon:
        wait_http(url, contains="Hello")
        watch.chmod(0o000)
        try:
            tauon.wait_log(r"cannot list .*apps: Permission denied; the apps keep serving as they are")
            wait_http(url, contains="Hello")
            assert_alive(tauon)
        finally:
            watch.chmod(0o755)
        second = hello_app(watch, "second.json")
        wait_http(second, contains="Hello")  # listing again once the permission is back
        wait_http(url, contains="Hello")
        assert_alive(tauon)
