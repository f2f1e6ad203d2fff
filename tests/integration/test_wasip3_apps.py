"""A real Spin 4 app (spin-sdk 5.0.0, componentize-py 0.25.1: the python-p3 fixture of
scripts/build-components-extra) through the registry and the `tauon` process.

tauon cannot host component-model async yet (issue 19, stage 2), so such an app is refused at load with
the reason and the fix, and an app beside it keeps serving. The fixture's world is Spin's
`spin:up/http-trigger@4.1.0`: it exports `wasi:http/handler@0.3.0` and imports the p3 and p2 WASI
interfaces side by side; these tests fail if the SDK's output stops exporting the p3 handler (the
refusal would not name it) or if tauon starts loading it half-way.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from support.apps import app_file, push_app
from support.components import component_path, component_world, extra_component_path
from support.daemon import free_port, run_tauon, wait_http
from support.registry import RegistryServer
from support.spinpush import SpinAppSpec, SpinComponent

pytestmark = pytest.mark.integration


def test_the_fixture_is_a_wasip3_spin4_component() -> None:
    world = component_world(extra_component_path("python-p3"))
    assert "wasi:http/handler@0.3.0" in world.exports
    assert any(name.startswith("spin:key-value/key-value@3.") for name in world.imports)
    assert any(name.startswith("wasi:http/client@0.3.") for name in world.imports)


def test_a_spin4_app_is_refused_with_the_reason_and_its_neighbour_serves(
        tmp_path: Path, registry: RegistryServer) -> None:
    p3 = SpinAppSpec(name="p3", components=[SpinComponent(
        id="p3", wasm=extra_component_path("python-p3").read_bytes())],
        triggers=[{"route": "/...", "component": "p3"}])
    c = SpinAppSpec(name="c", components=[SpinComponent(id="c", wasm=component_path("c").read_bytes())],
                    triggers=[{"route": "/...", "component": "c"}])
    p3_ref = push_app(registry, "wasip3/python", "v1", p3)
    c_ref = push_app(registry, "wasip3/neighbour", "v1", c)
    p3_port, c_port = free_port(), free_port()
    # Tiering on: Winch compiles the 25 MB component several times faster than Cranelift, and the
    # refusal comes after the compile (executor selection reads the compiled component's exports).
    with run_tauon(tmp_path, env={"TAUON_TIERING": "on"}) as tauon:
        (tauon.watch_dir / "c.json").write_text(app_file(c_ref, c_port))
        wait_http(f"http://127.0.0.1:{c_port}/", timeout=60)
        (tauon.watch_dir / "p3.json").write_text(app_file(p3_ref, p3_port))
        log = tauon.wait_log(r"p3\.json: .*wasi:http/handler@0\.3\.0", timeout=120)
        line = next(line for line in log.splitlines() if "p3.json:" in line and "handler@0.3.0" in line)
        assert "component 'p3'" in line and "component-model async" in line
        assert httpx.get(f"http://127.0.0.1:{c_port}/").status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{p3_port}/echo", timeout=2)
