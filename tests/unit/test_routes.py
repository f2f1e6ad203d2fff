"""Route normalization, matching and precedence (spin-spec §3.3; Spin 4.x = routefinder 0.5.4)."""

from __future__ import annotations

import re

import pytest

from tauon.app.routes import (
    MEMO_PATHS,
    RESERVED_ROUTE_MESSAGE,
    RouteMatch,
    Router,
    describe_routes,
    normalize_route,
    route_warnings,
    validate_route,
)
from tauon.errors import LoadError


def router(*routes: str) -> Router[str]:
    """Each route's target is the route itself, so assertions read naturally."""
    return Router.build([(r, r) for r in routes])


def target(r: Router[str], path: str) -> str | None:
    m = r.match(path)
    return None if m is None else m.target


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("/", ""),
        ("", ""),
        ("/foo", "/foo"),
        ("foo", "/foo"),
        ("/foo/", "/foo"),
        ("/foo//", "/foo/"),  # only ONE trailing slash is stripped
        ("/...", "/..."),
        ("...", "/..."),
        ("/foo/...", "/foo/..."),
        ("/foo/.../", "/foo/..."),
        ("/foo/*", "/foo/*"),
    ],
)
def test_normalize_route(raw: str, normalized: str) -> None:
    assert normalize_route(raw) == normalized


# (routes, request path, expected winning route or None)
MATCH_TABLE: list[tuple[tuple[str, ...], str, str | None]] = [
    # exact routes
    (("/foo", "/foo/bar"), "/foo", "/foo"),
    (("/foo", "/foo/bar"), "/foo/bar", "/foo/bar"),
    (("/foo",), "/foo/", "/foo"),
    (("/foo/",), "/foo", "/foo/"),
    (("/foo",), "/fo", None),
    (("/foo",), "/foobar", None),
    (("/foo",), "/foo/bar", None),
    (("/foo",), "//foo//", "/foo"),  # leading and trailing slashes are trimmed
    (("/",), "/", "/"),
    (("/",), "", "/"),
    (("/",), "/x", None),
    # the root wildcard catches everything, including '/'
    (("/...",), "/foo/bar", "/..."),
    (("/...",), "/abc/", "/..."),
    (("/...",), "/", "/..."),
    (("/...",), "/this/should/be/captured?abc=def", "/..."),
    # a prefix wildcard matches its own prefix (empty remainder) but not a longer literal
    (("/test/...",), "/test", "/test/..."),
    (("/test/...",), "/test/", "/test/..."),
    (("/test/...",), "/test/a/b", "/test/..."),
    (("/test/...",), "/testing", None),
    (("/test/*",), "/test/x", "/test/*"),
    # exact beats wildcard, longer literal prefix wins, regardless of order
    (("/one", "/..."), "/one", "/one"),
    (("/...", "/one"), "/one", "/one"),
    (("/one/...", "/one/two/...", "/one/two/three/..."), "/one/two/three/four", "/one/two/three/..."),
    (("/one/two/three/...", "/one/two/...", "/one/..."), "/one/two/three/four", "/one/two/three/..."),
    (("/one/two/three/...", "/one/two/...", "/one/..."), "/one/two/x", "/one/two/..."),
    (("/a", "/a/..."), "/a", "/a"),
    (("/a/...", "/a"), "/a", "/a"),
    # exact > :param > wildcard at each segment, with fallback when the better branch fails later
    (("/...", "/hello", "/:greeting"), "/hello", "/hello"),
    (("/...", "/hello", "/:greeting"), "/hey", "/:greeting"),
    (("/...", "/hello", "/:greeting"), "/hey/there", "/..."),
    (("/hey/:world", "/hey/earth"), "/hey/earth", "/hey/earth"),
    (("/hey/:world", "/hey/earth"), "/hey/mars", "/hey/:world"),
    (("/:g/:w/...", "/hey/:world", "/..."), "/hey/earth/wildcard/stuff", "/:g/:w/..."),
    (("/a/:x/c", "/:y/b/d"), "/a/b/d", "/:y/b/d"),
    (("/:a", "/:a/:b", "/:a/:b/:c", "/:p1/specific/:p2"), "/hi", "/:a"),
    (("/:a", "/:a/:b", "/:a/:b/:c", "/:p1/specific/:p2"), "/hi/there/hey", "/:a/:b/:c"),
    (("/:a", "/:a/:b", "/:a/:b/:c", "/:p1/specific/:p2"), "/hi/specific/x", "/:p1/specific/:p2"),
    (("/:a", "/:a/:b"), "/", None),  # a param never matches an empty segment at the end
    (("/:a", "/:a/:b"), "/a/b/c", None),
    # '.' separates segments
    (("/:a.:b", "/:a/:b.:c", "/:a/:b", "/:a/:b.txt"), "/hello.world", "/:a.:b"),
    (("/:a.:b", "/:a/:b.:c", "/:a/:b", "/:a/:b.txt"), "/hi/there.world", "/:a/:b.:c"),
    (("/:a.:b", "/:a/:b.:c", "/:a/:b", "/:a/:b.txt"), "/hi/yep", "/:a/:b"),
    (("/:a.:b", "/:a/:b.:c", "/:a/:b", "/:a/:b.txt"), "/hi/planet.txt", "/:a/:b.txt"),
    (("/:a.:b",), "/a", None),
    (("/index.html",), "/index.html", "/index.html"),
    (("/index.html",), "/index/html", None),
    (("/file.:ext",), "/file.txt", "/file.:ext"),
    (("/file.:ext",), "/file/txt", None),
    # routefinder 0.5.4: a param at the end or before '/' swallows dots (the spec's trie quirk is
    # unreleased), so this common route works as in Spin 4.x
    (("/users/:id",), "/users/john.doe", "/users/:id"),
    # routefinder 0.5.4 does not collapse repeated slashes inside the path
    (("/a/b",), "//a///b", None),
    (("/a/b", "/a/..."), "/a//b", "/a/..."),
    # the raw, percent-encoded path is matched as is
    (("/caf%C3%A9",), "/caf%C3%A9", "/caf%C3%A9"),
    (("/a b",), "/a%20b", None),
    (("/a%20b",), "/a%20b", "/a%20b"),
    # no routes, no match
    ((), "/", None),
]


@pytest.mark.parametrize(("routes", "path", "expected"), MATCH_TABLE)
def test_match_table(routes: tuple[str, ...], path: str, expected: str | None) -> None:
    assert target(router(*routes), path) == expected


@pytest.mark.parametrize(
    ("route", "path", "path_info"),
    [
        ("/test/...", "/test", ""),
        ("/test/...", "/test/", "/"),
        ("/test/...", "/test/hello", "/hello"),
        ("/test/...", "/test/hello/", "/hello/"),
        ("/test/...", "/test/a/b/c", "/a/b/c"),
        ("/...", "/1/2/3", "/1/2/3"),
        ("/...", "/", "/"),
        ("/1/...", "/1/2/3", "/2/3"),
        ("/test/*", "/test/x", "/x"),
        ("/a/...", "/a//b", "//b"),
        ("/exact", "/exact", ""),
        ("/exact", "/exact/", ""),
        ("/:p", "/v", ""),
    ],
)
def test_path_info(route: str, path: str, path_info: str) -> None:
    m = router(route).match(path)
    assert m is not None
    assert m.path_info == path_info


@pytest.mark.parametrize(
    ("raw", "normalized", "component_route"),
    [
        ("/", "", "/"),
        ("/...", "/...", ""),
        ("/foo/...", "/foo/...", "/foo"),
        ("/foo/:userid/...", "/foo/:userid/...", "/foo/:userid"),
        ("foo/...", "/foo/...", "foo"),
        ("/foo/", "/foo", "/foo/"),
        ("/foo/*", "/foo/*", "/foo/*"),  # only '/...' is stripped from the raw route
        ("/foo/.../", "/foo/...", "/foo/.../"),
    ],
)
def test_route_values(raw: str, normalized: str, component_route: str) -> None:
    r = Router.build([(raw, "c")])
    path = ("/foo/1/2" if "..." in raw or "*" in raw else "/foo") if "foo" in raw else "/"
    m = r.match(path)
    assert m is not None
    assert (m.raw_route, m.normalized_route, m.component_route) == (raw, normalized, component_route)


@pytest.mark.parametrize(
    ("route", "path", "params"),
    [
        ("/1/:two/3", "/1/2/3", (("two", "2"),)),
        ("/1/:two/...", "/1/2/3", (("two", "2"),)),
        ("/:a/:b/:c", "/aaa/bbb/ccc", (("a", "aaa"), ("b", "bbb"), ("c", "ccc"))),
        ("/:a.:b", "/a.b.c.d", (("a", "a"), ("b", "b.c.d"))),
        ("/:a.:b.:c", "/a.b.c.d", (("a", "a"), ("b", "b"), ("c", "c.d"))),
        ("/:param", "/a.b.c.d", (("param", "a.b.c.d"),)),
        ("/a.:b", "/a.hello", (("b", "hello"),)),
        ("/users/:path_segment", "/users/x%2Fy", (("path_segment", "x%2Fy"),)),
        ("/static/...", "/static/a", ()),
    ],
)
def test_params(route: str, path: str, params: tuple[tuple[str, str], ...]) -> None:
    m = router(route).match(path)
    assert m is not None
    assert m.params == params


def test_duplicates_last_wins_and_are_reported_in_order() -> None:
    r = Router.build(
        [
            ("/", "first /"),
            ("/", "second /"),
            ("/foo", "first /foo"),
            ("/foo", "second /foo"),
            ("/...", "first /..."),
            ("/...", "second /..."),
            ("/whee/...", "first /whee"),
            ("/whee/...", "second /whee"),
        ]
    )
    assert target(r, "/foo") == "second /foo"
    assert target(r, "/") == "second /"
    assert target(r, "/x") == "second /..."
    assert [(d.replaced, d.effective, d.display()) for d in r.duplicates] == [
        ("first /", "second /", "/"),
        ("first /foo", "second /foo", "/foo"),
        ("first /...", "second /...", "/..."),
        ("first /whee", "second /whee", "/whee/..."),
    ]
    assert len(r.routes) == 4


def test_sensible_routes_have_no_duplicates() -> None:
    r = router("/", "/foo", "/bar", "/whee/...")
    assert r.duplicates == ()
    assert [e.raw_route for e in r.routes] == ["/", "/foo", "/bar", "/whee/..."]


def test_same_normalized_route_is_not_a_duplicate_first_added_wins() -> None:
    # Spin dedups on the raw string only; both are routed and ties keep insertion order.
    r = Router.build([("/foo", "a"), ("foo/", "b")])
    assert r.duplicates == ()
    assert target(r, "/foo") == "a"


def test_duplicate_keeps_first_position_for_ties() -> None:
    # '/:x' and '/:y' tie; the replaced '/:x' keeps its (first) place with the new target.
    r = Router.build([("/:x", "a"), ("/:y", "b"), ("/:x", "c")])
    assert target(r, "/v") == "c"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("/:", "params must be named"),
        ("/a/:/b", "params must be named"),
        ("/*name", "replace `*name` with `*`"),
        ("/**", "replace `**` with `*`"),
        ("/a/*/b", "must end the route"),
        ("/.../x", None),  # '...' mid-route is literal text, which is fine
    ],
)
def test_invalid_routes(raw: str, reason: str | None) -> None:
    if reason is None:
        validate_route(raw)
        Router.build([(raw, "c")])
        return
    with pytest.raises(ValueError, match=re.escape(reason)):
        validate_route(raw)
    with pytest.raises(LoadError, match=re.escape(reason)) as info:
        Router.build([(raw, "c")])
    assert raw in str(info.value)


def test_reserved_routes_are_flagged() -> None:
    assert router("/.well-known/spin/...").reserved_routes() == ("/.well-known/spin/...",)
    assert router("/.well-known/spin/fie", "/x").reserved_routes() == ("/.well-known/spin/fie",)
    for fine in ("/.well-known/spindle/...", "/.well-known/spi/...", "/.well-known/spin"):
        assert router(fine).reserved_routes() == ()


def test_route_warnings_in_spin_words() -> None:
    r = Router.build([("/foo", "one"), ("/foo", "two"), ("/.well-known/spin/x", "three")])
    assert route_warnings(r, label=str) == [
        "The following component routes are duplicates and will never be used:",
        "  one: /foo (duplicate of two)",
        RESERVED_ROUTE_MESSAGE,
    ]
    assert route_warnings(router("/a"), label=str) == []


def test_describe_routes_in_precedence_order() -> None:
    r = Router.build([("/...", "all"), ("/", "root"), ("/whee/...", "whee"), ("/api/:id", "api")])
    lines = describe_routes(
        r,
        "http://127.0.0.1:3000",
        label=lambda t: t,
        description=lambda t: "the API" if t == "api" else None,
    )
    assert lines == [
        "root: http://127.0.0.1:3000",
        "api: http://127.0.0.1:3000/api/:id",
        "  the API",
        "whee: http://127.0.0.1:3000/whee (wildcard)",
        "all: http://127.0.0.1:3000 (wildcard)",
    ]


def test_synthetic_match_for_service_chaining() -> None:
    m = RouteMatch.synthetic("backend", "/api/x/")
    assert (m.raw_route, m.normalized_route, m.component_route, m.path_info, m.params) == (
        "/...",
        "/...",
        "",
        "/api/x/",
        (),
    )


def test_many_routes_stay_correct() -> None:
    # More routes than one routefinder B-tree node holds: precedence must not depend on count.
    routes = [f"/r{i}/..." for i in range(30)] + ["/r7/exact", "/..."]
    r = router(*routes)
    assert target(r, "/r7/exact") == "/r7/exact"
    assert target(r, "/r7/other") == "/r7/..."
    assert target(r, "/r29") == "/r29/..."
    assert target(r, "/zzz") == "/..."


def test_matches_are_remembered_per_path_and_the_memory_is_bounded() -> None:
    router = Router.build([("/api/:id", "api"), ("/...", "rest")])
    first = router.match("/api/7")
    assert first is not None and first.target == "api" and first.params == (("id", "7"),)
    assert router.match("/api/7") is first  # the same immutable match, not matched again
    assert router.match("/nothing/here") is router.match("/nothing/here")
    for i in range(3 * MEMO_PATHS):
        match = router.match(f"/api/{i}")
        assert match is not None and match.params == (("id", str(i)),)
    assert len(router._memo) <= MEMO_PATHS
