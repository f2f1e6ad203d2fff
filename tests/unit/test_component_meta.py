"""Component metadata parsed once, by the loader, into typed fields (issue 12 item 2): one set of rules
(Spin's legacy `allowed_http_hosts` converted for every component) and one error wording."""

from __future__ import annotations

import pytest

from tauon.app.lockparts import parse_component_meta
from tauon.app.plan import ComponentPlan
from tauon.errors import LoadError
from tauon.executors.allowed import allowed_hosts_of
from tauon.model.component_meta import ComponentMeta
from tauon.services.variables import Undefined


def test_lists_are_typed_and_legacy_http_hosts_appended_converted() -> None:
    meta = parse_component_meta({
        "allowed_outbound_hosts": ["redis://cache:6379"],
        "allowed_http_hosts": ["example.com", "self"],
        "key_value_stores": ["default"], "databases": ["default", "other"], "ai_models": ["llama2-chat"],
        "description": "the api",
    }, "components[0].metadata")
    assert meta == ComponentMeta(
        allowed_outbound_hosts=("redis://cache:6379", "http://example.com", "https://example.com",
                                "http://self"),
        key_value_stores=("default",), databases=("default", "other"), ai_models=("llama2-chat",),
        description="the api")
    assert parse_component_meta({}, "m") == ComponentMeta()


def test_an_invalid_legacy_list_is_dropped_as_spin_drops_it() -> None:
    meta = parse_component_meta({"allowed_http_hosts": ["example.com", "ftp://nope"]}, "m")
    assert meta.allowed_outbound_hosts == ()


@pytest.mark.parametrize("key", ["allowed_outbound_hosts", "allowed_http_hosts", "key_value_stores",
                                 "databases", "ai_models"])
def test_a_list_that_is_not_strings_names_the_field(key: str) -> None:
    with pytest.raises(LoadError) as info:
        parse_component_meta({key: ["ok", 3]}, "components[2].metadata")
    assert (info.value.field, info.value.message) == (f"components[2].metadata.{key}",
                                                      "expected an array of strings")


def _component(*hosts: str) -> ComponentPlan:
    return ComponentPlan(id="web", wasm_path="/x.wasm", wasm_digest="sha256:0",
                         metadata=ComponentMeta(allowed_outbound_hosts=hosts))


def test_allowed_hosts_of_renders_templates_and_converted_legacy_entries() -> None:
    meta = parse_component_meta({"allowed_outbound_hosts": ["https://{{ host }}"],
                                 "allowed_http_hosts": ["legacy.example"]}, "m")
    component = ComponentPlan(id="web", wasm_path="/x.wasm", wasm_digest="sha256:0", metadata=meta)
    allowed = allowed_hosts_of(component, resolve=lambda name: "api.example")
    assert allowed.allows("https://api.example/x")
    assert allowed.allows("http://legacy.example/")
    assert not allowed.allows("https://other.example/")


def test_an_unresolvable_template_is_one_error_naming_component_field_and_fix() -> None:
    def resolve(name: str) -> str:
        raise Undefined(f"no provider resolved required variable {name!r}")

    with pytest.raises(LoadError) as info:
        allowed_hosts_of(_component("https://{{ host }}"), resolve=resolve)
    error = info.value
    assert error.field == "components.web.metadata.allowed_outbound_hosts"
    assert error.message.startswith("component 'web': allowed_outbound_hosts cannot be resolved: ")
    assert "'host'" in error.message
    assert error.hint is not None and "SPIN_VARIABLE_<NAME>" in error.hint
