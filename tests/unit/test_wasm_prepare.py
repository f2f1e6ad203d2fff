"""Componentizing and composing through the real encoder (wasm-tools in a bounded subprocess), the
deny adapter's capability sets, the shipped adapters' provenance, and refusing middleware."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from support.componentize import fixture
from tauon.app.lockedapp import parse_locked_app
from tauon.app.plan import DependencyPlan
from tauon.control.loader import refuse_middleware
from tauon.errors import LoadError
from tauon.wasm import encoder
from tauon.wasm.capabilities import DENY_ADAPTER_EXPORTS, deny_plan
from tauon.wasm.componentize import prepare_source
from tauon.wasm.compose import compose_component
from tauon.wasm.depnames import world_names

ADAPTERS = Path(encoder.__file__).resolve().parents[1] / "adapters"
GREET = "tauon-fixtures:deps/greet@0.1.0"


def _write(tmp: Path, name: str) -> tuple[Path, str]:
    data = fixture(name)
    path = tmp / f"{name}.wasm"
    path.write_bytes(data)
    return path, "sha256:" + hashlib.sha256(data).hexdigest()


def test_conversion_is_cached_by_digest(tmp_path: Path) -> None:
    path, digest = _write(tmp_path, "reactor-http")
    first = prepare_source(tmp_path / "cache", path, digest, component_id="c")
    assert first.kind == "component" and first.path != path
    assert first.digest == "sha256:" + hashlib.sha256(first.path.read_bytes()).hexdigest()
    # A second preparation would fail within 1 ms if it ran the encoder again: it reads the cache.
    again = prepare_source(tmp_path / "cache", path, digest, component_id="c",
                           bounds=encoder.Bounds(timeout=0.001))
    assert again == first
    first.path.write_bytes(first.path.read_bytes()[:-1])  # a truncated entry is converted again
    with pytest.raises(LoadError, match="ran longer than"):
        prepare_source(tmp_path / "cache", path, digest, component_id="c",
                       bounds=encoder.Bounds(timeout=0.001))
    assert prepare_source(tmp_path / "cache", path, digest, component_id="c") == first


@pytest.mark.parametrize(("bounds", "said"), [
    (encoder.Bounds(memory=8 << 20), "under tauon's limits (8 MiB"),
    (encoder.Bounds(timeout=0.001), "ran longer than 0.001 s and was stopped"),
])
def test_conversion_runs_under_bounds(tmp_path: Path, bounds: encoder.Bounds, said: str) -> None:
    path, digest = _write(tmp_path, "reactor-http")
    with pytest.raises(LoadError) as caught:
        prepare_source(tmp_path / "cache", path, digest, component_id="web", bounds=bounds)
    assert "component 'web'" in caught.value.message and said in caught.value.message
    assert not list((tmp_path / "cache").rglob("*.wasm"))


def test_modules_tauon_runs_itself_are_left_alone(tmp_path: Path) -> None:
    import wasmtime

    wagi = tmp_path / "wagi.wasm"
    wat = '(module (func (export "_start")) (memory (export "memory") 1))'
    wagi.write_bytes(bytes(wasmtime.wat2wasm(wat)))
    source = prepare_source(tmp_path / "cache", wagi, "sha256:" + "1" * 64, component_id="w")
    assert (source.path, source.kind) == (wagi, "module")


def test_compose_wraps_a_dependency_that_inherits_nothing(tmp_path: Path) -> None:
    main_path, main_digest = _write(tmp_path, "dep-main")
    dep_path, dep_digest = _write(tmp_path, "dep-greeter")
    main = prepare_source(tmp_path / "cache", main_path, main_digest, component_id="main")
    dep = DependencyPlan(name=GREET, wasm_path=str(dep_path), wasm_digest=dep_digest)
    composed = compose_component(tmp_path / "cache", main, [dep], component_id="main")
    imports, exports = world_names(encoder.run(["component", "wit", composed.path], what="wit"))
    assert exports == ["wasi:http/incoming-handler@0.2.0"]
    assert GREET not in imports and "wasi:http/outgoing-handler@0.2.0" not in imports  # denied
    inherited = compose_component(tmp_path / "cache", main, [
        DependencyPlan(name=GREET, wasm_path=str(dep_path), wasm_digest=dep_digest, inherit="all")],
        component_id="main")
    imports, _ = world_names(encoder.run(["component", "wit", inherited.path], what="wit"))
    assert "wasi:http/outgoing-handler@0.2.0" in imports and inherited.digest != composed.digest


@pytest.mark.parametrize(("inherit", "plugged"), [
    ((), ["wasi:http/outgoing-handler@0.2.0", "wasi:cli/environment@0.2.0", "fermyon:spin/variables@2.0.0"]),
    (("variables",), ["wasi:http/outgoing-handler@0.2.0", "wasi:cli/environment@0.2.0"]),
    (("allowed_outbound_hosts", "environment", "unknown-set"), ["fermyon:spin/variables@2.0.0"]),
    ("all", []),
])
def test_deny_plan(inherit: str | tuple[str, ...], plugged: list[str]) -> None:
    imports = ["wasi:http/types@0.2.0", "wasi:http/outgoing-handler@0.2.0", "wasi:cli/environment@0.2.0",
               "fermyon:spin/variables@2.0.0", "my:own/thing@1.0.0"]
    assert sorted(deny_plan(imports, inherit, what="d")) == sorted(plugged)


def test_denied_import_the_adapter_cannot_satisfy_is_refused() -> None:
    with pytest.raises(LoadError) as caught:
        deny_plan(["wasi:http/outgoing-handler@0.2.3"], ("variables",), what="dependency 'd'")
    assert "dependency 'd' imports wasi:http/outgoing-handler@0.2.3" in caught.value.message
    assert "'allowed_outbound_hosts'" in caught.value.message
    with pytest.raises(LoadError, match=r"fermyon:spin/redis@2\.0\.0"):
        deny_plan(["fermyon:spin/redis@2.0.0"], (), what="d")
    assert deny_plan(["fermyon:spin/redis@2.0.0"], ("allowed_outbound_hosts",), what="d") == {}


def test_adapters_are_the_ones_the_readme_names() -> None:
    readme = (ADAPTERS / "README.md").read_text()
    for name in (encoder.REACTOR_ADAPTER, encoder.DENY_ADAPTER):
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}`"))
        (expected,) = re.findall(r"`([0-9a-f]{64})`", row)
        assert hashlib.sha256((ADAPTERS / name).read_bytes()).hexdigest() == expected, name
        assert encoder.adapter_path(name) == ADAPTERS / name


def test_deny_adapter_exports_what_capabilities_expects() -> None:
    wit = encoder.run(["component", "wit", encoder.adapter_path(encoder.DENY_ADAPTER)], what="wit")
    _, exports = world_names(wit)
    assert sorted(exports) == sorted(DENY_ADAPTER_EXPORTS)


LOCK: dict[str, Any] = {
    "spin_lock_version": 0,
    "triggers": [{"id": "t", "trigger_type": "http",
                  "trigger_config": {"component": "c", "route": "/..."}}],
    "components": [{"id": "c",
                    "source": {"content_type": "application/wasm", "digest": "sha256:" + "a" * 64}}],
}
MIDDLEWARE = [{"source": {"content_type": "application/wasm", "digest": "sha256:" + "b" * 64},
               "export": None}]


def test_middleware_is_refused() -> None:
    refuse_middleware(parse_locked_app(LOCK))
    on_component = copy.deepcopy(LOCK)
    on_component["components"][0]["trigger_dependencies"] = {"middleware": MIDDLEWARE}
    with pytest.raises(LoadError) as caught:
        refuse_middleware(parse_locked_app(on_component))
    assert "component 'c' has trigger_dependencies (HTTP middleware)" in caught.value.message
    assert caught.value.field == "components[0].trigger_dependencies"
    on_trigger = copy.deepcopy(LOCK)
    on_trigger["triggers"][0]["trigger_dependencies"] = {"middleware": MIDDLEWARE}
    with pytest.raises(LoadError, match="trigger 't' has trigger_dependencies"):
        refuse_middleware(parse_locked_app(on_trigger))


def test_inheriting_everything_composes_as_wasm_tools_compose_does(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Relative paths too: the encoder runs in its own directory."""
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, "dep-main")
    _write(tmp_path, "dep-greeter")
    main = prepare_source(Path("cache"), Path("dep-main.wasm"), "sha256:" + hashlib.sha256(
        fixture("dep-main")).hexdigest(), component_id="main")
    dep = DependencyPlan(name=GREET, wasm_path="dep-greeter.wasm", inherit="all",
                         wasm_digest="sha256:" + hashlib.sha256(fixture("dep-greeter")).hexdigest())
    composed = compose_component(Path("cache"), main, [dep], component_id="main")
    assert composed.path.read_bytes() == fixture("dep-composed")
