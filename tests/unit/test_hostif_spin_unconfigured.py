"""LLM: Spin's errors for a model the component does not list, and for the missing backend. (Outbound
Redis, MQTT, PostgreSQL and MySQL are real clients, tested against real servers.)"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.spin_services import app_services, component, host_state
from tauon.hostif import spin_unconfigured as su
from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_unconfigured import LLM_UNSUPPORTED
from tauon.hostif.state import HostState

BY_NAME: dict[str, HostInterface] = {iface.name: iface for iface in su.INTERFACES}


@pytest.fixture
def state() -> Iterator[HostState]:
    with app_services(None, component(ai_models=["llama2-chat"])) as services:
        yield host_state(services)


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
