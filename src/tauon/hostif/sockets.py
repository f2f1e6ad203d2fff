"""wasi:sockets 0.2: present so components link, but every socket is refused with `access-denied`.

Spin gates sockets with `allowed_outbound_hosts`; tauon does not offer raw sockets yet, so the guest
gets the standard error code instead of a trap and can report it.
"""

from __future__ import annotations

from typing import Any

from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import err

DENIED = err("access-denied")


class Network:
    pass


def instance_network(state: HostState) -> int:
    return state.table.push(Network())


def denied(state: HostState, *args: Any) -> tuple[str, Any]:
    return DENIED


INTERFACES = [
    HostInterface("wasi:sockets/network", {}, ("network",)),
    HostInterface("wasi:sockets/instance-network", {"instance-network": instance_network}),
    HostInterface("wasi:sockets/tcp-create-socket", {"create-tcp-socket": denied}),
    HostInterface("wasi:sockets/udp-create-socket", {"create-udp-socket": denied}),
    HostInterface("wasi:sockets/ip-name-lookup", {"resolve-addresses": denied}, ("resolve-address-stream",)),
    HostInterface("wasi:sockets/tcp", {}, ("tcp-socket",)),
    HostInterface("wasi:sockets/udp", {}, ("udp-socket", "incoming-datagram-stream",
                                           "outgoing-datagram-stream")),
]
