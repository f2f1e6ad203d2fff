"""Which host calls a guest may make on the event loop (tauon.hostif.loopsafe): pure logic, and the
guard the linker puts around every other host function."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tauon.hostif.loopsafe import loop_safe, threads_only
from tauon.hostif.state import HostConfig, HostState, WouldBlock


@pytest.mark.parametrize("name", [
    "wasi:http/types@0.2.0", "wasi:io/streams@0.2.12", "wasi:io/poll@0.2.9", "wasi:cli/stdout@0.2.12",
    "wasi:clocks/monotonic-clock@0.2.9", "wasi:random/random@0.2.3", "wasi:cli/environment@0.2.0",
    "tauon:bytes/streams@0.1.0",
])
def test_request_local_interfaces_are_safe_on_the_loop(name: str) -> None:
    assert loop_safe(name)


@pytest.mark.parametrize("name", [
    "wasi:http/outgoing-handler@0.2.0", "wasi:filesystem/types@0.2.0", "wasi:filesystem/preopens@0.2.12",
    "fermyon:spin/key-value@2.0.0", "fermyon:spin/variables@2.0.0", "wasi:sockets/tcp@0.2.0",
    "wasi:keyvalue/store@0.2.0-draft2", "spin:postgres/postgres@4.0.0", "custom-top-level-function",
    "wasi:http/typesx@0.2.0",
])
def test_everything_else_is_called_only_on_threads(name: str) -> None:
    assert not loop_safe(name)


def test_the_guard_abandons_a_run_on_the_loop_before_the_call_does_anything() -> None:
    calls: list[tuple[Any, ...]] = []

    def impl(state: HostState, *args: Any) -> str:
        calls.append(args)
        return "done"

    guarded = threads_only("wasi:http/outgoing-handler@0.2.0#handle", impl)
    state = HostState(HostConfig("app/c", logging.getLogger("test")), timeout=5.0)
    assert guarded(state, 1, "a") == "done" and calls == [(1, "a")]  # on a guest thread
    state.inline = True
    with pytest.raises(WouldBlock, match=r"outgoing-handler@0\.2\.0#handle is called only on a guest thread"):
        guarded(state, 2, "b")
    assert calls == [(1, "a")]
