"""`[outbound_networking] block_networks`: IP networks no guest connection may reach.

As Spin's crates/outbound-networking-config/src/blocked_networks.rs: entries are CIDRs (host bits
truncated: '8.8.8.8/16' is 8.8.0.0/16) or the keyword 'private', which blocks every address that is
not globally routable (loopback, RFC 1918, link-local, CGNAT, ULA, documentation ranges, ...). An
IPv4-mapped or IPv4-compatible IPv6 address is checked as its IPv4 address too, so '::ffff:10.0.0.1'
cannot slip past '10.0.0.0/8'. The blocklist wins over `allowed_outbound_hosts`: a host is first
allowed by name, then each address it resolves to is dropped if blocked; when none is left the
connection fails (wasi:http `destination-IP-prohibited`, each other interface's connection error).
Python's `ipaddress.is_global` stands in for the ip_network crate's `is_global`.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")


class DestinationBlocked(OSError):
    """Every address of a destination is in `block_networks` (the message names host and port only)."""


def parse_network(text: str) -> Network | None:
    """A CIDR ('10.0.0.0/8', '::1/128') or a bare address ('1.2.3.4' = /32); host bits truncated.
    None if `text` is neither."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None


def _global(ip: IpAddress) -> bool:
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return False  # shared address space: not global (Python < 3.13 misses it in is_global)
    return ip.is_global


def _as_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """Rust's Ipv6Addr::to_ipv4: the IPv4 address of an IPv4-mapped or -compatible IPv6 address."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.packed[:12] == bytes(12):
        return ipaddress.IPv4Address(ip.packed[12:])
    return None


@dataclass(frozen=True, slots=True)
class BlockedNetworks:
    networks: tuple[Network, ...] = ()
    block_private: bool = False

    @property
    def empty(self) -> bool:
        return not self.networks and not self.block_private

    def is_blocked(self, ip: IpAddress) -> bool:
        if self.block_private and not _global(ip):
            return True
        if any(ip.version == net.version and ip in net for net in self.networks):
            return True
        if isinstance(ip, ipaddress.IPv6Address) and (v4 := _as_ipv4(ip)) is not None:
            return self.is_blocked(v4)
        return False

    def summary(self) -> str:
        parts = [str(n) for n in self.networks] + (["private"] if self.block_private else [])
        return ", ".join(parts)

    def resolve(self, host: str, port: int, *, kind: int = socket.SOCK_STREAM,
                ) -> list[tuple[int, int, int, str, tuple[object, ...]]]:
        """getaddrinfo(host, port) without blocked addresses. Raises DestinationBlocked when every
        address was blocked (socket.gaierror when the name does not resolve)."""
        infos = socket.getaddrinfo(host.strip("[]"), port, type=kind)
        if self.empty:
            return list(infos)
        kept = [i for i in infos if not self.is_blocked(ipaddress.ip_address(str(i[4][0]).split("%")[0]))]
        if infos and not kept:
            raise DestinationBlocked(f"every address of {host}:{port} is in the runtime config's "
                                     "[outbound_networking] block_networks")
        return kept  # type: ignore[return-value]

    def check(self, host: str, port: int) -> None:
        """Raise DestinationBlocked if `host` resolves only to blocked addresses (no-op when empty)."""
        if not self.empty:
            self.resolve(host, port)


def connect(blocked: BlockedNetworks, address: tuple[str, int], timeout: float | None,
            source_address: tuple[str, int] | None = None) -> socket.socket:
    """socket.create_connection to the first reachable non-blocked address of `address`: the
    addresses checked are the addresses connected to (no second DNS lookup to race)."""
    last: OSError | None = None
    for family, kind, proto, _name, sockaddr in blocked.resolve(*address):
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address is not None:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last if last is not None else OSError(f"no address for {address[0]}")
