"""Spin's LLM interfaces, which tauon has no backend for.

Each call fails the way Spin does when the feature is unavailable, with the interface's own error, so a
guest sees a failed call it can handle (spin-spec §5.6): a model the component does not list in
`ai_models` is `invalid-input` with Spin's access text; any other call is the `runtime-error` of a Spin
built without local LLM support.

Outbound Redis, MQTT, PostgreSQL and MySQL are real clients (spin_redis.py, spin_mqtt.py, spin_pg.py,
spin_mysql.py). Their component-model async versions (v3+ Redis/MySQL/MQTT, postgres@4.2) are not
provided.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_common import NO_SERVICES, Result, services_of
from tauon.hostif.state import HostState

LLM_UNSUPPORTED = "Local LLM operations are not supported in this version of Spin."
"""What Spin answers an LLM call with when it is built without local LLM support (any ABI version)."""


def model_access_text(model: str) -> str:
    return (f"The component does not have access to use '{model}'. To give the component access, "
            f"add '{model}' to the 'ai_models' key for the component in your spin.toml manifest")


def llm_call(state: HostState, model: str, *_: Any) -> Result:
    """infer(model, prompt, params) and generate-embeddings(model, text), v1 and v2."""
    services = services_of(state)
    if services is None:
        return ("err", ("runtime-error", NO_SERVICES))
    if model not in services.ai_models:
        return ("err", ("invalid-input", model_access_text(model)))
    return ("err", ("runtime-error", LLM_UNSUPPORTED))


LLM_FUNCS: dict[str, Callable[..., Result]] = {"infer": llm_call, "generate-embeddings": llm_call}

INTERFACES = [
    HostInterface("fermyon:spin/llm@2.0.0", LLM_FUNCS),
    HostInterface("fermyon:spin/llm", LLM_FUNCS),
]
