"""Spin variables for components (spin-spec §5.2): fermyon:spin/variables@2.0.0, the unversioned v1
fermyon:spin/config, and wasi:config/store@0.2.0-draft-2024-09-27.

A guest reads its component's `config` keys, rendered over the app variables (ComponentVariables).
The error mappings are Spin's (crates/factor-variables/src/host.rs). Values never reach a log line:
errors name keys only. spin:variables/variables@3.0.0 (component-model async) is in spin_variables_p3.py.
"""

from __future__ import annotations

from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_common import NO_SERVICES, Result, message, services_of
from tauon.hostif.state import HostState
from tauon.services.variables import InvalidName, ProviderError, Undefined, VariableError


def _v2_error(exc: VariableError) -> Result:
    if isinstance(exc, InvalidName):
        return ("invalid-name", message(exc))
    if isinstance(exc, Undefined):
        return ("undefined", message(exc))
    if isinstance(exc, ProviderError):
        return ("provider", message(exc))
    return ("other", message(exc))


def variables_get(state: HostState, name: str) -> Result:
    """fermyon:spin/variables@2.0.0 get: result<string, error>."""
    services = services_of(state)
    if services is None:
        return ("err", ("other", NO_SERVICES))
    try:
        return ("ok", services.variables.get(name))
    except VariableError as exc:
        return ("err", _v2_error(exc))


def config_get_config(state: HostState, key: str) -> Result:
    """fermyon:spin/config get-config (v1): Undefined -> provider, InvalidName -> invalid-key."""
    services = services_of(state)
    if services is None:
        return ("err", ("other", NO_SERVICES))
    try:
        return ("ok", services.variables.get(key))
    except InvalidName as exc:
        return ("err", ("invalid-key", message(exc)))
    except Undefined as exc:
        return ("err", ("provider", message(exc)))
    except VariableError as exc:
        return ("err", ("other", message(exc)))


def config_store_get(state: HostState, key: str) -> Result:
    """wasi:config/store get: result<option<string>, error>; undefined and invalid names are `none`."""
    services = services_of(state)
    if services is None:
        return ("err", ("io", NO_SERVICES))
    try:
        return ("ok", services.variables.get(key))
    except (InvalidName, Undefined):
        return ("ok", None)
    except ProviderError as exc:
        return ("err", ("upstream", message(exc)))
    except VariableError as exc:
        return ("err", ("io", message(exc)))


def config_store_get_all(state: HostState) -> Result:
    """wasi:config/store get-all: every config key of the component with its value."""
    services = services_of(state)
    if services is None:
        return ("err", ("io", NO_SERVICES))
    try:
        return ("ok", services.variables.get_all())
    except ProviderError as exc:
        return ("err", ("upstream", message(exc)))
    except VariableError as exc:
        return ("err", ("io", message(exc)))


INTERFACES = [
    HostInterface("fermyon:spin/variables@2.0.0", {"get": variables_get}),
    HostInterface("fermyon:spin/config", {"get-config": config_get_config}),
    HostInterface("wasi:config/store@0.2.0-draft-2024-09-27", {
        "get": config_store_get,
        "get-all": config_store_get_all,
    }),
]
