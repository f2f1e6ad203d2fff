"""Variables service: provider precedence, config templates, Spin's error kinds, secrets kept out of text."""

from __future__ import annotations

import logging

import pytest

from tauon.app.lockparts import parse_component_meta
from tauon.app.plan import ComponentPlan, GenerationPlan
from tauon.errors import LoadError
from tauon.services import AppServices
from tauon.services.variables import (
    ComponentVariables,
    InvalidName,
    ProviderError,
    Undefined,
    VariableResolver,
    env_variable_name,
)

SECRET = "hunter2-very-secret-value"


def resolver(
    provided: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> VariableResolver:
    declared = {
        "greeting": {"default": "hello", "secret": False},
        "api_token": {"default": None, "secret": True},
        "region": {"default": "eu", "secret": False},
        "empty_default": {"default": "", "secret": False},
    }
    return VariableResolver(declared, provided or {}, env or {})


def test_env_name_is_upper_cased_with_prefix() -> None:
    assert env_variable_name("api_token") == "SPIN_VARIABLE_API_TOKEN"


def test_app_file_beats_env_beats_default() -> None:
    r = resolver(
        provided={"greeting": "from-file", "api_token": SECRET},
        env={"SPIN_VARIABLE_GREETING": "from-env", "SPIN_VARIABLE_REGION": "us", "SPIN_VARIABLE_X": "y"},
    )
    assert r.resolve("greeting") == "from-file"
    assert r.resolve("region") == "us"
    assert r.resolve("api_token") == SECRET
    assert r.resolve("empty_default") == ""  # an empty default is a value, not "required"
    r.validate()


def test_lower_case_env_name_is_not_read() -> None:
    r = resolver(env={"SPIN_VARIABLE_api_token": SECRET, "spin_variable_api_token": SECRET})
    with pytest.raises(ProviderError):
        r.resolve("api_token")


def test_required_missing_fails_validation_naming_every_variable() -> None:
    r = VariableResolver(
        {"b_var": {"default": None}, "a_var": {"default": None}, "ok": {"default": "1"}}, {}, {}
    )
    with pytest.raises(LoadError) as info:
        r.validate()
    text = str(info.value.with_file("shop.json"))
    assert text.startswith("shop.json: field 'variables': no provider resolved required variable(s): ")
    assert "'a_var', 'b_var'" in text
    assert "SPIN_VARIABLE_A_VAR" in text and "SPIN_VARIABLE_B_VAR" in text
    with pytest.raises(ProviderError, match="no provider resolved required variable 'a_var'"):
        r.resolve("a_var")


def test_component_keys_render_templates_over_app_variables() -> None:
    r = resolver(provided={"api_token": SECRET})
    component = ComponentVariables(
        {"message": "{{ greeting }}, world ({{region}})", "literal": "plain", "token": "{{api_token}}"},
        r,
        component_id="web",
    )
    assert component.get("message") == "hello, world (eu)"
    assert component.get("literal") == "plain"
    assert component.get("token") == SECRET
    assert component.get_all() == [
        ("literal", "plain"),
        ("message", "hello, world (eu)"),
        ("token", SECRET),
    ]


@pytest.mark.parametrize("key", ["Upper", "1abc", "has-dash", "trailing_", "dou__ble", ""])
def test_invalid_key_is_invalid_name(key: str) -> None:
    component = ComponentVariables({}, resolver(), component_id="web")
    with pytest.raises(InvalidName) as info:
        component.get(key)
    assert info.value.kind == "invalid-name"


def test_unknown_key_is_undefined_even_if_an_app_variable_has_that_name() -> None:
    component = ComponentVariables({"message": "x"}, resolver(), component_id="web")
    with pytest.raises(Undefined) as info:
        component.get("greeting")  # app variables are not visible by name, only config keys
    assert info.value.kind == "undefined"
    assert "'web'" in str(info.value) and "'greeting'" in str(info.value)


def test_unresolved_variable_in_template_is_provider_error() -> None:
    component = ComponentVariables({"token": "Bearer {{ api_token }}"}, resolver(), component_id="web")
    with pytest.raises(ProviderError) as info:
        component.get("token")
    assert info.value.kind == "provider"


def test_secrets_never_appear_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    declared = {"api_token": {"default": None, "secret": True}, "other": {"default": None, "secret": False}}
    r = VariableResolver(declared, {"api_token": SECRET}, {"SPIN_VARIABLE_API_TOKEN": SECRET + "-env"})
    component = ComponentVariables({"token": "{{ api_token }}", "o": "{{ other }}"}, r, component_id="web")
    assert r.is_secret("api_token") and not r.is_secret("other")
    texts = [repr(r), str(r), repr(component), str(component)]
    with caplog.at_level(logging.DEBUG):
        for bad in (lambda: component.get("o"), lambda: component.get("nope"), lambda: component.get("X")):
            with pytest.raises(Exception) as info:
                bad()
            texts += [str(info.value), repr(info.value)]
            logging.getLogger("tauon.test").exception("variables failed: %s", info.value)
        with pytest.raises(LoadError) as load:
            r.validate()
        texts.append(str(load.value))
    texts.append(caplog.text)
    assert component.get("token") == SECRET
    for text in texts:
        assert SECRET not in text


def test_app_services_open_validates_variables_and_store_labels(tmp_path: object) -> None:
    def plan(metadata: dict[str, object], variables: dict[str, object]) -> GenerationPlan:
        component = ComponentPlan(id="web", wasm_path="/x.wasm", wasm_digest="sha256:0",
                                  metadata=parse_component_meta(metadata, "metadata"),
                                  config={"k": "{{ v }}"})
        return GenerationPlan(app_id="a.json", reference="r", digest="sha256:0", name="a", version=None,
                              triggers=(), components={"web": component}, app_variables=variables)

    with pytest.raises(LoadError, match="no provider resolved required variable"):
        AppServices.open(plan({}, {"v": {"default": None, "secret": False}}), {})
    with pytest.raises(LoadError, match="unknown key_value_stores label"):
        AppServices.open(plan({"key_value_stores": ["default", "cache"]}, {"v": {"default": "1"}}), {})
    with pytest.raises(LoadError, match="unknown sqlite_databases label"):
        AppServices.open(plan({"databases": ["other"]}, {"v": {"default": "1"}}), {})
    services = AppServices.open(plan({"key_value_stores": ["default"]}, {"v": {"default": None}}),
                                {"SPIN_VARIABLE_V": "from-env"})
    try:
        web = services.component(
            ComponentPlan(id="web", wasm_path="/x", wasm_digest="d", config={"k": "{{ v }}"},
                          metadata=parse_component_meta({"key_value_stores": ["default"]}, "metadata"))
        )
        assert web.variables.get("k") == "from-env"
        assert web.open_store("default").label == "default"
    finally:
        services.close()
