"""`[outbound_networking]` of a runtime config, as Spin's factor-outbound-networking
runtime_config/spin.rs reads it: `block_networks` is a list of CIDRs and the keyword 'private'.
Spin's `max_socket_connections` / `max_total_connections` are refused by name (not in tauon)."""

from __future__ import annotations

from typing import Any

from tauon.runtimeconfig.errors import RuntimeConfigError
from tauon.runtimeconfig.networks import BlockedNetworks, Network, parse_network

_NOT_IN_TAUON = ("max_socket_connections", "max_total_connections")
_WHERE = "outbound_networking"


def outbound_networking(value: Any) -> BlockedNetworks:
    if value is None:
        return BlockedNetworks()
    if not isinstance(value, dict):
        raise RuntimeConfigError("must be a table", where=_WHERE,
                                 hint='[outbound_networking] block_networks = ["10.0.0.0/8", "private"]')
    for key in value:
        if key in _NOT_IN_TAUON:
            raise RuntimeConfigError("is not supported by tauon", where=f"{_WHERE}.{key}",
                                     hint=f"remove {key}")
        if key != "block_networks":
            raise RuntimeConfigError(f"unknown key {key!r}", where=_WHERE,
                                     hint="this table takes block_networks")
    entries = value.get("block_networks", [])
    if not isinstance(entries, list):
        raise RuntimeConfigError("must be a list of strings", where=f"{_WHERE}.block_networks",
                                 hint='e.g. block_networks = ["1.1.1.1/32", "private"]')
    networks: list[Network] = []
    private = False
    for index, entry in enumerate(entries):
        where = f"{_WHERE}.block_networks[{index}]"
        if entry == "private":
            private = True
            continue
        network = parse_network(entry) if isinstance(entry, str) else None
        if network is None:
            raise RuntimeConfigError(f"{entry!r} is neither an IP network in CIDR notation nor 'private'",
                                     where=where, hint="e.g. '10.0.0.0/8', '2001:db8::/32' or 'private'")
        networks.append(network)
    return BlockedNetworks(tuple(networks), private)
