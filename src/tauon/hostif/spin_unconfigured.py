"""Spin's LLM interfaces: with a runtime config's `[llm_compute] type = "remote_http"` the calls go to
that server (llm_remote.py); without one tauon has no backend for them.

Each call then fails the way Spin does when the feature is unavailable, with the interface's own error, so a
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
from tauon.services import llm_remote

LLM_UNSUPPORTED = "Local LLM operations are not supported in this version of Spin."
"""What Spin answers an LLM call with when it is built without local LLM support (any ABI version)."""


def model_access_text(model: str) -> str:
    return (f"The component does not have access to use '{model}'. To give the component access, "
            f"add '{model}' to the 'ai_models' key for the component in your spin.toml manifest")


def llm_call(state: HostState, model: str, *_: Any) -> Result:
    """infer(model, prompt, params) and generate-embeddings(model, text), v1 and v2, without a
    remote engine."""
    services = services_of(state)
    if services is None:
        return ("err", ("runtime-error", NO_SERVICES))
    if model not in services.ai_models:
        return ("err", ("invalid-input", model_access_text(model)))
    return ("err", ("runtime-error", LLM_UNSUPPORTED))


def infer(state: HostState, model: str, prompt: str, params: dict[str, Any] | None) -> Result:
    services = services_of(state)
    if services is None or services.llm is None or model not in services.ai_models:
        return llm_call(state, model)
    remote = services.llm
    with state.slot.blocked():
        return llm_remote.call("infer", lambda: remote.infer(model, prompt, params, state.deadline))


def generate_embeddings(state: HostState, model: str, data: list[str]) -> Result:
    services = services_of(state)
    if services is None or services.llm is None or model not in services.ai_models:
        return llm_call(state, model)
    remote = services.llm
    with state.slot.blocked():
        return llm_remote.call("embeddings", lambda: remote.embed(model, list(data), state.deadline))


LLM_FUNCS: dict[str, Callable[..., Result]] = {"infer": infer, "generate-embeddings": generate_embeddings}

INTERFACES = [
    HostInterface("fermyon:spin/llm@2.0.0", LLM_FUNCS),
    HostInterface("fermyon:spin/llm", LLM_FUNCS),
]
