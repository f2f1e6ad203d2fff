"""wasi:sockets 0.3 name lookup as Spin 4 links it: wasmtime-wasi's `ip-name-lookup` is never enabled
in Spin, so `resolve-addresses` fails as the 0.2 one does (`invalid-argument` for a name that is not a
valid host, `permanent-resolver-failure` otherwise). 0.3's TCP and UDP sockets are not provided yet
(calling them traps with their name).
"""

from __future__ import annotations

from typing import Any

from tauon.hostif.netaddr import fail
from tauon.hostif.registry import HostInterface, p3_name
from tauon.hostif.sockets import _valid_name
from tauon.hostif.state import HostState


def resolve_addresses(state: HostState, name: str) -> tuple[str, Any]:
    """`resolve-addresses: async func(name) -> result<list<ip-address>, error-code>`."""
    return fail("invalid-argument" if not _valid_name(name) else "permanent-resolver-failure")


INTERFACES = [HostInterface(p3_name("wasi:sockets/ip-name-lookup"), {"resolve-addresses": resolve_addresses})]
