"""Spin interfaces tauon has no backend for: LLM, outbound PostgreSQL and MySQL.

Each call fails the way Spin does when the feature is unavailable, with the interface's own error, so a
guest sees a failed call it can handle:

* LLM (spin-spec §5.6): a model the component does not list in `ai_models` is `invalid-input` with
  Spin's access text; any other call is the `runtime-error` of a Spin built without local LLM support.
* Outbound clients check `allowed_outbound_hosts` first, as Spin does: a denied address gets Spin's
  error (`connection-failed("address … is not permitted")`); an allowed one gets `connection-failed`
  saying tauon has no such client. Addresses may carry credentials: they are returned to the guest (as
  Spin does) but never logged.

Outbound Redis and MQTT are real clients (spin_redis.py, spin_mqtt.py). The v3+ MySQL interface and
postgres@4.2 are component-model async: not provided.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from tauon.executors.legacy_imports import LLM_UNSUPPORTED
from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_common import NO_SERVICES, Result, services_of
from tauon.hostif.state import HostState

NO_PG = "outbound PostgreSQL is not supported by tauon"
NO_MYSQL = "outbound MySQL is not supported by tauon"


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


def pg_hosts(address: str) -> list[str] | None:
    """'host[:port]' for each host of a PostgreSQL address (URL or key=value form); None if unparsable.

    Mirrors how Spin builds the URL it checks from tokio-postgres' parsed config."""
    if re.match(r"^postgres(ql)?://", address):
        try:
            netloc = urlsplit(address).netloc
        except ValueError:
            return None
        hosts = netloc.rpartition("@")[2]
        return [h for h in hosts.split(",") if h]
    fields: dict[str, str] = {}
    for token in address.split():
        key, sep, value = token.partition("=")
        if not sep:
            return None
        fields[key] = value.strip("'")
    hosts_list = [h for h in fields.get("host", "").split(",") if h]
    ports = [p for p in fields.get("port", "").split(",") if p]
    out = []
    for i, host in enumerate(hosts_list):
        port = ports[i] if i < len(ports) else (ports[0] if len(ports) == 1 else None)
        out.append(f"{host}:{port}" if port else host)
    return out


def pg_open_error(state: HostState, address: str) -> Result:
    """The error of opening a PostgreSQL connection (Spin's error shape: connection-failed)."""
    hosts = pg_hosts(address)
    if hosts is None:
        return ("err", ("connection-failed", "invalid connection string"))
    for host in hosts:
        if not allows(state, host, "postgres"):
            return ("err", ("connection-failed", f"address postgres://{host} is not permitted"))
    _unsupported(state, "outbound PostgreSQL")
    return ("err", ("connection-failed", NO_PG))


def mysql_open_error(state: HostState, address: str) -> Result:
    if not allows(state, address, "mysql"):
        return ("err", ("connection-failed", f"address {address} is not permitted"))
    _unsupported(state, "outbound MySQL")
    return ("err", ("connection-failed", NO_MYSQL))


def _v1(open_error: Callable[[HostState, str], Result]) -> Callable[..., Result]:
    """v1 PostgreSQL / MySQL calls take the address per call; their errors have the same case names."""

    def call(state: HostState, address: str, *_: Any) -> Result:
        return open_error(state, address)

    return call


def _static_open(open_error: Callable[[HostState, str], Result]) -> dict[str, Callable[..., Result]]:
    return {"[static]connection.open": open_error}


LLM_FUNCS: dict[str, Callable[..., Result]] = {"infer": llm_call, "generate-embeddings": llm_call}

INTERFACES = [
    HostInterface("fermyon:spin/llm@2.0.0", LLM_FUNCS),
    HostInterface("fermyon:spin/llm", LLM_FUNCS),
    HostInterface("fermyon:spin/postgres@2.0.0", _static_open(pg_open_error), ("connection",)),
    HostInterface("spin:postgres/postgres@3.0.0", _static_open(pg_open_error), ("connection",)),
    HostInterface("spin:postgres/postgres@4.0.0", _static_open(pg_open_error), ("connection",)),
    HostInterface("fermyon:spin/postgres", {"query": _v1(pg_open_error), "execute": _v1(pg_open_error)}),
    HostInterface("fermyon:spin/mysql@2.0.0", _static_open(mysql_open_error), ("connection",)),
    HostInterface("fermyon:spin/mysql", {"query": _v1(mysql_open_error), "execute": _v1(mysql_open_error)}),
]
