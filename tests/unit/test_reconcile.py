from __future__ import annotations

import json

from tauon.control.reconcile import reconcile
from tauon.control.spec import AppSpec, parse_spec
from tauon.errors import SpecError


def app(name: str, address: str = "127.0.0.1:8000", reference: str = "r:1") -> AppSpec:
    return parse_spec(name, json.dumps({"reference": reference, "address": address}).encode())


def test_start_update_stop() -> None:
    a, b, c = app("a.json", "127.0.0.1:1"), app("b.json", "127.0.0.1:2"), app("c.json", "127.0.0.1:3")
    b2 = app("b.json", "127.0.0.1:2", reference="r:2")
    plan = reconcile({"a.json": a, "b.json": b2}, {"b.json": b, "c.json": c})
    assert [s.id for s in plan.start] == ["a.json"]
    assert [s.id for s in plan.update] == ["b.json"]
    assert plan.stop == ("c.json",)
    assert not plan.problems


def test_identical_content_is_a_noop() -> None:
    a = app("a.json")
    plan = reconcile({"a.json": app("a.json")}, {"a.json": a})
    assert plan.empty


def test_bad_file_keeps_last_good_version() -> None:
    a = app("a.json")
    err = SpecError("is not valid JSON", file="a.json")
    plan = reconcile({"a.json": err}, {"a.json": a})
    assert plan.empty
    assert plan.kept == ("a.json",)
    assert plan.problems == {"a.json": err}


def test_bad_new_file_is_only_a_problem() -> None:
    plan = reconcile({"a.json": SpecError("x", file="a.json")}, {})
    assert plan.empty and "a.json" in plan.problems and plan.kept == ()


def test_duplicate_address_first_name_wins_and_names_both() -> None:
    a, b = app("a.json", "127.0.0.1:9000"), app("b.json", "127.0.0.1:9000")
    plan = reconcile({"b.json": b, "a.json": a}, {})
    assert [s.id for s in plan.start] == ["a.json"]
    problem = str(plan.problems["b.json"])
    assert "a.json" in problem and "b.json" in problem and "127.0.0.1:9000" in problem


def test_loser_starts_when_winner_goes_away() -> None:
    a, b = app("a.json", "127.0.0.1:9000"), app("b.json", "127.0.0.1:9000")
    plan = reconcile({"b.json": b}, {"a.json": a})
    assert plan.stop == ("a.json",)
    assert [s.id for s in plan.start] == ["b.json"]


def test_wildcard_and_specific_host_on_one_port_clash() -> None:
    a, b = app("a.json", "0.0.0.0:9000"), app("b.json", "127.0.0.1:9000")
    plan = reconcile({"a.json": a, "b.json": b}, {})
    assert "b.json" in plan.problems
    c = app("c.json", "127.0.0.2:9000")
    plan = reconcile({"b.json": b, "c.json": c}, {})
    assert not plan.problems


def test_kept_app_keeps_its_address() -> None:
    a = app("a.json", "127.0.0.1:9000")
    b = app("b.json", "127.0.0.1:9000")
    plan = reconcile({"a.json": SpecError("bad", file="a.json"), "b.json": b}, {"a.json": a})
    assert plan.start == ()
    assert "b.json" in plan.problems


def test_stopped_app_that_moves_to_a_problem_is_stopped() -> None:
    a = app("a.json", "127.0.0.1:9000")
    b = app("b.json", "127.0.0.1:9000")
    # b was running; a appears and sorts first: deterministic winner is a.
    plan = reconcile({"a.json": a, "b.json": b}, {"b.json": b})
    assert [s.id for s in plan.start] == ["a.json"]
    assert plan.stop == ("b.json",)


def test_apps_without_an_address_never_clash() -> None:
    """Redis-only apps listen nowhere: several may run beside an app on any address."""
    def listenless(name: str) -> AppSpec:
        return parse_spec(name, b'{"reference": "r:1"}')

    desired: dict[str, AppSpec | SpecError] = {
        "a.json": listenless("a.json"), "b.json": listenless("b.json"), "c.json": app("c.json")}
    plan = reconcile(desired, {})
    assert [s.id for s in plan.start] == ["a.json", "b.json", "c.json"]
    assert not plan.problems
