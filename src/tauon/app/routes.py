"""Spin's HTTP route grammar and matching (spin-spec §3.3). Pure: no I/O.

CONTRACT:

    Router.build(entries: Sequence[tuple[str, T]]) -> Router[T]
        entries: (raw route as written in the locked app, target), in trigger order. Only routable
        triggers: the caller leaves out `{"private": true}` routes (reachable by service chaining
        only). Later duplicates of the same raw route win (Spin keeps the last); `router.duplicates`
        lists what was replaced. Raises LoadError for a route routefinder cannot parse.
    router.match(path: str) -> RouteMatch[T] | None
        path: the raw request path (percent-encoded, no query), matched as is.
    router.routes / router.duplicates / router.reserved_routes()
    RouteMatch.synthetic(target, path)            service chaining: route '/...', path info = path
    describe_routes(router, base_url, label=...)  the startup listing, Spin's format
    route_warnings(router, label=...)             duplicates and /.well-known/spin/ routes, as text
    validate_route(raw) / normalize_route(raw)

Fidelity. Spin 4.x routes with routefinder 0.5.4 from crates.io (its Cargo.lock), and this module
reproduces that version, which differs from routefinder's unreleased trie in two ways the spec
mentions:
  * leading and trailing '/' of the request path are ignored, but repeated '/' *inside* the path are
    not collapsed: `//a///b` does not match `/a/b` (it is caught by `/a/...` with path info `///b`);
  * a `:param` that ends the route or precedes '/' captures dots: `/users/:id` matches
    `/users/john.doe`. It stops at '.' only when the route continues with '.' (`/:name.:ext`).
Precedence: routes are ranked once, segment by segment (exact > :param > wildcard; then more dots;
then fewer segments; then first added), and the best-ranked route that matches the whole path wins.
That is what routefinder's sorted BTreeMap does; its ranking is only inconsistent for routes that
begin with '.' (e.g. `/.well-known/...`), where this module follows a single sorted list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tauon.errors import LoadError

T = TypeVar("T")

WELL_KNOWN_PREFIX = "/.well-known/spin/"
RESERVED_ROUTE_MESSAGE = (
    f"Routes under {WELL_KNOWN_PREFIX} are handled by the Spin runtime and will never be reached"
)


@dataclass(frozen=True, slots=True)
class RouteMatch(Generic[T]):
    target: T
    raw_route: str
    """The route exactly as written (spin-raw-component-route)."""
    normalized_route: str
    """Normalized, including '/...'; '' for '/' (spin-matched-route)."""
    component_route: str
    """Raw route minus one trailing '/...' (spin-component-route)."""
    path_info: str
    """Trailing-wildcard remainder, keeping a trailing '/'; '' for exact routes."""
    params: tuple[tuple[str, str], ...] = field(default=())
    """Named captures in route order."""

    @classmethod
    def synthetic(cls, target: T, path: str) -> RouteMatch[T]:
        """The match Spin fabricates for a service-chained request: route '/...', path info = path."""
        return cls(target, "/...", "/...", "", path)


@dataclass(frozen=True, slots=True)
class RouteEntry(Generic[T]):
    """One routable route, as listed at startup."""

    target: T
    raw_route: str
    normalized_route: str
    wildcard: bool
    prefix: str
    """The route without its trailing wildcard ('' for the root)."""

    def display(self) -> str:
        """Spin's banner form: '/foo', '/foo (wildcard)', '' for '/' and ' (wildcard)' for '/...'."""
        return f"{self.prefix} (wildcard)" if self.wildcard else self.prefix


@dataclass(frozen=True, slots=True)
class DuplicateRoute(Generic[T]):
    """A route that appeared again later; `replaced` is unreachable, `effective` serves it."""

    raw_route: str
    normalized_route: str
    replaced: T
    effective: T

    def display(self) -> str:
        return self.normalized_route or "/"


# Segment kinds of a parsed routefinder spec.
_EXACT, _PARAM, _WILDCARD, _SLASH, _DOT = range(5)
_Seg = tuple[int, str]


def normalize_route(raw: str) -> str:
    """Prefix '/', strip ONE trailing '/': '/' -> '', 'foo/' -> '/foo', '/x//' -> '/x/'."""
    route = raw if raw.startswith("/") else "/" + raw
    return route[:-1] if route.endswith("/") else route


def _spec_of(normalized: str) -> tuple[str, bool, str]:
    """(routefinder spec, is trailing wildcard, prefix) as Spin's Router::parse_route derives them."""
    if normalized.endswith("/..."):
        prefix = normalized[: -len("/...")]
        return prefix + "/*", True, prefix
    if normalized.endswith("/*"):
        return normalized, True, normalized[: -len("/*")]
    return normalized, False, normalized


def _parse_spec(source: str) -> tuple[_Seg, ...]:
    """routefinder 0.5.4 RouteSpec::from_str. Raises ValueError with the reason."""
    text = source.strip("/")
    segs: list[_Seg] = []
    cuts = [i for i, c in enumerate(text) if c in "./"]
    cuts.append(len(text))
    start = 0
    for cut in cuts:
        sep = text[start - 1] if start > 0 else None
        section = text[start:cut]
        start = cut + 1
        seg: _Seg | None
        if section == "*":
            seg = (_WILDCARD, "")
        elif section.startswith("*"):
            raise ValueError(f"a wildcard has no name: replace `{section}` with `*`")
        elif section == ":":
            raise ValueError("params must be named (':' alone)")
        elif section.startswith(":"):
            seg = (_PARAM, section[1:])
        elif section == "":
            seg = None
        else:
            seg = (_EXACT, section)
        if sep == ".":
            # A dot after literal text is part of the literal; otherwise it is its own separator.
            if segs and segs[-1][0] == _EXACT:
                segs[-1] = (_EXACT, segs[-1][1] + ".")
            else:
                segs.append((_DOT, ""))
        if seg is not None:
            if sep == "/":
                segs.append((_SLASH, ""))
            segs.append(seg)
    for kind, _ in segs[:-1]:
        # routefinder panics at match time on these; refuse them up front instead.
        if kind == _WILDCARD:
            raise ValueError("a wildcard ('*' or '/...') must end the route")
    return tuple(segs)


def validate_route(raw: str) -> None:
    """Raise ValueError (with the reason) if Spin could not build a router with this route."""
    spec, _, _ = _spec_of(normalize_route(raw))
    _parse_spec(spec)


def _seg_cmp(a: int, b: int) -> int:
    """routefinder's Segment ordering, quirks included (Dot compares 'greater' than any non-separator)."""
    if a == b or {a, b} == {_SLASH, _DOT}:
        return 0
    if a in (_DOT, _EXACT):
        return 1
    if a == _PARAM:
        return -1 if b == _EXACT else 1
    if a == _WILDCARD:
        return -1 if b in (_EXACT, _PARAM) else 1
    return -1  # Slash against Exact/Param/Wildcard


def _outranks(new: tuple[_Seg, ...], old: tuple[_Seg, ...]) -> bool:
    """True if `new` sorts before `old` in routefinder's map (ties keep insertion order)."""
    for x, y in zip(new, old, strict=False):
        c = _seg_cmp(x[0], y[0])
        if c:
            return c > 0
    new_dots = sum(1 for s in new if s[0] == _DOT)
    old_dots = sum(1 for s in old if s[0] == _DOT)
    if new_dots != old_dots:
        return new_dots > old_dots
    return len(new) < len(old)


def _match_segments(segs: tuple[_Seg, ...], p: str) -> list[str] | None:
    """routefinder 0.5.4 RouteSpec::matches on the path with its outer slashes stripped: the
    captures (params and wildcard, in order) or None."""
    end = len(p)
    i = 0
    caps: list[str] = []
    for k, (kind, text) in enumerate(segs):
        nxt = segs[k + 1][0] if k + 1 < len(segs) else None
        if kind == _EXACT:
            if not p.startswith(text, i):
                return None
            i += len(text)
        elif kind == _PARAM:
            if i >= end:
                return None
            if nxt is None or nxt == _SLASH:
                j = p.find("/", i)
                j = end if j < 0 else j
            else:  # followed by a dot: capture up to a '.', but fail at a '/'
                dot, slash = p.find(".", i), p.find("/", i)
                if dot < 0 or 0 <= slash < dot:
                    return None
                j = dot
            caps.append(p[i:j])
            i = j
        elif kind == _WILDCARD:
            caps.append(p[i:])
            i = end
        elif kind == _SLASH:
            if i < end and p[i] == "/" and nxt is not None:
                i += 1
            elif not (i == end and nxt in (None, _WILDCARD)):
                return None
        elif i < end and p[i] == ".":  # _DOT
            i += 1
        else:
            return None
    return caps if p[i:] in ("", "/") else None


@dataclass(frozen=True, slots=True)
class _Compiled(Generic[T]):
    entry: RouteEntry[T]
    segs: tuple[_Seg, ...]
    component_route: str


MEMO_PATHS = 1024
"""Paths whose matches a router keeps."""
_UNSEEN = object()


class Router(Generic[T]):
    """Routes request paths to targets exactly as Spin's HTTP trigger does."""

    __slots__ = ("_compiled", "_memo", "duplicates")

    def __init__(self, compiled: list[_Compiled[T]], duplicates: tuple[DuplicateRoute[T], ...]) -> None:
        self._compiled = compiled
        self.duplicates = duplicates
        self._memo: dict[str, RouteMatch[T] | None] = {}
        """Recent paths' matches (a match is immutable): most traffic repeats a few paths, and
        matching one took ~5 us of a small request."""

    @classmethod
    def build(cls, entries: Sequence[tuple[str, T]]) -> Router[T]:
        # Spin dedups by raw route in an insertion-ordered map: a later duplicate replaces the
        # target but keeps the first one's position (which matters for ties).
        by_raw: dict[str, T] = {}
        duplicates: list[DuplicateRoute[T]] = []
        for raw, target in entries:
            if raw in by_raw:
                duplicates.append(DuplicateRoute(raw, normalize_route(raw), by_raw[raw], target))
            by_raw[raw] = target
        ranked: list[_Compiled[T]] = []
        for raw, target in by_raw.items():
            normalized = normalize_route(raw)
            spec, wildcard, prefix = _spec_of(normalized)
            try:
                segs = _parse_spec(spec)
            except ValueError as e:
                raise LoadError(
                    f"invalid route {raw!r}: {e}",
                    hint="routes look like '/path', '/path/:param' or '/path/...'",
                ) from None
            compiled = _Compiled(
                RouteEntry(target, raw, normalized, wildcard, prefix),
                segs,
                raw.removesuffix("/..."),
            )
            pos = next((i for i, c in enumerate(ranked) if _outranks(segs, c.segs)), len(ranked))
            ranked.insert(pos, compiled)
        return cls(ranked, tuple(duplicates))

    @property
    def routes(self) -> tuple[RouteEntry[T], ...]:
        """Routable routes in precedence order (the order Spin lists them at startup)."""
        return tuple(c.entry for c in self._compiled)

    def match(self, path: str) -> RouteMatch[T] | None:
        memo = self._memo
        found = memo.get(path, _UNSEEN)
        if found is not _UNSEEN:
            return found  # type: ignore[return-value]
        if len(memo) >= MEMO_PATHS:
            memo.clear()  # many distinct paths (ids in them): start again rather than track use
        found = memo[path] = self._match(path)
        return found

    def _match(self, path: str) -> RouteMatch[T] | None:
        stripped = path.strip("/")
        for c in self._compiled:
            if c.segs and c.segs[0][0] == _EXACT and not stripped.startswith(c.segs[0][1]):
                continue  # cheap rejection on the leading literal
            caps = _match_segments(c.segs, stripped)
            if caps is None:
                continue
            params: list[tuple[str, str]] = []
            wildcard: str | None = None
            for (kind, name), value in zip(
                (s for s in c.segs if s[0] in (_PARAM, _WILDCARD)), caps, strict=True
            ):
                if kind == _PARAM:
                    params.append((name, value))
                else:
                    wildcard = value
            return RouteMatch(
                target=c.entry.target,
                raw_route=c.entry.raw_route,
                normalized_route=c.entry.normalized_route,
                component_route=c.component_route,
                path_info=_path_info(wildcard, path),
                params=tuple(params),
            )
        return None

    def reserved_routes(self) -> tuple[str, ...]:
        """Raw routes under /.well-known/spin/: never reached, because Spin answers those paths itself."""
        return tuple(e.raw_route for e in self.routes if e.normalized_route.startswith(WELL_KNOWN_PREFIX))


def _path_info(wildcard: str | None, path: str) -> str:
    # routefinder drops trailing slashes; Spin puts one back (RouteMatchKind::trailing_wildcard).
    if wildcard is None:
        return ""
    slash = path.endswith("/")
    if not wildcard:
        return "/" if slash else ""
    return f"/{wildcard}/" if slash else f"/{wildcard}"


def describe_routes(
    router: Router[T],
    base_url: str,
    *,
    label: Callable[[T], str],
    description: Callable[[T], str | None] | None = None,
) -> list[str]:
    """Spin's startup route listing, one '<label>: <base_url><route>' line per route in precedence
    order, each followed by '  <description>' if there is one. Spin prints them indented by two
    spaces under 'Available Routes:'."""
    lines: list[str] = []
    for entry in router.routes:
        lines.append(f"{label(entry.target)}: {base_url}{entry.display()}")
        text = description(entry.target) if description else None
        if text:
            lines.append(f"  {text}")
    return lines


def route_warnings(router: Router[T], *, label: Callable[[T], str]) -> list[str]:
    """The errors Spin logs after building its router (duplicates, reserved routes), as data."""
    warnings: list[str] = []
    if router.duplicates:
        warnings.append("The following component routes are duplicates and will never be used:")
        warnings.extend(
            f"  {label(d.replaced)}: {d.display()} (duplicate of {label(d.effective)})"
            for d in router.duplicates
        )
    if router.reserved_routes():
        warnings.append(RESERVED_ROUTE_MESSAGE)
    return warnings
