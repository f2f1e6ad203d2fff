"""Lepton apps files: same per-entry parser and error quality as app files; earlier entries win."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tauon.control.lepton import parse_apps_file, read_apps_file
from tauon.control.spec import AppSpec
from tauon.errors import SpecError


def _parse(value: Any) -> dict[str, AppSpec | SpecError]:
    return parse_apps_file("lepton.json", json.dumps(value).encode()).apps


def test_ids_are_names_or_positions() -> None:
    apps = _parse({"apps": [
        {"name": "web", "reference": "r/web:1", "address": "127.0.0.1:3000", "state_dir": "web"},
        {"reference": "./images/hello", "address": "127.0.0.1:3001", "variables": {"token": "x"}},
    ]})
    assert list(apps) == ["web", "lepton.json#1"]
    web, second = apps["web"], apps["lepton.json#1"]
    assert isinstance(web, AppSpec) and isinstance(second, AppSpec)
    assert (web.id, web.reference, str(web.address), web.state_dir) == (
        "web", "r/web:1", "127.0.0.1:3000", "web")
    assert second.id == "lepton.json#1" and second.variables == {"token": "x"}
    # The name is not part of the spec's content: renaming nothing else is not a change.
    renamed = _parse({"apps": [{"name": "site", "reference": "r/web:1", "address": "127.0.0.1:3000",
                                "state_dir": "web"}]})["site"]
    assert isinstance(renamed, AppSpec) and renamed.content_hash == web.content_hash


def test_entry_errors_say_where_and_what() -> None:
    apps = _parse({"apps": [
        {"name": "ok", "reference": "r/a:1", "address": "127.0.0.1:3000"},
        {"name": "api", "reference": "r/b:1", "address": "127.0.0.1:99999"},
        {"refrence": "r/c:1", "address": "127.0.0.1:3002"},
        "not an object",
        {"name": "ok", "reference": "r/d:1", "address": "127.0.0.1:3004"},
        {"name": "bad name!", "reference": "r/e:1", "address": "127.0.0.1:3005"},
    ]})
    assert isinstance(apps["ok"], AppSpec)
    assert str(apps["api"]).startswith("api (lepton.json apps[1]): field 'address': port '99999' is not "
                                       "a number from 1 to 65535: '127.0.0.1:99999' (use host:port")
    assert str(apps["lepton.json#2"]) == ("lepton.json#2: field 'reference': is required "
                                          "(found 'refrence': did you mean 'reference'?)")
    assert str(apps["lepton.json#3"]).startswith(
        "lepton.json: field 'apps[3]': must be a JSON object, found str")
    assert str(apps["lepton.json#4"]) == ("lepton.json apps[4]: field 'name': 'ok' is already the name of "
                                          "apps[0] (every app needs its own name)")
    assert "field 'name': must be a short name" in str(apps["lepton.json#5"])


def test_duplicate_addresses_first_entry_keeps_it() -> None:
    apps = _parse({"apps": [
        {"name": "zeta", "reference": "r/a:1", "address": "127.0.0.1:3000"},
        {"name": "alpha", "reference": "r/b:1", "address": "0.0.0.0:3000"},
        {"name": "other", "reference": "r/c:1", "address": "127.0.0.1:3001"},
    ]})
    assert isinstance(apps["zeta"], AppSpec) and isinstance(apps["other"], AppSpec)
    assert str(apps["alpha"]) == ("alpha (lepton.json apps[1]): field 'address': address 0.0.0.0:3000 is "
                                  "already claimed by zeta (zeta comes first in lepton.json and keeps it; "
                                  "change one address)")


def test_unknown_fields_warn() -> None:
    parsed = parse_apps_file("lepton.json", json.dumps({"apps": [
        {"name": "a", "reference": "r/a:1", "address": "127.0.0.1:3000", "colour": "blue"}],
        "comment": "x"}).encode())
    assert isinstance(parsed.apps["a"], AppSpec)
    assert parsed.warnings == ("lepton.json: ignoring unknown field(s) 'comment' (known: 'apps')",
                               "a (lepton.json apps[0]): ignoring unknown field(s) 'colour' (known fields: "
                               "reference, address, state_dir, insecure, ca_bundle, variables, limits, tls, "
                               "runtime_config)")


@pytest.mark.parametrize(("data", "message"), [
    (b'{"apps": [', "lepton.json: is not valid JSON: Expecting value at line 1 column 11"),
    (b"[]", "lepton.json: must contain a JSON object, found list"),
    (b'{"aps": []}', "lepton.json: field 'apps': is required (found 'aps': did you mean 'apps'?)"),
    (b'{"apps": {}}', "lepton.json: field 'apps': must be a list of app objects, found dict"),
    (b"\xff\xfe", "lepton.json: is not UTF-8 text"),
])
def test_whole_file_errors(data: bytes, message: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_apps_file("lepton.json", data)
    assert str(info.value).startswith(message)


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="does not exist"):
        read_apps_file(tmp_path / "missing.json")
    with pytest.raises(SpecError, match="is a directory"):
        read_apps_file(tmp_path)
    (tmp_path / "l.json").write_text('{"apps": []}')
    assert read_apps_file(tmp_path / "l.json").apps == {}
