"""The compile-cache names a generation holds follow its compiler: a Winch generation holds Winch's
artifacts, a Cranelift one Cranelift's, so the collector keeps whichever code a serving generation
(and the worker processes loading the same files) uses."""

from __future__ import annotations

from pathlib import Path

from tauon.app.plan import ComponentPlan, GenerationPlan
from tauon.wasm import cacheuse
from tauon.wasm.component.cache import component_key
from tauon.wasm.engine import WasmEngine

DIGEST = "sha256:" + "cd" * 32


def plan() -> GenerationPlan:
    component = ComponentPlan(id="web", wasm_path="/x.wasm", wasm_digest=DIGEST)
    return GenerationPlan(app_id="a.json", reference="r", digest="sha256:0", name="a", version=None,
                          triggers=(), components={"web": component})


def test_each_tier_holds_its_own_artifacts(tmp_path: Path) -> None:
    cranelift = WasmEngine(tmp_path)
    winch = cranelift.for_tier("winch")
    ours = cacheuse.entries_of(cranelift, plan(), plan())
    theirs = cacheuse.entries_of(winch, plan(), plan())
    assert f"components/{component_key(cranelift, DIGEST)}.cwasm" in ours
    assert f"components/{component_key(winch, DIGEST)}.cwasm" in theirs
    assert f"components/{component_key(winch, DIGEST)}.cwasm" not in ours
    assert {n for n in ours if n.startswith(("components/", "modules/"))}.isdisjoint(theirs)
    held_winch = cacheuse.Hold(tmp_path, theirs)
    held_cranelift = cacheuse.Hold(tmp_path, ours)
    assert theirs | ours <= cacheuse.held()
    held_winch.release()  # the swap retired the Winch generation
    assert f"components/{component_key(winch, DIGEST)}.cwasm" not in cacheuse.held()
    assert f"components/{component_key(cranelift, DIGEST)}.cwasm" in cacheuse.held()
    held_cranelift.release()
