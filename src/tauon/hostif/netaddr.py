"""wasi:sockets 0.2 building blocks: addresses, error codes, the `allowed_outbound_hosts` check and the
per-request socket budget. Pure apart from the OS error numbers.

The rules are wasmtime-wasi's (which Spin links): address validity (`sockets/util.rs`), errno to
`error-code` mapping, and Spin's address check (`factor-outbound-networking`): a TCP connect is checked
as `tcp://<ip>:<port>`, a UDP bind, connect or datagram destination as `udp://<ip>:<port>`, and a TCP
bind is always refused, so a guest can never listen.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import time
from dataclasses import dataclass
from typing import Any

from tauon.hostif import netblock
from tauon.hostif.state import PER_REQUEST_BUDGETS, HostState
from tauon.wasm.component.codec import err

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_SOCKETS_PER_REQUEST = 64
"""TCP and UDP sockets one request may create (beyond: `new-socket-limit`); each costs threads."""
_BUDGET_KEY = "sockets.created"
PER_REQUEST_BUDGETS.add(_BUDGET_KEY)

_ERRNO_CODES = {
    errno.EACCES: "access-denied", errno.EPERM: "access-denied",
    errno.ECONNREFUSED: "connection-refused", errno.ECONNRESET: "connection-reset",
    errno.ECONNABORTED: "connection-aborted", errno.EPIPE: "connection-reset",
    errno.ETIMEDOUT: "timeout", errno.EHOSTUNREACH: "remote-unreachable",
    errno.ENETUNREACH: "remote-unreachable", errno.ENETDOWN: "remote-unreachable",
    errno.EADDRINUSE: "address-in-use", errno.EADDRNOTAVAIL: "address-not-bindable",
    errno.EMFILE: "new-socket-limit", errno.ENFILE: "new-socket-limit",
    errno.ENOBUFS: "out-of-memory", errno.ENOMEM: "out-of-memory",
    errno.EMSGSIZE: "datagram-too-large", errno.EINVAL: "invalid-argument",
    errno.EAGAIN: "would-block", errno.EINPROGRESS: "would-block",
}


class SocketError(Exception):
    """A wasi:sockets `error-code` to return to the guest."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def code_of(exc: BaseException) -> str:
    """The `error-code` of an OS-level failure."""
    if isinstance(exc, SocketError):
        return exc.code
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        return _ERRNO_CODES.get(exc.errno, "unknown")
    return "unknown"


def fail(code: str) -> tuple[str, Any]:
    return err(code)


@dataclass(frozen=True, slots=True)
class SockAddr:
    ip: IpAddress
    port: int
    flow_info: int = 0
    scope_id: int = 0

    @property
    def family(self) -> str:
        return "ipv4" if self.ip.version == 4 else "ipv6"

    def text(self) -> str:
        """As Rust's `SocketAddr` displays it, which is what Spin checks against allowed hosts."""
        return f"{self.ip}:{self.port}" if self.ip.version == 4 else f"[{self.ip}]:{self.port}"

    def os(self) -> tuple[Any, ...]:
        if self.ip.version == 4:
            return (str(self.ip), self.port)
        return (str(self.ip), self.port, self.flow_info, self.scope_id)

    def wit(self) -> tuple[str, dict[str, Any]]:
        if self.ip.version == 4:
            return ("ipv4", {"port": self.port, "address": tuple(self.ip.packed)})
        words = tuple(int.from_bytes(self.ip.packed[i:i + 2], "big") for i in range(0, 16, 2))
        return ("ipv6", {"port": self.port, "flow-info": self.flow_info, "address": words,
                         "scope-id": self.scope_id})


def from_wit(value: tuple[str, dict[str, Any]]) -> SockAddr:
    tag, fields = value
    if tag == "ipv4":
        return SockAddr(ipaddress.IPv4Address(bytes(fields["address"])), fields["port"])
    packed = b"".join(int(w).to_bytes(2, "big") for w in fields["address"])
    return SockAddr(ipaddress.IPv6Address(packed), fields["port"], fields["flow-info"], fields["scope-id"])


def from_os(family: str, addr: tuple[Any, ...]) -> SockAddr:
    if family == "ipv4":
        return SockAddr(ipaddress.IPv4Address(addr[0]), addr[1])
    host = str(addr[0]).split("%", 1)[0]
    return SockAddr(ipaddress.IPv6Address(host), addr[1], addr[2], addr[3])


def ip_wit(ip: IpAddress) -> tuple[str, tuple[int, ...]]:
    tag, fields = SockAddr(ip, 0).wit()
    return (tag, fields["address"])


def os_family(family: str) -> socket.AddressFamily:
    return socket.AF_INET if family == "ipv4" else socket.AF_INET6


def os_socket(family: str, kind: socket.SocketKind) -> socket.socket:
    """A host socket for a guest socket of `family`; an ipv6 one is IPv6 only, as WASI's are."""
    sock = socket.socket(os_family(family), kind)
    if family == "ipv6":
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    return sock


def valid_unicast(ip: IpAddress) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return not ip.is_multicast and ip != ipaddress.IPv4Address("255.255.255.255")
    return not ip.is_multicast


def valid_remote(addr: SockAddr) -> bool:
    return addr.port != 0 and not addr.ip.is_unspecified


def valid_family(ip: IpAddress, family: str) -> bool:
    """As wasmtime: an IPv6 socket takes neither IPv4-mapped nor IPv4-compatible addresses."""
    if family == "ipv4":
        return ip.version == 4
    if ip.version != 6:
        return False
    assert isinstance(ip, ipaddress.IPv6Address)
    compatible = ip.packed[:12] == bytes(12) and int(ip) > 1
    return ip.ipv4_mapped is None and not compatible


def permitted(state: HostState, scheme: str, addr: SockAddr) -> bool:
    """Spin's `allowed_outbound_hosts` check of a socket address (`tcp` or `udp`)."""
    allowed = state.config.allowed_hosts
    url = f"{scheme}://{addr.text()}"
    if allowed is not None and allowed.allows(url):
        return not netblock.socket_refused(state, addr.ip, addr.port)
    state.config.logger.info("%s: socket address %s denied by allowed_outbound_hosts",
                             state.config.label, url)
    return False


def take_socket_slot(state: HostState) -> bool:
    """Count one more socket for this request; False once the request has made its share."""
    created = int(state.extensions.get(_BUDGET_KEY, 0))
    if created >= MAX_SOCKETS_PER_REQUEST:
        state.config.logger.warning("%s: the guest opened more than %d sockets in one request",
                                    state.config.label, MAX_SOCKETS_PER_REQUEST)
        return False
    state.extensions[_BUDGET_KEY] = created + 1
    return True


def remaining(state: HostState) -> float:
    """Seconds left before the request's deadline (socket waits never outlive the request)."""
    return max(0.001, state.deadline - time.monotonic())
