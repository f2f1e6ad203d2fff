"""LLM and outbound Redis/MQTT: Spin's errors for a denied address or a missing backend."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from support.spin_services import LOGGER, app_services, component, host_state
from tauon.executors.legacy_imports import LLM_UNSUPPORTED
from tauon.hostif import spin_unconfigured as su
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState

BY_NAME: dict[str, HostInterface] = {iface.name: iface for iface in su.INTERFACES}


@pytest.fixture
def state() -> Iterator[HostState]:
    with app_services(None, component(ai_models=["llama2-chat"])) as services:
        yield host_state(services, allowed=["redis://cache.internal", "postgres://db.internal",
                                            "mysql://127.0.0.1:3306", "mqtt://broker.internal"])


def call(interface: str, func: str, state: HostState, *args: object) -> Any:
    return BY_NAME[interface].funcs[func](state, *args)


@pytest.mark.parametrize("interface", ["fermyon:spin/llm@2.0.0", "fermyon:spin/llm"])
def test_llm_model_not_listed_is_invalid_input_else_unsupported(state: HostState, interface: str) -> None:
    tag, (case, text) = call(interface, "infer", state, "other-model", "hi", None)
    assert (tag, case) == ("err", "invalid-input")
    assert text == ("The component does not have access to use 'other-model'. To give the component access, "
                    "add 'other-model' to the 'ai_models' key for the component in your spin.toml manifest")
    assert call(interface, "generate-embeddings", state, "llama2-chat", ["x"]) == (
        "err", ("runtime-error", LLM_UNSUPPORTED))


def test_redis_denied_is_invalid_address_allowed_is_other(state: HostState) -> None:
    assert call("fermyon:spin/redis@2.0.0", "[static]connection.open", state, "redis://evil.example") == (
        "err", "invalid-address")
    assert call("fermyon:spin/redis@2.0.0", "[static]connection.open", state, "redis://cache.internal") == (
        "err", ("other", su.NO_REDIS))
    assert call("fermyon:spin/redis", "get", state, "redis://evil.example", "k") == ("err", "error")


def test_mqtt_and_no_outbound_hosts_at_all(state: HostState) -> None:
    assert call("fermyon:spin/mqtt@2.0.0", "[static]connection.open", state, "mqtt://broker.internal",
                "u", "p", 30) == ("err", ("connection-failed", su.NO_MQTT))
    bare = host_state(state.config.services)  # no allowed_outbound_hosts: everything is denied
    denied = "address mqtt://broker.internal is not permitted"
    assert call("fermyon:spin/mqtt@2.0.0", "[static]connection.open", bare, "mqtt://broker.internal",
                "u", "p", 30) == ("err", ("connection-failed", denied))


def test_credentials_in_addresses_are_not_logged(state: HostState, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        call("fermyon:spin/mqtt@2.0.0", "[static]connection.open", state,
             "mqtt://admin:hunter2@broker.internal", "admin", "hunter2", 30)
    assert "not support" in caplog.text
    assert "hunter2" not in caplog.text
