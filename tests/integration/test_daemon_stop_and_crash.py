"""A daemon that was killed leaves nothing behind for the next start; a stop while workers start is clean."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import pytest

from support.daemon import free_port, run_tauon, wait_http

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def test_a_killed_daemons_shared_dir_is_removed_at_the_next_start(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    watch = tmp_path / "apps"
    watch.mkdir()
    shutil.copytree(ROOT / "tauon" / "images", watch / "images")
    port = free_port()
    (watch / "hello.json").write_text(json.dumps({"reference": "./images/hello",
                                                  "address": f"127.0.0.1:{port}"}))
    env = {"RUNTIME_DIRECTORY": str(runtime)}
    with run_tauon(tmp_path / "first", "--workers", "2", watch_dir=watch, env=env) as tauon:
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        left = sorted(p.name for p in runtime.iterdir())
        assert len(left) == 1 and left[0].startswith(f"tauon-shared-{tauon.proc.pid}-")
        tauon.signal(signal.SIGKILL)
        tauon.proc.wait()
    assert [p.name for p in runtime.iterdir()] == left  # a crash leaves it behind...
    (runtime / "tauon-shared-notapid").mkdir()  # not ours by name: left alone
    with run_tauon(tmp_path / "second", "--workers", "2", watch_dir=watch, env=env) as tauon:
        wait_http(f"http://127.0.0.1:{port}/hello", contains="Hello")
        now = sorted(p.name for p in runtime.iterdir())
        assert left[0] not in now  # ...and the next start removes it
        assert "tauon-shared-notapid" in now
        assert any(name.startswith(f"tauon-shared-{tauon.proc.pid}-") for name in now)
        tauon.wait_log(r"removed .*tauon-shared-\d+-\w+, left behind by a tauon that is gone")


def test_sigterm_while_workers_start_exits_cleanly(tmp_path: Path) -> None:
    """Workers start a second after the daemon is ready; a stop landing while one starts used to print
    an ExceptionGroup traceback (ChannelClosed: Broken pipe) from the worker. Several moments are tried,
    since the window is a fraction of a second."""
    watch = tmp_path / "apps"
    watch.mkdir()
    shutil.copytree(ROOT / "tauon" / "images", watch / "images")
    for attempt, delay in enumerate((1.0, 1.15, 1.3, 1.45)):
        port = free_port()
        (watch / "hello.json").write_text(json.dumps({"reference": "./images/hello",
                                                      "address": f"127.0.0.1:{port}"}))
        with run_tauon(tmp_path / str(attempt), "--workers", "3", watch_dir=watch) as tauon:
            tauon.wait_log(r"ready: 1 app\(s\) serving")
            time.sleep(delay)
            tauon.signal(signal.SIGTERM)
            assert tauon.proc.wait(30) == 0
            log = tauon.log()
            assert "Traceback" not in log, log
