"""Operator JSON files are decoded with bounded nesting, and odd file names are reported, not fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tauon.boundedjson import nesting_depth
from tauon.control.dirscan import printable_name, scan_directory
from tauon.control.jsonfile import MAX_DEPTH, load_json
from tauon.errors import SpecError


@pytest.mark.parametrize(("data", "depth"), [
    (b"{}", 1), (b'{"a": [1, {"b": []}]}', 4), (b'"[[[[["', 0), (b'{"k": "\\"[[[["}', 1),
    (b"[" * (MAX_DEPTH + 1), MAX_DEPTH + 1), (b"[" * 100_000, MAX_DEPTH + 1),
    (b'[1] ' * 1000, 1),
])
def test_nesting_depth_counts_brackets_outside_strings(data: bytes, depth: int) -> None:
    assert nesting_depth(data, MAX_DEPTH) == depth


def test_deep_json_is_rejected_before_the_parser_recurses() -> None:
    with pytest.raises(SpecError, match=r"app\.json: is nested more than 32 levels deep"):
        load_json("app.json", b"[" * 1_000_000)
    nested: list[object] = []
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    assert load_json("app.json", b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) == nested


def test_other_bad_json_names_the_file_and_the_place() -> None:
    with pytest.raises(SpecError, match=r"a\.json: is not valid JSON: .* column 2 \(fix the JSON syntax"):
        load_json("a.json", b"{x")
    with pytest.raises(SpecError, match="is not UTF-8 text"):
        load_json("a.json", b"\xff{}")


def test_a_name_that_is_not_utf8_is_an_error_for_that_name(tmp_path: Path) -> None:
    with open(os.fsencode(tmp_path) + b"/\xffapp.json", "w") as fh:
        fh.write("{}")
    scan = scan_directory(tmp_path)
    assert list(scan.apps) == ["\\xffapp.json"]
    error = scan.apps["\\xffapp.json"]
    assert isinstance(error, SpecError)
    assert "not valid UTF-8" in str(error) and "rename it" in str(error)
    assert printable_name("plain.json") == "plain.json"
