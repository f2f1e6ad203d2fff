"""LLM and outbound PostgreSQL/MySQL: Spin's errors for a denied address or a missing backend (Redis and
MQTT are real clients: test_outbound_clients.py and the integration tests)."""

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


@pytest.mark.parametrize("interface", ["fermyon:spin/postgres@2.0.0", "spin:postgres/postgres@3.0.0",
                                       "spin:postgres/postgres@4.0.0"])
def test_postgres_denied_names_the_address_spin_checked(state: HostState, interface: str) -> None:
    open_ = "[static]connection.open"
    assert call(interface, open_, state, "postgres://user:pw@evil.example:6543/db") == (
        "err", ("connection-failed", "address postgres://evil.example:6543 is not permitted"))
    assert call(interface, open_, state, "host=evil.example user=me") == (
        "err", ("connection-failed", "address postgres://evil.example is not permitted"))
    assert call(interface, open_, state, "postgres://u@db.internal/app") == (
        "err", ("connection-failed", su.NO_PG))


def test_v1_postgres_and_mysql_fail_per_call(state: HostState) -> None:
    assert call("fermyon:spin/postgres", "query", state, "postgres://evil.example", "SELECT 1", []) == (
        "err", ("connection-failed", "address postgres://evil.example is not permitted"))
    assert call("fermyon:spin/mysql", "execute", state, "mysql://127.0.0.1:3306/db", "SELECT 1", []) == (
        "err", ("connection-failed", su.NO_MYSQL))
    assert call("fermyon:spin/mysql@2.0.0", "[static]connection.open", state, "mysql://10.0.0.1/db") == (
        "err", ("connection-failed", "address mysql://10.0.0.1/db is not permitted"))


def test_credentials_in_addresses_are_not_logged(state: HostState, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        call("spin:postgres/postgres@3.0.0", "[static]connection.open", state,
             "postgres://admin:hunter2@db.internal/app")
        call("fermyon:spin/mysql", "query", state, "mysql://root:hunter2@127.0.0.1:3306/db", "SELECT 1", [])
    assert "not support" in caplog.text
    assert "hunter2" not in caplog.text
