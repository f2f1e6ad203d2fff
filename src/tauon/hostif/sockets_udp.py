"""wasi:sockets/udp 0.2: datagrams, gated by `allowed_outbound_hosts` as Spin gates them.

wasmtime-wasi's p2 semantics: a socket must be bound (`udp://<local address>` must be allowed) before
`stream`; `stream(remote)` checks `udp://<remote>` and then only exchanges datagrams with it; without a
remote, every datagram's destination is checked when it is sent. A thread per bound socket receives
into a bounded queue (datagrams beyond it are dropped, as a full socket buffer drops them) and wakes a
guest blocked in `poll` through the request's Condition; sends never block.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from typing import Any

from tauon.hostif.io import Pollable
from tauon.hostif.netaddr import (
    SockAddr,
    code_of,
    fail,
    from_os,
    from_wit,
    os_socket,
    permitted,
    take_socket_slot,
    valid_family,
    valid_remote,
    valid_unicast,
)
from tauon.hostif.registry import HostInterface, HostTrap
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import ok

QUEUE = 256
"""Received datagrams held per socket until the guest takes them."""
MAX_DATAGRAM = 65535
SEND_PERMIT = 16
"""Datagrams one check-send allows (wasmtime's figure)."""


class UdpSocket:
    def __init__(self, state: HostState, family: str) -> None:
        self.state = state
        self.family = family
        self.sock = os_socket(family, socket.SOCK_DGRAM)
        self.phase = "default"
        self.remote: SockAddr | None = None
        self.received: deque[tuple[bytes, SockAddr]] = deque(maxlen=QUEUE)
        self.streams = 0
        self.closed = False

    def start_receiving(self) -> None:
        threading.Thread(target=self._receive, name=f"tauon-udp {self.state.config.label}",
                         daemon=True).start()

    def _receive(self) -> None:
        cond = self.state.cond
        try:
            while True:
                data, addr = self.sock.recvfrom(MAX_DATAGRAM)
                if self.closed:  # on_drop's shutdown woke us (with an empty read)
                    return
                with cond:
                    self.received.append((data, from_os(self.family, addr)))
                    cond.notify_all()
        except (OSError, TypeError, ValueError):
            return  # closed with the socket

    def on_drop(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the receiving thread
        self.sock.close()


class IncomingDatagrams:
    def __init__(self, owner: UdpSocket, remote: SockAddr | None) -> None:
        self.owner = owner
        self.remote = remote

    def on_drop(self) -> None:
        self.owner.streams -= 1


class OutgoingDatagrams:
    def __init__(self, owner: UdpSocket, remote: SockAddr | None) -> None:
        self.owner = owner
        self.remote = remote
        self.permit = 0

    def on_drop(self) -> None:
        self.owner.streams -= 1


def create_udp_socket(state: HostState, family: str) -> tuple[str, Any]:
    if not take_socket_slot(state):
        return fail("new-socket-limit")
    try:
        return ok(state.table.push(UdpSocket(state, family)))
    except OSError as exc:
        return fail(code_of(exc))


def _socket(state: HostState, rep: int) -> UdpSocket:
    return state.table.get(rep, UdpSocket)


def start_bind(state: HostState, rep: int, network: int, local: Any) -> tuple[str, Any]:
    udp = _socket(state, rep)
    addr = from_wit(local)
    if not permitted(state, "udp", addr):
        return fail("access-denied")
    if udp.phase != "default":
        return fail("invalid-state")
    if not valid_unicast(addr.ip) or not valid_family(addr.ip, udp.family):
        return fail("invalid-argument")
    try:
        udp.sock.bind(addr.os())
    except OSError as exc:
        return fail(code_of(exc))
    udp.phase = "bind-started"
    return ok()


def finish_bind(state: HostState, rep: int) -> tuple[str, Any]:
    udp = _socket(state, rep)
    if udp.phase != "bind-started":
        return fail("not-in-progress")
    udp.phase = "bound"
    udp.start_receiving()
    return ok()


def stream(state: HostState, rep: int, remote: Any) -> tuple[str, Any]:
    udp = _socket(state, rep)
    if udp.streams:
        raise HostTrap("udp-socket.stream: the previous streams are not dropped yet")
    if udp.phase != "bound":
        return fail("invalid-state")
    udp.remote = None
    addr = from_wit(remote) if remote is not None else None
    if addr is not None:
        if not permitted(state, "udp", addr):
            return fail("access-denied")
        if not valid_remote(addr) or not valid_family(addr.ip, udp.family):
            return fail("invalid-argument")
        udp.remote = addr  # "connected": only this peer's datagrams are delivered
    udp.streams = 2
    incoming, outgoing = IncomingDatagrams(udp, addr), OutgoingDatagrams(udp, addr)
    return ok((state.table.push(incoming), state.table.push(outgoing)))


def local_address(state: HostState, rep: int) -> tuple[str, Any]:
    udp = _socket(state, rep)
    if udp.phase == "default":
        return fail("invalid-state")
    return ok(from_os(udp.family, udp.sock.getsockname()).wit())


def remote_address(state: HostState, rep: int) -> tuple[str, Any]:
    udp = _socket(state, rep)
    if udp.remote is None:
        return fail("invalid-state")
    return ok(udp.remote.wit())


def address_family(state: HostState, rep: int) -> str:
    return _socket(state, rep).family


def _sockopt(level: int, name: int, v6: tuple[int, int] | None = None) -> tuple[Any, Any]:
    def where(udp: UdpSocket) -> tuple[int, int]:
        return v6 if v6 is not None and udp.family == "ipv6" else (level, name)

    def get(state: HostState, rep: int) -> tuple[str, Any]:
        udp = _socket(state, rep)
        try:
            return ok(udp.sock.getsockopt(*where(udp)))
        except OSError as exc:
            return fail(code_of(exc))

    def set_(state: HostState, rep: int, value: int) -> tuple[str, Any]:
        udp = _socket(state, rep)
        if value == 0:
            return fail("invalid-argument")
        try:
            udp.sock.setsockopt(*where(udp), min(value, 0x7FFFFFFF))
        except OSError as exc:
            return fail(code_of(exc))
        return ok()

    return get, set_


def subscribe(state: HostState, rep: int) -> int:
    _socket(state, rep)
    return state.table.push(Pollable(lambda: True))  # no socket-level call blocks


def receive(state: HostState, rep: int, max_results: int) -> tuple[str, Any]:
    incoming = state.table.get(rep, IncomingDatagrams)
    udp = incoming.owner
    out: list[dict[str, Any]] = []
    with state.cond:
        while udp.received and len(out) < max_results:
            data, addr = udp.received.popleft()
            if incoming.remote is not None and addr != incoming.remote:
                continue  # from another peer: a connected socket never sees it
            out.append({"data": data, "remote-address": addr.wit()})
    return ok(out)


def incoming_subscribe(state: HostState, rep: int) -> int:
    udp = state.table.get(rep, IncomingDatagrams).owner
    return state.table.push(Pollable(lambda: bool(udp.received) or udp.closed))


def check_send(state: HostState, rep: int) -> tuple[str, Any]:
    outgoing = state.table.get(rep, OutgoingDatagrams)
    if outgoing.permit == 0:
        outgoing.permit = SEND_PERMIT
    return ok(outgoing.permit)


def _send_one(state: HostState, outgoing: OutgoingDatagrams, datagram: dict[str, Any]) -> str | None:
    """Send one datagram; the error code if it was not sent."""
    data: bytes = datagram["data"]
    if len(data) > MAX_DATAGRAM:
        return "datagram-too-large"
    given = datagram["remote-address"]
    provided = from_wit(given) if given is not None else None
    if outgoing.remote is None:
        if provided is None:
            return "invalid-argument"
        if not permitted(state, "udp", provided):
            return "access-denied"
        addr = provided
    elif provided is None or provided == outgoing.remote:
        addr = outgoing.remote
    else:
        return "invalid-argument"
    if not valid_remote(addr) or not valid_family(addr.ip, outgoing.owner.family):
        return "invalid-argument"
    try:
        outgoing.owner.sock.sendto(data, socket.MSG_DONTWAIT, addr.os())
    except OSError as exc:
        return code_of(exc)
    return None


def send(state: HostState, rep: int, datagrams: list[dict[str, Any]]) -> tuple[str, Any]:
    outgoing = state.table.get(rep, OutgoingDatagrams)
    if outgoing.permit == 0:
        raise HostTrap("outgoing-datagram-stream.send: check-send was not called first")
    if len(datagrams) > outgoing.permit:
        raise HostTrap("outgoing-datagram-stream.send: more datagrams than check-send permitted")
    outgoing.permit = 0
    sent = 0
    for datagram in datagrams:
        code = _send_one(state, outgoing, datagram)
        if code is None:
            sent += 1
        elif sent or code == "would-block":
            break  # the WIT: once one datagram is sent, report the count, never an error
        else:
            return fail(code)
    return ok(sent)


def outgoing_subscribe(state: HostState, rep: int) -> int:
    state.table.get(rep, OutgoingDatagrams)
    return state.table.push(Pollable(lambda: True))


_HOPS = _sockopt(socket.IPPROTO_IP, socket.IP_TTL, (socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS))
_RCVBUF = _sockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
_SNDBUF = _sockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)

_M = "[method]udp-socket."
INTERFACES = [
    HostInterface("wasi:sockets/udp-create-socket", {"create-udp-socket": create_udp_socket}),
    HostInterface("wasi:sockets/udp", {
        _M + "start-bind": start_bind, _M + "finish-bind": finish_bind, _M + "stream": stream,
        _M + "local-address": local_address, _M + "remote-address": remote_address,
        _M + "address-family": address_family,
        _M + "unicast-hop-limit": _HOPS[0], _M + "set-unicast-hop-limit": _HOPS[1],
        _M + "receive-buffer-size": _RCVBUF[0], _M + "set-receive-buffer-size": _RCVBUF[1],
        _M + "send-buffer-size": _SNDBUF[0], _M + "set-send-buffer-size": _SNDBUF[1],
        _M + "subscribe": subscribe,
        "[method]incoming-datagram-stream.receive": receive,
        "[method]incoming-datagram-stream.subscribe": incoming_subscribe,
        "[method]outgoing-datagram-stream.check-send": check_send,
        "[method]outgoing-datagram-stream.send": send,
        "[method]outgoing-datagram-stream.subscribe": outgoing_subscribe,
    }, ("udp-socket", "incoming-datagram-stream", "outgoing-datagram-stream")),
]
