"""`[outbound_networking] block_networks` (runtimeconfig/networking.py, networks.py): parsed as Spin
parses it (CIDRs truncated, the 'private' keyword) and checked as Spin's BlockedNetworks checks
addresses, including IPv4 addresses hidden in IPv6 forms; resolving keeps only unblocked addresses."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from tauon.runtimeconfig.networks import BlockedNetworks, DestinationBlocked, connect
from tauon.runtimeconfig.parse import parse_runtime_config


def blocked(*entries: str) -> BlockedNetworks:
    listed = ", ".join(f'"{e}"' for e in entries)
    text = f"[outbound_networking]\nblock_networks = [{listed}]\n"
    return parse_runtime_config(Path("/etc/rc.toml"), text.encode()).blocked_networks


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def test_an_empty_table_or_list_blocks_nothing() -> None:
    for text in ("[outbound_networking]\n", "[outbound_networking]\nblock_networks = []\n", ""):
        networks = parse_runtime_config(Path("/rc.toml"), text.encode()).blocked_networks
        assert networks.empty
        assert not networks.is_blocked(ip("127.0.0.1"))


def test_cidrs_are_truncated_and_listed_in_the_summary() -> None:
    networks = blocked("1.1.1.1/32", "8.8.8.8/16", "private")
    assert networks.block_private
    assert [str(n) for n in networks.networks] == ["1.1.1.1/32", "8.8.0.0/16"]
    rc = parse_runtime_config(Path("/rc.toml"), b'[outbound_networking]\nblock_networks = ["10.1.2.3/8"]\n')
    assert rc.summary() == "[outbound_networking: block_networks=10.0.0.0/8]"


def test_networks_block_their_addresses_and_ipv4_in_ipv6_forms() -> None:
    networks = blocked("123.123.0.0/16", "2001::/96")
    for address in ("123.123.123.123", "2001::1000", "::ffff:123.123.123.123", "::123.123.1.1"):
        assert networks.is_blocked(ip(address)), address
    for address in ("123.100.100.100", "2002::1000", "127.0.0.1", "::1"):
        assert not networks.is_blocked(ip(address)), address


@pytest.mark.parametrize("address", ["0.0.0.0", "10.10.10.10", "100.64.1.1", "127.0.0.1", "169.254.0.1",
                                     "192.168.1.1", "172.16.0.1", "::1", "::ffff:10.10.10.10", "fc00::f00d",
                                     "fe80::1"])
def test_private_blocks_every_address_that_is_not_global(address: str) -> None:
    assert blocked("private").is_blocked(ip(address))


@pytest.mark.parametrize("address", ["123.123.123.123", "2600::beef", "8.8.8.8"])
def test_private_leaves_global_addresses(address: str) -> None:
    assert not blocked("private").is_blocked(ip(address))


def test_resolve_drops_blocked_addresses_and_fails_when_none_is_left() -> None:
    assert blocked("10.0.0.0/8").resolve("127.0.0.1", 80)[0][4] == ("127.0.0.1", 80)
    with pytest.raises(DestinationBlocked, match=r"localhost:80 .*block_networks"):
        blocked("127.0.0.0/8", "::1/128").resolve("localhost", 80)
    with pytest.raises(DestinationBlocked):
        blocked("private").check("127.0.0.2", 6379)


def test_connect_reaches_only_unblocked_addresses() -> None:
    """A real loopback listener: reached through the blocklist when not blocked, never when it is."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with connect(blocked("10.0.0.0/8"), ("127.0.0.1", port), 5) as sock:
            assert sock.getpeername() == ("127.0.0.1", port)
        with pytest.raises(DestinationBlocked):
            connect(blocked("127.0.0.1/32"), ("127.0.0.1", port), 5)
