"""Spin variables host functions (v2, v1 config, wasi:config/store) on real services: Spin's error cases."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from support.spin_services import LOGGER, app_services, component, host_state
from tauon.hostif import spin_variables as sv
from tauon.hostif.spin_common import NO_SERVICES
from tauon.hostif.state import HostState

SECRET = "s3cr3t-token-value"
APP_VARIABLES = {
    "greeting": {"default": "hello", "secret": False},
    "token": {"default": None, "secret": True},
}


@pytest.fixture
def state() -> Iterator[HostState]:
    comp = component(config={"message": "{{ greeting }}, world", "api_key": "{{ token }}", "plain": "text"})
    with app_services(None, comp, app_variables=APP_VARIABLES, variables={"token": SECRET}) as services:
        yield host_state(services)


def test_v2_get_renders_the_component_config_key(state: HostState) -> None:
    assert sv.variables_get(state, "message") == ("ok", "hello, world")
    assert sv.variables_get(state, "api_key") == ("ok", SECRET)


def test_v2_errors_are_spins_cases(state: HostState) -> None:
    tag, (case, text) = sv.variables_get(state, "greeting")  # an app variable, not a config key
    assert (tag, case) == ("err", "undefined") and "greeting" in text
    tag, (case, _) = sv.variables_get(state, "Bad-Name")
    assert (tag, case) == ("err", "invalid-name")


def test_v1_config_maps_undefined_to_provider_and_invalid_to_invalid_key(state: HostState) -> None:
    assert sv.config_get_config(state, "plain") == ("ok", "text")
    assert sv.config_get_config(state, "missing")[1][0] == "provider"
    assert sv.config_get_config(state, "NOPE!")[1][0] == "invalid-key"


def test_wasi_config_store_returns_none_for_undefined_and_invalid(state: HostState) -> None:
    assert sv.config_store_get(state, "message") == ("ok", "hello, world")
    assert sv.config_store_get(state, "missing") == ("ok", None)
    assert sv.config_store_get(state, "Bad-Name") == ("ok", None)
    assert sv.config_store_get_all(state) == ("ok", [("api_key", SECRET), ("message", "hello, world"),
                                                     ("plain", "text")])


def test_without_services_every_call_fails_with_other_or_io() -> None:
    state = host_state(None)
    assert sv.variables_get(state, "x") == ("err", ("other", NO_SERVICES))
    assert sv.config_get_config(state, "x") == ("err", ("other", NO_SERVICES))
    assert sv.config_store_get(state, "x") == ("err", ("io", NO_SERVICES))
    assert sv.config_store_get_all(state) == ("err", ("io", NO_SERVICES))


def test_secret_values_do_not_reach_logs_or_errors(state: HostState,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        results = [sv.variables_get(state, k) for k in ("missing", "Bad-Name")]
        results += [sv.config_get_config(state, "missing"), sv.config_store_get(state, "nope")]
    assert SECRET not in repr(results)
    assert SECRET not in caplog.text
