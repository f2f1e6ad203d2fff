"""Spin interfaces tauon has no backend for: LLM, outbound Redis and MQTT.

Each call fails the way Spin does when the feature is unavailable, with the interface's own error, so a
guest sees a failed call it can handle:

* LLM (spin-spec §5.6): a model the component does not list in `ai_models` is `invalid-input` with
  Spin's access text; any other call is the `runtime-error` of a Spin built without local LLM support.
* Outbound clients check `allowed_outbound_hosts` first, as Spin does: a denied address gets Spin's
  error (Redis `invalid-address`, MQTT `connection-failed("address … is not permitted")`); an
  allowed one gets `connection-failed` / `other` saying tauon has no such client. Addresses may carry
  credentials: they are returned to the guest (as Spin does) but never logged.

The v3+ Redis and MQTT interfaces are component-model async: not provided. PostgreSQL and MySQL are
`spin_pg` and `spin_mysql`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tauon.executors.legacy_imports import LLM_UNSUPPORTED
from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_common import NO_SERVICES, Result, services_of
from tauon.hostif.state import HostState

NO_REDIS = "outbound Redis is not supported by tauon"
NO_MQTT = "outbound MQTT is not supported by tauon"


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


def allows(state: HostState, address: str, scheme: str) -> bool:
    allowed = state.config.allowed_hosts
    return allowed is not None and allowed.allows(address, scheme)


def _unsupported(state: HostState, what: str) -> None:
    state.config.logger.warning("%s: the guest opened an %s connection, which tauon does not support",
                                state.config.label, what)


def redis_open(state: HostState, address: str) -> Result:
    """fermyon:spin/redis@2.0.0 connection.open."""
    if not allows(state, address, "redis"):
        return ("err", "invalid-address")
    _unsupported(state, "outbound Redis")
    return ("err", ("other", NO_REDIS))


def redis_v1(state: HostState, address: str, *_: Any) -> Result:
    """Every v1 Redis call: its error is a bare enum (`error`) whether denied or unsupported."""
    if allows(state, address, "redis"):
        _unsupported(state, "outbound Redis")
    return ("err", "error")


def mqtt_open(state: HostState, address: str, *_: Any) -> Result:
    """fermyon:spin/mqtt@2.0.0 connection.open(address, username, password, keep-alive)."""
    if not allows(state, address, "mqtt"):
        return ("err", ("connection-failed", f"address {address} is not permitted"))
    _unsupported(state, "outbound MQTT")
    return ("err", ("connection-failed", NO_MQTT))


def _static_open(open_error: Callable[..., Result]) -> dict[str, Callable[..., Result]]:
    return {"[static]connection.open": open_error}


LLM_FUNCS: dict[str, Callable[..., Result]] = {"infer": llm_call, "generate-embeddings": llm_call}
REDIS_V1_FUNCS: dict[str, Callable[..., Result]] = {
    name: redis_v1 for name in ("publish", "get", "set", "incr", "del", "sadd", "smembers", "srem", "execute")
}

INTERFACES = [
    HostInterface("fermyon:spin/llm@2.0.0", LLM_FUNCS),
    HostInterface("fermyon:spin/llm", LLM_FUNCS),
    HostInterface("fermyon:spin/redis@2.0.0", _static_open(redis_open), ("connection",)),
    HostInterface("fermyon:spin/redis", REDIS_V1_FUNCS),
    HostInterface("fermyon:spin/mqtt@2.0.0", _static_open(mqtt_open), ("connection",)),
]
