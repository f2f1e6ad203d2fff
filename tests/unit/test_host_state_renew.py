"""HostState.renew: what a kept WASIp3 instance's host state starts its next request with (a new
deadline and output budget, per-request budgets reset) and what it keeps (resources, live counts)."""

from __future__ import annotations

import logging
import time

from tauon.hostif import http_fields, netaddr
from tauon.hostif.state import PER_REQUEST_BUDGETS, HostConfig, HostState


def test_renew_resets_the_request_budgets_and_keeps_the_rest() -> None:
    state = HostState(HostConfig(label="a/c", logger=logging.getLogger("test")), timeout=0.01)
    assert {http_fields._FIELDS_BYTES, netaddr._BUDGET_KEY} <= PER_REQUEST_BUDGETS  # registered at import
    state.extensions.update({"fields-bytes": 10_000_000, "sockets.created": 7, "quotas": {"kv": 2}})
    rep = state.table.push(object())
    state.budget.logged = 999_999
    time.sleep(0.02)
    state.renew(30.0)
    assert "fields-bytes" not in state.extensions and "sockets.created" not in state.extensions
    assert state.extensions["quotas"] == {"kv": 2}  # live handles still count
    assert state.table.get(rep, object) is not None  # what the guest holds stays
    assert state.budget.logged == 0
    assert state.deadline > time.monotonic() + 29
