"""Matching dependency names to imports as Spin's composer does (spin-spec §2.5; crates/compose)."""

from __future__ import annotations

import pytest

from tauon.wasm.depnames import matches_import, parse_dependency_name, world_names


@pytest.mark.parametrize(("dependency", "imports"), [
    ("foo:bar/baz@0.1.0", ["foo:bar/baz@0.1.0"]),
    ("foo:bar/baz", ["foo:bar/baz@0.1.0", "foo:bar/baz"]),
    ("foo:bar", ["foo:bar/baz@0.1.0", "foo:bar/baz"]),
    ("foo:bar@0.1.0", ["foo:bar/baz@0.1.0"]),
    ("foo-bar", ["foo-bar"]),
])
def test_matches(dependency: str, imports: list[str]) -> None:
    name = parse_dependency_name(dependency)
    assert all(matches_import(name, imp) for imp in imports)


@pytest.mark.parametrize(("dependency", "imports"), [
    ("foo:bar/baz@0.1.0", ["foo:bar/baz", "foo:bar/baz@0.1.1"]),
    ("foo:bar/baz", ["foo:bar/bub", "foo:bar/bub@0.1.0"]),
    ("foo:bar", ["foo:bub/bib"]),
    ("foo:bar@0.1.0", ["foo:bar/baz"]),
    ("foo:bar/baz", ["foo:bar/baz-bub", "foo-bar"]),
    ("foo-bar", ["foo:bar/baz", "foo-baz"]),
])
def test_does_not_match(dependency: str, imports: list[str]) -> None:
    name = parse_dependency_name(dependency)
    assert not any(matches_import(name, imp) for imp in imports)


@pytest.mark.parametrize("bad", ["Foo", "foo:", "foo:bar/", "foo:bar@", "a b", "foo:Bar/baz"])
def test_bad_dependency_names(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_dependency_name(bad)


def test_world_names() -> None:
    wit = """package root:component;

world root {
  import wasi:io/error@0.2.0;
  import my-func: func(a: string) -> string;
  import plain: interface {
    import nested: func();
  }
  export wasi:http/incoming-handler@0.2.0;
  export run: func();
}
package wasi:io@0.2.0 {
  interface error {
  }
}
"""
    assert world_names(wit) == (["wasi:io/error@0.2.0", "my-func", "plain"],
                                ["wasi:http/incoming-handler@0.2.0", "run"])
