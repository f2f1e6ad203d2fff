"""Pure parts of the Redis trigger: addresses (checks, redaction), subscriptions, export selection."""

from __future__ import annotations

import pytest

from tauon.app.plan import GenerationPlan, RedisTriggerPlan
from tauon.app.redis_triggers import check_redis_url, redact_url
from tauon.errors import LoadError
from tauon.executors.base import GuestError
from tauon.executors.redis_component import check_result
from tauon.executors.select import select_redis_export
from tauon.server.redis_routes import resolve_subscriptions
from tauon.services.variables import Undefined


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://localhost:6379", None),
        ("rediss://cache.example.com", None),
        ("redis://:secret@127.0.0.1:1/2", None),
        ("unix:///run/redis.sock", None),
        ("", "empty"),
        ("http://localhost:6379", "scheme 'http'"),
        ("localhost:6379", "scheme"),
        ("redis://", "no host"),
        ("redis://host:99999", "port"),
    ],
)
def test_check_redis_url(url: str, problem: str | None) -> None:
    found = check_redis_url(url)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ("redis://:hunter2@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("rediss://app:p%40ss@cache:6380", "rediss://app:***@cache:6380"),
        ("redis://user@host", "redis://user@host"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def plan_with(*triggers: RedisTriggerPlan) -> GenerationPlan:
    return GenerationPlan(app_id="a.json", reference="r:1", digest="sha256:0", name="a", version=None,
                          triggers=(), components={}, redis_triggers=triggers)


def test_subscriptions_group_by_address_and_channel_with_templates() -> None:
    values = {"chan": "orders", "host": "127.0.0.1"}
    plan = plan_with(
        RedisTriggerPlan("t1", "a", "{{ chan }}", "redis://{{ host }}:1"),
        RedisTriggerPlan("t2", "b", "orders", "redis://127.0.0.1:1"),
        RedisTriggerPlan("t3", "c", "other", "redis://127.0.0.1:2"),
    )
    subs = resolve_subscriptions(plan, values.__getitem__)
    assert subs == {"redis://127.0.0.1:1": {"orders": ("a", "b")}, "redis://127.0.0.1:2": {"other": ("c",)}}
    assert plan.listens is False


def test_subscription_errors_name_the_trigger_and_hide_passwords() -> None:
    with pytest.raises(LoadError) as info:
        resolve_subscriptions(plan_with(RedisTriggerPlan("t1", "a", "c", "")), {}.__getitem__)
    assert "Redis trigger 't1' (component 'a'): address (none): the address is empty" in info.value.message
    with pytest.raises(LoadError) as info:
        resolve_subscriptions(plan_with(RedisTriggerPlan("t1", "a", "c", "http://:pw@h:1")), {}.__getitem__)
    assert "pw" not in str(info.value) and "http://:***@h:1" in str(info.value)

    def undefined(name: str) -> str:
        raise Undefined(f"no provider resolved required variable '{name}'")

    with pytest.raises(LoadError) as info:
        resolve_subscriptions(plan_with(RedisTriggerPlan("t1", "a", "{{ ch }}", "redis://h")), undefined)
    assert "Redis trigger 't1': failed to resolve the channel '{{ ch }}'" in info.value.message


def test_select_redis_export() -> None:
    select_redis_export(["fermyon:spin/inbound-redis"], component_id="c")
    with pytest.raises(LoadError, match=r"does not export a Redis interface .*wasi:http/incoming-handler"):
        select_redis_export(["wasi:http/incoming-handler@0.2.0"], component_id="c")
    with pytest.raises(LoadError, match="component-model async"):
        select_redis_export(["spin:redis/inbound-redis@3.0.0"], component_id="c")
    with pytest.raises(LoadError, match="multiple Redis interfaces"):
        select_redis_export(["fermyon:spin/inbound-redis", "spin:redis/inbound-redis@3.0.0"],
                            component_id="c")


def test_handler_results() -> None:
    check_result("a/c", ("ok", None))
    check_result("a/c", ("err", "success"))  # what Spin 1.x SDKs return for success
    with pytest.raises(GuestError, match="returned an error"):
        check_result("a/c", ("err", "error"))
