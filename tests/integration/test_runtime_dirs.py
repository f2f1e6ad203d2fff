"""The shared-store directory of a daemon that was killed does not outlive the next start."""

from __future__ import annotations

import json
import shutil
import signal
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
