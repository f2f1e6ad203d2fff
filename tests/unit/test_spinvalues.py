"""Spin's per-request values and the /.well-known/spin/ answers (spin-spec §3.2, §3.4)."""

from __future__ import annotations

import json

import pytest

from tauon.app.routes import RouteMatch, Router
from tauon.app.spinvalues import (
    SERVICE_CHAINING_CLIENT,
    format_client_addr,
    spin_values,
    well_known_response,
)


def values_for(route: str, path: str, *, query: str = "", host: str | None = "example.com") -> dict[str, str]:
    m = Router.build([(route, "c")]).match(path)
    assert m is not None
    vals = spin_values(m, scheme="http", host=host, path_and_query=path + query, client=("127.0.0.1", 51234))
    headers = {v.header: v.value for v in vals}
    assert len(headers) == len(vals), "each header appears once"
    return headers


def test_full_example_from_the_spec() -> None:
    h = values_for("/base/path/...", "/base/path/end/rest", query="?key=value")
    assert h == {
        "spin-path-info": "/end/rest",
        "spin-full-url": "http://example.com/base/path/end/rest?key=value",
        "spin-matched-route": "/base/path/...",
        "spin-base-path": "/",
        "spin-raw-component-route": "/base/path/...",
        "spin-component-route": "/base/path",
        "spin-client-addr": "127.0.0.1:51234",
    }


def test_order_and_wagi_names() -> None:
    m = Router.build([("/foo/:userid/...", "c")]).match("/foo/42/x")
    assert m is not None
    vals = spin_values(m, scheme="https", host="h", path_and_query="/foo/42/x", client=("::1", 80))
    assert [(v.header, v.wagi) for v in vals] == [
        ("spin-path-info", "PATH_INFO"),
        ("spin-full-url", "X_FULL_URL"),
        ("spin-matched-route", "X_MATCHED_ROUTE"),
        ("spin-base-path", "X_BASE_PATH"),
        ("spin-raw-component-route", "X_RAW_COMPONENT_ROUTE"),
        ("spin-component-route", "X_COMPONENT_ROUTE"),
        ("spin-client-addr", "X_CLIENT_ADDR"),
        ("spin-path-match-userid", "X_PATH_MATCH_USERID"),
    ]
    assert vals[1].value == "https://h/foo/42/x"
    assert vals[6].value == "[::1]:80"
    assert vals[7].value == "42"


@pytest.mark.parametrize(
    ("route", "path", "matched", "raw", "component"),
    [
        ("/", "/", "", "/", "/"),
        ("/...", "/a", "/...", "/...", ""),
        ("/foo/", "/foo", "/foo", "/foo/", "/foo/"),
        ("foo/...", "/foo/x", "/foo/...", "foo/...", "foo"),
    ],
)
def test_route_values(route: str, path: str, matched: str, raw: str, component: str) -> None:
    h = values_for(route, path)
    assert (h["spin-matched-route"], h["spin-raw-component-route"], h["spin-component-route"]) == (
        matched,
        raw,
        component,
    )


def test_host_defaults_to_localhost() -> None:
    assert values_for("/a", "/a", host=None)["spin-full-url"] == "http://localhost/a"


def test_path_match_names() -> None:
    h = values_for("/:path_segment/:Id", "/x/y")
    assert h["spin-path-match-path-segment"] == "x"
    assert h["spin-path-match-id"] == "y"
    m = Router.build([("/:path_segment", "c")]).match("/x")
    assert m is not None
    wagi = {
        v.wagi: v.value
        for v in spin_values(m, scheme="http", host=None, path_and_query="/x", client=("1.2.3.4", 5))
    }
    assert wagi["X_PATH_MATCH_PATH_SEGMENT"] == "x"


def test_repeated_param_name_gives_one_value() -> None:
    h = values_for("/:a/:a", "/x/y")
    assert h["spin-path-match-a"] == "y"


def test_service_chaining_values() -> None:
    vals = spin_values(
        RouteMatch.synthetic("c", "/p/"),
        scheme="http",
        host="backend.spin.internal",
        path_and_query="/p/?q",
        client=SERVICE_CHAINING_CLIENT,
    )
    h = {v.header: v.value for v in vals}
    assert h["spin-client-addr"] == "0.0.0.0:0"
    assert h["spin-path-info"] == "/p/"
    assert h["spin-component-route"] == ""
    assert h["spin-matched-route"] == "/..."


@pytest.mark.parametrize(
    ("client", "text"),
    [(("127.0.0.1", 8777), "127.0.0.1:8777"), (("::1", 1), "[::1]:1"), (("fe80::1", 0), "[fe80::1]:0")],
)
def test_client_addr(client: tuple[str, int], text: str) -> None:
    assert format_client_addr(client) == text


def wk(path: str, **kw: str | None) -> tuple[int, list[tuple[str, str]], bytes] | None:
    args: dict[str, str | None] = {"name": "shop", "version": None, "oci_image_digest": None}
    args.update(kw)
    return well_known_response(
        path, name=args["name"] or "", version=args["version"], oci_image_digest=args["oci_image_digest"]
    )


def test_health() -> None:
    assert wk("/.well-known/spin/health") == (200, [], b"OK")


def test_info_minimal_and_full() -> None:
    status, headers, body = wk("/.well-known/spin/info") or (0, [], b"")
    assert (status, headers) == (200, [("content-type", "application/json")])
    assert body == b'{\n  "name": "shop"\n}'
    res = wk("/.well-known/spin/info", name="caf\u00e9", version="1.2.0", oci_image_digest="sha256:ab")
    assert res is not None
    assert json.loads(res[2]) == {"name": "caf\u00e9", "version": "1.2.0", "oci_image_digest": "sha256:ab"}
    assert "caf\u00e9".encode() in res[2]
    assert list(json.loads(res[2])) == ["name", "version", "oci_image_digest"]


@pytest.mark.parametrize(
    "path",
    [
        "/.well-known/spin/",
        "/.well-known/spin/other",
        "/.well-known/spin/health/",
        "/.well-known/spin/info/x",
    ],
)
def test_unknown_well_known_is_404(path: str) -> None:
    assert wk(path) == (404, [], b"")


@pytest.mark.parametrize(
    "path", ["/", "/.well-known/spin", "/.well-known/spinx/health", "/x/.well-known/spin/health"]
)
def test_other_paths_are_not_well_known(path: str) -> None:
    assert wk(path) is None
