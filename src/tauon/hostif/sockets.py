"""wasi:sockets 0.2: the network resource, name lookup, and the TCP and UDP interfaces (sockets_tcp,
sockets_udp), all limited by the component's `allowed_outbound_hosts` as Spin limits them.

Name lookup: Spin never enables wasmtime-wasi's `ip-name-lookup` (its `WasiCtxBuilder` default is off),
so `resolve-addresses` answers `invalid-argument` for a name that is not a valid host and
`permanent-resolver-failure` for every other one, IP literals included; guests connect to addresses.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from tauon.app.hosts import parse_host
from tauon.hostif import sockets_tcp, sockets_udp
from tauon.hostif.io import IoError, Pollable
from tauon.hostif.netaddr import fail
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState


class Network:
    pass


class ResolveAddressStream:
    """Never created (every lookup fails before one exists); defined so the resource links."""


def instance_network(state: HostState) -> int:
    return state.table.push(Network())


def network_error_code(state: HostState, rep: int) -> str | None:
    return state.table.get(rep, IoError).net_code


def _valid_name(name: str) -> bool:
    """wasmtime's `parse_host`: a domain or IP as the `url` crate parses it, or a bare IPv6 address."""
    try:
        ipaddress.IPv6Address(name)
        return True
    except ValueError:
        pass
    try:
        parse_host(name)
    except ValueError:
        return False
    return True


def resolve_addresses(state: HostState, network: int, name: str) -> tuple[str, Any]:
    state.table.get(network, Network)
    if not _valid_name(name):
        return fail("invalid-argument")
    return fail("permanent-resolver-failure")


def resolve_next_address(state: HostState, rep: int) -> tuple[str, Any]:
    state.table.get(rep, ResolveAddressStream)
    return fail("permanent-resolver-failure")


def resolve_subscribe(state: HostState, rep: int) -> int:
    state.table.get(rep, ResolveAddressStream)
    return state.table.push(Pollable(lambda: True))


INTERFACES = [
    HostInterface("wasi:sockets/network", {"network-error-code": network_error_code}, ("network",)),
    HostInterface("wasi:sockets/instance-network", {"instance-network": instance_network}),
    HostInterface("wasi:sockets/ip-name-lookup", {
        "resolve-addresses": resolve_addresses,
        "[method]resolve-address-stream.resolve-next-address": resolve_next_address,
        "[method]resolve-address-stream.subscribe": resolve_subscribe,
    }, ("resolve-address-stream",)),
    *sockets_tcp.INTERFACES,
    *sockets_udp.INTERFACES,
]
