"""Locked-app parsing and validation (spin-spec §2, §4.1, §5.2) and the config template renderer."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tauon.app.expressions import TemplateError, parse_template, variable_name_error
from tauon.app.lockedapp import (
    LockedApp,
    parse_locked_app,
    parse_locked_app_json,
    render_template,
)
from tauon.errors import LoadError

DIGEST = "sha256:0581cc33b8a8a82adbc697892226590f2f91dde8d488e2f53e20d51b050fe9ef"

# The registry form of the spin-spec §2.8 example (trimmed to what matters here).
EXAMPLE: dict[str, Any] = {
    "spin_lock_version": 0,
    "metadata": {
        "name": "hello-static",
        "version": "0.1.0",
        "trigger": {"type": "http"},
        "triggers": {},
    },
    "variables": {"api_token": {"secret": True}, "greeting": {"default": "Hello"}},
    "triggers": [
        {
            "id": "api-http-trigger",
            "trigger_type": "http",
            "trigger_config": {"component": "api", "route": "/api/..."},
        },
        {
            "id": "static-http-trigger",
            "trigger_type": "http",
            "trigger_config": {"component": "static", "route": "/..."},
        },
    ],
    "components": [
        {
            "id": "api",
            "metadata": {
                "allowed_outbound_hosts": ["https://api.example.com"],
                "key_value_stores": ["default"],
            },
            "source": {"content_type": "application/wasm", "digest": DIGEST},
            "env": {"LOG_LEVEL": "info"},
            "config": {"greeting": "{{ greeting }}", "token": "{{ api_token }}"},
        },
        {
            "id": "static",
            "source": {"content_type": "application/wasm", "digest": DIGEST},
            "files": [
                {"digest": DIGEST, "path": "index.html"},
                {"inline": "VXNlci1hZ2VudDogKgpEaXNhbGxvdzoK", "digest": DIGEST, "path": "robots.txt"},
            ],
        },
    ],
}


def example(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(EXAMPLE)
    data.update(changes)
    return data


def with_trigger_config(config: dict[str, Any], trigger_type: str = "http") -> dict[str, Any]:
    data = example()
    data["triggers"] = [{"id": "t", "trigger_type": trigger_type, "trigger_config": config}]
    return data


def load_error(data: Any) -> LoadError:
    with pytest.raises(LoadError) as info:
        parse_locked_app(data)
    return info.value


def test_example_parses() -> None:
    app = parse_locked_app(example())
    assert (app.name, app.version, app.oci_image_digest, app.spin_lock_version) == (
        "hello-static",
        "0.1.0",
        None,
        0,
    )
    assert [t.id for t in app.triggers] == ["api-http-trigger", "static-http-trigger"]
    assert [(r, t.config.component) for r, t in app.route_entries()] == [
        ("/api/...", "api"),
        ("/...", "static"),
    ]
    api = app.component("api")
    assert api.allowed_outbound_hosts == ("https://api.example.com",)
    assert api.key_value_stores == ("default",)
    assert dict(api.env) == {"LOG_LEVEL": "info"}
    assert api.source.content.digest == DIGEST and api.source.content_type == "application/wasm"
    static = app.component("static")
    assert [f.guest_path for f in static.files] == ["index.html", "robots.txt"]
    assert static.files[1].source.inline == b"User-agent: *\nDisallow:\n"  # unpadded base64
    assert app.variables["api_token"].required and app.variables["api_token"].secret
    assert not app.variables["greeting"].required
    assert app.warnings == ()
    with pytest.raises(KeyError):
        app.component("nope")


def test_result_is_frozen() -> None:
    app = parse_locked_app(example())
    with pytest.raises((AttributeError, TypeError)):  # 3.11 slots dataclasses raise TypeError
        app.spin_lock_version = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        app.component("api").env["X"] = "y"  # type: ignore[index]


def test_json_entry_point_and_unknown_top_level_fields() -> None:
    app = parse_locked_app_json(json.dumps(example(never_create_field_with_this_name=123)))
    assert isinstance(app, LockedApp)
    assert load_error_json(b"{not json").field is None


def load_error_json(raw: bytes) -> LoadError:
    with pytest.raises(LoadError, match="not valid JSON") as info:
        parse_locked_app_json(raw)
    return info.value


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"spin_lock_version": 2}, "spin_lock_version", "invalid version 2 > 1"),
        ({"spin_lock_version": "1"}, "spin_lock_version", "non-negative integer"),
        ({"spin_lock_version": True}, "spin_lock_version", "non-negative integer"),
        ({"must_understand": ["never_create_field_with_this_name"]}, "must_understand[0]", "unknown variant"),
        (
            {"host_requirements": {"gpu": "required"}},
            "host_requirements",
            "does not support the following features",
        ),
        ({"metadata": []}, "metadata", "expected an object"),
        ({"triggers": {}}, "triggers", "expected an array"),
        ({"variables": {"Bad": {}}}, "variables.Bad", "invalid character 'B'"),
        ({"variables": {"a__b": {}}}, "variables.a__b", "consecutive underscores"),
        ({"variables": {"x": {"default": 1}}}, "variables.x.default", "expected a string"),
        ({"variables": {"x": {"secret": "yes"}}}, "variables.x.secret", "true or false"),
    ],
)
def test_top_level_errors(changes: dict[str, Any], field: str, message: str) -> None:
    e = load_error(example(**changes))
    assert e.field == field
    assert message in e.message


@pytest.mark.parametrize("key", ["spin_lock_version", "triggers", "components"])
def test_required_top_level_fields(key: str) -> None:
    data = example()
    del data[key]
    e = load_error(data)
    assert (e.field, e.message) == (key, f"missing field '{key}'")


def test_understood_must_understand_and_host_requirements() -> None:
    app = parse_locked_app(
        example(
            spin_lock_version=1,
            must_understand=["host_requirements", "component_host_requirements"],
            host_requirements={"local_service_chaining": "required", "gpu": "optional"},
        )
    )
    assert dict(app.host_requirements) == {"local_service_chaining": "required"}  # optional ones dropped
    assert app.must_understand == ("host_requirements", "component_host_requirements")


def test_component_host_requirements() -> None:
    data = example()
    data["components"][0]["host_requirements"] = {"middleware": "required", "x": "optional"}
    assert dict(parse_locked_app(data).component("api").host_requirements) == {"middleware": "required"}
    data["components"][1]["host_requirements"] = {"teleport": "required"}
    e = load_error(data)
    assert e.field == "components[1].host_requirements"
    assert e.message.endswith("application: teleport")


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda c: c.pop("source"), "components[0].source", "missing field 'source'"),
        (lambda c: c.update(source={"digest": DIGEST}), "components[0].source.content_type", "missing field"),
        (
            lambda c: c.update(source={"content_type": "application/wasm"}),
            "components[0].source",
            "at least one",
        ),
        (lambda c: c["source"].update(digest="md5"), "components[0].source.digest", "not a digest"),
        (lambda c: c["source"].update(inline="!!"), "components[0].source.inline", "base64"),
        (lambda c: c.pop("id"), "components[0].id", "missing field 'id'"),
        (lambda c: c.update(env={"A": 1}), "components[0].env.A", "expected a string"),
        (lambda c: c.update(files=[{"digest": DIGEST}]), "components[0].files[0].path", "missing field"),
        (lambda c: c.update(files=[{"path": "x"}]), "components[0].files[0]", "at least one"),
        (lambda c: c.update(config={"Bad": "x"}), "components[0].config.Bad", "invalid variable name"),
        (lambda c: c.update(config={"k": "{{ nope }}"}), "components[0].config.k", "unknown variable 'nope'"),
        (lambda c: c.update(config={"k": "{{ greeting"}), "components[0].config.k", "unmatched '{{'"),
        (
            lambda c: c["metadata"].update(allowed_outbound_hosts=["api.example.com"]),
            "components[0].metadata.allowed_outbound_hosts",
            "'api.example.com': it has no scheme",
        ),
        (
            lambda c: c["metadata"].update(allowed_outbound_hosts=["insecure:allow-all"]),
            "components[0].metadata.allowed_outbound_hosts",
            "*://*:*",
        ),
        (
            lambda c: c["metadata"].update(allowed_outbound_hosts=["https://{{ greeting }}/x"]),
            "components[0].metadata.allowed_outbound_hosts",
            "default variable values",
        ),
        (
            lambda c: c["metadata"].update(key_value_stores="default"),
            "components[0].metadata.key_value_stores",
            "array of strings",
        ),
        (
            lambda c: c.update(
                dependencies={"a:b/c@1.0.0": {"source": {"content_type": "application/wasm"}}}
            ),
            "components[0].dependencies.a:b/c@1.0.0.source",
            "at least one",
        ),
        (
            lambda c: c.update(
                dependencies={"a:b": {"source": {"content_type": "x", "digest": DIGEST}, "inherit": "Some"}}
            ),
            "components[0].dependencies.a:b.inherit",
            "expected",
        ),
    ],
)
def test_component_errors(mutate: Any, field: str, message: str) -> None:
    data = example()
    mutate(data["components"][0])
    e = load_error(data)
    assert e.field == field
    assert message in e.message


def test_duplicate_component_ids() -> None:
    data = example()
    data["components"][1]["id"] = "api"
    e = load_error(data)
    assert (e.field, e.message) == ("components[1].id", "duplicate component id 'api'")


def test_allowed_hosts_with_unresolvable_template_are_deferred_and_legacy_hosts_converted() -> None:
    data = example()
    meta = data["components"][0]["metadata"]
    meta["allowed_outbound_hosts"] = ["https://{{ api_token }}"]
    meta["allowed_http_hosts"] = ["example.com:8080"]
    api = parse_locked_app(data).component("api")
    assert api.allowed_outbound_hosts == (
        "https://{{ api_token }}",
        "http://example.com:8080",
        "https://example.com:8080",
    )


def test_dependencies_parse() -> None:
    data = example()
    src = {"content_type": "application/wasm", "digest": DIGEST}
    data["components"][0]["dependencies"] = {
        "my:lib/util@1.0.0": {"source": src, "export": None},
        "all": {"source": src, "export": "x", "inherit": "All"},
        "some": {"source": src, "inherit": {"Some": ["allowed_outbound_hosts"]}},
    }
    data["components"][0]["trigger_dependencies"] = {"middleware": [{"source": src, "export": None}]}
    api = parse_locked_app(data).component("api")
    assert [(d.export, d.inherit) for d in api.dependencies.values()] == [
        (None, ()),
        ("x", "all"),
        (None, ("allowed_outbound_hosts",)),
    ]
    assert len(api.trigger_dependencies["middleware"]) == 1


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"component": "api", "route": "/x"}, ("/x", "api", None, "http", "${SCRIPT_NAME} ${ARGS}")),
        (
            {"component": "api", "route": {"private": True}},
            (None, "api", None, "http", "${SCRIPT_NAME} ${ARGS}"),
        ),
        (
            {"component": "api", "route": "/x", "executor": None},
            ("/x", "api", None, "http", "${SCRIPT_NAME} ${ARGS}"),
        ),
        (
            {"component": "api", "route": "/x", "executor": {"type": "spin"}},
            ("/x", "api", None, "http", "${SCRIPT_NAME} ${ARGS}"),
        ),
        (
            {"component": "api", "route": "/x", "executor": {"type": "wagi"}},
            ("/x", "api", None, "wagi", "${SCRIPT_NAME} ${ARGS}"),
        ),
        (
            {
                "component": "api",
                "route": "/x",
                "executor": {"type": "wagi", "argv": "${ARGS}", "entrypoint": "_start"},
            },
            ("/x", "api", None, "wagi", "${ARGS}"),
        ),
    ],
)
def test_http_trigger_config(config: dict[str, Any], expected: tuple[Any, ...]) -> None:
    t = parse_locked_app(with_trigger_config(config)).triggers[0]
    c = t.config
    assert (c.route, c.component, c.static_response, c.executor, c.argv) == expected


def test_static_response() -> None:
    config = {
        "route": "/teapot",
        "static_response": {"status_code": 418, "headers": {"x-a": "1"}, "body": "tea"},
    }
    t = parse_locked_app(with_trigger_config(config)).triggers[0]
    assert t.config.static_response is not None
    assert (
        t.config.static_response.status,
        t.config.static_response.headers,
        t.config.static_response.body,
    ) == (
        418,
        (("x-a", "1"),),
        "tea",
    )
    assert t.label == "t"
    bare = parse_locked_app(with_trigger_config({"route": "/", "static_response": {}})).triggers[0]
    assert bare.config.static_response is not None
    assert (bare.config.static_response.status, bare.config.static_response.body) == (200, None)


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"component": "api"}, "triggers[0].trigger_config.route", "missing field 'route'"),
        ({"component": "api", "route": 5}, "triggers[0].trigger_config.route", "expected a route string"),
        (
            {"component": "api", "route": {"private": False}},
            "triggers[0].trigger_config.route",
            "{ private = false }",
        ),
        (
            {"component": "api", "route": {"private": True, "x": 1}},
            "triggers[0].trigger_config.route",
            "expected",
        ),
        ({"component": "api", "route": "/:"}, "triggers[0].trigger_config.route", "params must be named"),
        ({"component": "api", "route": "/a/*/b"}, "triggers[0].trigger_config.route", "must end the route"),
        (
            {"component": "api", "route": "/", "base": "/"},
            "triggers[0].trigger_config.base",
            "unknown field 'base'",
        ),
        ({"route": "/"}, "triggers[0].trigger_config", "t has neither"),
        (
            {"route": "/", "component": "api", "static_response": {}},
            "triggers[0].trigger_config",
            "t has both",
        ),
        (
            {"route": "/", "component": "ghost"},
            "triggers[0].trigger_config.component",
            "no component 'ghost'",
        ),
        ({"route": "/", "component": 3}, "triggers[0].trigger_config.component", "expected a string"),
        (
            {"route": "/", "static_response": {"status_code": 99}},
            "triggers[0].trigger_config.static_response.status_code",
            "100-999",
        ),
        (
            {"route": "/", "static_response": {"headers": {"a": 1}}},
            "triggers[0].trigger_config.static_response.headers.a",
            "expected a string",
        ),
        (
            {"route": "/", "component": "api", "executor": {"type": "cgi"}},
            "triggers[0].trigger_config.executor.type",
            "unknown executor",
        ),
        (
            {"route": "/", "component": "api", "executor": "wagi"},
            "triggers[0].trigger_config.executor",
            "expected an object",
        ),
        (
            {"route": "/", "component": "api", "executor": {"type": "http", "argv": "x"}},
            "triggers[0].trigger_config.executor.argv",
            "unknown field",
        ),
        (
            {"route": "/", "component": "api", "executor": {"type": "wagi", "entrypoint": "main"}},
            "triggers[0].trigger_config.executor.entrypoint",
            "Wagi component 'api' cannot use deprecated 'entrypoint' field",
        ),
        (
            {"route": "/", "component": "api", "executor": {"type": "wagi", "argv": 1}},
            "triggers[0].trigger_config.executor.argv",
            "expected a string",
        ),
    ],
)
def test_http_trigger_config_errors(config: dict[str, Any], field: str, message: str) -> None:
    e = load_error(with_trigger_config(config))
    assert e.field == field
    assert message in e.message


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        ({"trigger_type": "http", "trigger_config": {}}, "triggers[0].id"),
        ({"id": "t", "trigger_config": {}}, "triggers[0].trigger_type"),
        ({"id": "t", "trigger_type": "http"}, "triggers[0].trigger_config"),
        ({"id": "t", "trigger_type": "http", "trigger_config": []}, "triggers[0].trigger_config"),
    ],
)
def test_trigger_shape_errors(trigger: dict[str, Any], field: str) -> None:
    e = load_error(example(triggers=[trigger]))
    assert e.field == field


def test_error_text_names_the_field() -> None:
    e = load_error(with_trigger_config({"component": "api", "route": "/:"}))
    assert str(e).startswith("field 'triggers[0].trigger_config.route': invalid route '/:'")
    assert str(e.with_file("shop.json")).startswith("shop.json: field 'triggers[0].trigger_config.route'")


def test_redis_triggers_parsed_beside_http_ones() -> None:
    data = example()
    data["triggers"].append({"id": "r", "trigger_type": "redis",
                             "trigger_config": {"component": "api", "channel": "{{ chan }}"}})
    data["metadata"]["triggers"] = {"redis": {"address": "redis://localhost:6379"}}
    app = parse_locked_app(data)
    assert [t.id for t in app.triggers] == ["api-http-trigger", "static-http-trigger"]
    assert [(t.id, t.config.component, t.config.channel, t.config.address) for t in app.redis_triggers] == [
        ("r", "api", "{{ chan }}", None)]
    assert app.redis_address == "redis://localhost:6379"
    only_redis = parse_locked_app(example(triggers=[data["triggers"][-1]]))
    assert only_redis.triggers == ()
    assert not any("serves nothing" in w for w in only_redis.warnings)
    assert only_redis.redis_address == ""  # no metadata: Spin's default, an empty address


@pytest.mark.parametrize("trigger_type", ["cron", "mqtt", "sqs", "command"])
def test_other_trigger_types_are_load_errors(trigger_type: str) -> None:
    data = example()
    data["triggers"].append({"id": "x", "trigger_type": trigger_type, "trigger_config": {"component": "api"}})
    e = load_error(data)
    assert e.field == "triggers[2].trigger_type"
    assert f"'x' has type '{trigger_type}', which tauon cannot serve" in e.message
    assert f"trigger-{trigger_type} plugin" in (e.hint or "")


@pytest.mark.parametrize(
    ("config", "field", "text"),
    [
        ({"component": "api", "channel": "c", "route": "/"}, "triggers[0].trigger_config.route",
         "unknown field"),
        ({"channel": "c"}, "triggers[0].trigger_config.component", "missing field 'component'"),
        ({"component": "api"}, "triggers[0].trigger_config.channel", "missing field 'channel'"),
        ({"component": "nope", "channel": "c"}, "triggers[0].trigger_config.component",
         "no component 'nope'"),
        ({"component": "api", "channel": "{{ c"}, "triggers[0].trigger_config.channel", "unmatched"),
        ({"component": "api", "channel": "c", "address": 5}, "triggers[0].trigger_config.address", "string"),
    ],
)
def test_redis_trigger_config_errors(config: dict[str, Any], field: str, text: str) -> None:
    e = load_error(with_trigger_config(config, "redis"))
    assert e.field == field
    assert text in e.message


@pytest.mark.parametrize(
    ("metadata", "address", "field"),
    [
        ({"triggers": {"redis": {"address": "redis://a:1"}}}, "redis://a:1", None),
        ({"trigger": {"type": "redis", "address": "redis://b:2"}}, "redis://b:2", None),
        # 'triggers' wins over the legacy form
        ({"triggers": {"http": {}}, "trigger": {"type": "redis", "address": "x"}}, "", None),
        ({"triggers": {"redis": {}}}, None, "metadata.triggers.redis.address"),
        ({"triggers": {"redis": {"address": "a", "port": 1}}}, None, "metadata.triggers.redis.port"),
        ({"triggers": {"redis": "redis://a"}}, None, "metadata.triggers.redis"),
    ],
)
def test_redis_metadata_address(metadata: dict[str, Any], address: str | None, field: str | None) -> None:
    data = with_trigger_config({"component": "api", "channel": "c"}, "redis")
    data["metadata"] = metadata
    if field is None:
        assert parse_locked_app(data).redis_address == address
    else:
        assert load_error(data).field == field


@pytest.mark.parametrize(
    ("metadata", "warning", "field"),
    [
        (
            {"triggers": {"http": {"base": "/"}}},
            "deprecated trigger 'base' set to the default value '/'",
            None,
        ),
        (
            {"trigger": {"type": "http", "base": "/"}},
            "deprecated trigger 'base' set to the default value '/'",
            None,
        ),
        ({"triggers": {"http": {}}}, None, None),
        ({"triggers": {"redis": {"base": "/x"}}}, None, None),
        ({"triggers": {}, "trigger": {"type": "http", "base": "/x"}}, None, None),  # 'triggers' wins
        ({"triggers": {"http": {"base": "/api"}}}, None, "metadata.triggers.http.base"),
        ({"trigger": {"type": "http", "base": "/api"}}, None, "metadata.trigger.base"),
        ({"triggers": {"http": {"bass": "/"}}}, None, "metadata.triggers.http.bass"),
        ({"triggers": {"http": None}}, None, "metadata.triggers.http"),
    ],
)
def test_http_base_metadata(metadata: dict[str, Any], warning: str | None, field: str | None) -> None:
    data = example(metadata=metadata)
    if field is not None:
        e = load_error(data)
        assert e.field == field
        return
    warnings = parse_locked_app(data).warnings
    if warning is None:
        assert not any("base" in w for w in warnings)
    else:
        assert any(warning in w for w in warnings)


def test_route_warnings_duplicates_and_reserved() -> None:
    data = example()
    data["triggers"] = [
        {"id": "a", "trigger_type": "http", "trigger_config": {"component": "api", "route": "/x"}},
        {"id": "b", "trigger_type": "http", "trigger_config": {"component": "static", "route": "/x"}},
        {
            "id": "c",
            "trigger_type": "http",
            "trigger_config": {"component": "api", "route": "/.well-known/spin/x"},
        },
        {
            "id": "d",
            "trigger_type": "http",
            "trigger_config": {"component": "api", "route": {"private": True}},
        },
    ]
    app = parse_locked_app(data)
    assert "  api: /x (duplicate of static)" in app.warnings
    assert any("/.well-known/spin/" in w for w in app.warnings)
    assert [r for r, _ in app.route_entries()] == ["/x", "/x", "/.well-known/spin/x"]


# --- templates (spin-spec §5.2) ---


@pytest.mark.parametrize(
    ("template", "parts"),
    [
        ("", ()),
        ("a", ((False, "a"),)),
        ("a-{{ expr }}-b", ((False, "a-"), (True, "expr"), (False, "-b"))),
        ("{{ e1 }}{{e2}}", ((True, "e1"), (True, "e2"))),
        ("}} {", ((False, "}} {"),)),
        ("{{ a {{ b }}", ((True, "a {{ b"),)),
    ],
)
def test_parse_template(template: str, parts: tuple[tuple[bool, str], ...]) -> None:
    assert parse_template(template) == parts


def test_render_template() -> None:
    values = {"greeting": "Hello", "name": "W"}
    assert render_template("{{ greeting }}, {{name}}!", values.__getitem__) == "Hello, W!"
    assert render_template("plain", values.__getitem__) == "plain"
    with pytest.raises(TemplateError, match="unmatched"):
        render_template("{{ matched }} {{ unmatched", values.__getitem__)
    with pytest.raises(KeyError):
        render_template("{{ missing }}", values.__getitem__)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("ok", None),
        ("a1_b2", None),
        ("", "must not be empty"),
        ("1a", "must start with a lowercase ASCII letter"),
        ("_a", "must start with a lowercase ASCII letter"),
        ("a_", "must end with a lowercase ASCII letter or digit"),
        ("a__b", "consecutive underscores"),
        ("a-b", "invalid character '-'"),
        ("Ab", "invalid character 'A'"),
    ],
)
def test_variable_names(name: str, problem: str | None) -> None:
    result = variable_name_error(name)
    assert (result is None) if problem is None else (result is not None and problem in result)


def test_a_deeply_nested_locked_app_is_a_load_error_not_a_recursion_error() -> None:
    from tauon.app.lockedapp import parse_locked_app_json

    with pytest.raises(LoadError, match="nested more than 64 levels deep"):
        parse_locked_app_json(b'{"spin_lock_version": 0, "x": ' + b"[" * 200_000)
