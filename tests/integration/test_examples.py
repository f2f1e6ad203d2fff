"""The bundled examples work as shipped: `tauon ./tauon` and the files in tauon-tests/."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from support.daemon import run_tauon, wait_http

ROOT = Path(__file__).resolve().parents[2]


def test_committed_example_image_is_what_build_example_makes(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(ROOT / "scripts" / "build-example"), "--out", str(tmp_path / "img")],
                   check=True, capture_output=True)
    built = json.loads((tmp_path / "img" / "index.json").read_text())
    shipped = json.loads((ROOT / "tauon" / "images" / "hello" / "index.json").read_text())
    assert built == shipped, "tauon/images/hello is stale: run scripts/build-example and commit it"


def test_bundled_and_extra_examples_serve(tmp_path: Path) -> None:
    watch = tmp_path / "apps"
    shutil.copytree(ROOT / "tauon", watch)
    with run_tauon(tmp_path, watch_dir=watch) as tauon:
        r = wait_http("http://127.0.0.1:3000/hello/world?x=1", contains="Hello from tauon!")
        assert "You asked for /hello/world?x=1" in r.text
        assert "Hello from tauon" in httpx.get("http://127.0.0.1:3000/").text
        assert httpx.get("http://127.0.0.1:3000/robots.txt").text.startswith("User-agent")
        assert httpx.get("http://127.0.0.1:3000/.well-known/spin/health").text == "OK"
        log = tauon.wait_log(r"hello\.json: serving")
        assert "Serving http://127.0.0.1:3000" in log
        assert "hello: http://127.0.0.1:3000/hello (wildcard)" in log

        for name in ("hello-ipv6", "hello-limits", "hello-pinned", "same-address", "broken"):
            shutil.copy(ROOT / "tauon-tests" / f"{name}.json", watch / f"{name}.json")
        wait_http("http://[::1]:3001/hello", contains="Hello from tauon!")
        wait_http("http://127.0.0.1:3002/hello", contains="Hello from tauon!")
        wait_http("http://127.0.0.1:3003/hello", contains="Hello from tauon!")
        big = httpx.post("http://127.0.0.1:3002/hello", content=b"x" * (2 * 1024 * 1024))
        assert big.status_code == 413  # hello-limits.json allows 1 MiB bodies
        tauon.wait_log(r"same-address\.json: field 'address': address 127\.0\.0\.1:3000 is already "
                       r"claimed by hello\.json")
        tauon.wait_log(r"broken\.json: field 'reference': is required \(found 'refrence': "
                       r"did you mean 'reference'\?\)")
