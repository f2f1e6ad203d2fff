"""Which host calls a guest may make while it runs on the event loop (executors/inline.py).

A run on the loop is abandoned, and the request served again from the start on a guest thread,
whenever it cannot finish there. That is invisible only while the run has touched nothing outside
its own request. Calls into the interfaces below touch only the request's own resources and output;
every other host function (outbound HTTP, databases, key-value, variables, sockets, files) is
wrapped by the linker so that on the loop it abandons the run before it does anything. A component
that imports such interfaces (most SDKs import them all) still runs on the loop for the requests that
never call them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tauon.hostif.state import HostState, WouldBlock

LOOP_SAFE = frozenset({
    "wasi:http/types", "wasi:io/streams", "wasi:io/error", "wasi:io/poll",
    "tauon:bytes/streams",  # wasi:io/streams' writes with bytes in place of list<u8> (rewriting/routing.py)
    "wasi:clocks/monotonic-clock", "wasi:clocks/wall-clock",
    "wasi:random/random", "wasi:random/insecure", "wasi:random/insecure-seed",
    "wasi:cli/environment", "wasi:cli/exit", "wasi:cli/stdin", "wasi:cli/stdout", "wasi:cli/stderr",
    "wasi:cli/terminal-input", "wasi:cli/terminal-output", "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout", "wasi:cli/terminal-stderr",
})
"""Interfaces (without version) whose calls affect only the request's own resources and output.
Not here: outbound HTTP and databases, key-value, variables (a provider may be remote), sockets,
files (a read of a mounted file may wait on the disk). A wait inside these (`poll`, a full response
pipe) abandons the run too, in HostState.wait_until."""


def loop_safe(import_name: str) -> bool:
    """Whether the functions of the imported interface `import_name` ('<interface>@<version>') may be
    called on the event loop."""
    return import_name.split("@", 1)[0] in LOOP_SAFE


def threads_only(label: str, impl: Callable[..., Any]) -> Callable[..., Any]:
    """`impl`, except that called by a guest running on the event loop it abandons the run first."""
    message = f"{label} is called only on a guest thread"

    def guarded(state: HostState, *args: Any) -> Any:
        if state.inline:
            raise WouldBlock(message)
        return impl(state, *args)

    return guarded


__all__ = ["LOOP_SAFE", "loop_safe", "threads_only"]
