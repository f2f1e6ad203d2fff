"""wasi:sockets/tcp 0.2: outbound TCP connections, gated by `allowed_outbound_hosts` as Spin gates them.

The state machine and error codes are wasmtime-wasi's p2 `tcp-socket`. Spin refuses every TCP bind
(`access-denied`), so a socket is never bound and `start-listen` answers `invalid-state`, `accept` too.

Nothing here blocks the event loop: guests run on their own threads, and each socket has helper threads
(connect, then one reading into a bounded pipe and one writing from one) that wake a blocked guest
through the request's Condition, so `poll`, the request deadline and the run-slot hand-off all apply.
A socket still open when the request ends is shut down and closed (the peer sees EOF).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any

from tauon.hostif.io import InputStream, OutputStream, Pollable, StreamFailed
from tauon.hostif.netaddr import (
    SockAddr,
    SocketError,
    code_of,
    fail,
    from_os,
    from_wit,
    os_socket,
    permitted,
    remaining,
    take_socket_slot,
    valid_family,
    valid_remote,
    valid_unicast,
)
from tauon.hostif.pipe import BytePipe, PipeError
from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState
from tauon.wasm.component.codec import ok

BUFFER = 64 * 1024
"""Bytes buffered per direction per connection."""
LINGER = 5.0
"""Seconds a dropped socket may spend sending what the guest wrote before it is closed anyway."""
NS = 1_000_000_000


class TcpInput(InputStream):
    def __init__(self, conn: TcpSocket) -> None:
        self.conn = conn

    def read(self, n: int) -> bytes | None:
        try:
            return self.conn.inbound.read(n)
        except PipeError as exc:
            raise StreamFailed(str(exc), net_code=self.conn.error_code) from exc

    def ready(self) -> bool:
        return self.conn.inbound.readable()

    def on_drop(self) -> None:
        self.conn.inbound.abandon()


class TcpOutput(OutputStream):
    def __init__(self, conn: TcpSocket) -> None:
        self.conn = conn

    def capacity(self) -> int:
        conn = self.conn
        if conn.write_error is not None:
            raise StreamFailed(conn.write_error, net_code=conn.error_code)
        if conn.outbound.closed:
            raise StreamFailed("the socket's send side is shut down")
        return conn.outbound.space()

    def write(self, data: bytes) -> None:
        try:
            self.conn.outbound.write(data)
        except PipeError as exc:
            raise StreamFailed(str(exc), net_code=self.conn.error_code) from exc

    def ready(self) -> bool:
        conn = self.conn
        return conn.write_error is not None or conn.outbound.writable()

    def flushed(self) -> bool:
        conn = self.conn
        return conn.write_error is not None or (not conn.outbound.readable() and not conn.sending)


class TcpSocket:
    """One guest TCP socket. Phases: default -> connecting -> connect-ready -> connected | closed."""

    def __init__(self, state: HostState, family: str) -> None:
        self.state = state
        self.family = family
        self.sock = os_socket(family, socket.SOCK_STREAM)
        self.phase = "default"
        self.connect_result: BaseException | None = None
        self.inbound = BytePipe(state.cond, BUFFER)
        self.outbound = BytePipe(state.cond, BUFFER)
        self.sending = False
        self.write_error: str | None = None
        self.error_code: str | None = None
        self.dropped = False
        self.writer_done = False
        self.backlog = 128

    # -- connect ---------------------------------------------------------------------------------

    def start_connect(self, addr: SockAddr) -> None:
        if self.phase == "connecting":
            raise SocketError("concurrency-conflict")
        if self.phase != "default":
            raise SocketError("invalid-state")
        if not valid_unicast(addr.ip) or not valid_remote(addr) or not valid_family(addr.ip, self.family):
            raise SocketError("invalid-argument")
        self.phase = "connecting"
        threading.Thread(target=self._connect, args=(addr, remaining(self.state)),
                         name=f"tauon-tcp-connect {self.state.config.label}", daemon=True).start()

    def _connect(self, addr: SockAddr, timeout: float) -> None:
        result: BaseException | None = None
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(addr.os())
            self.sock.settimeout(None)
        except OSError as exc:
            result = exc
        with self.state.cond:
            self.connect_result = result
            self.phase = "connect-ready"
            self.state.cond.notify_all()
            if self.dropped:
                self._close_now()

    def finish_connect(self) -> tuple[TcpInput, TcpOutput]:
        if self.phase == "connecting":
            raise SocketError("would-block")
        if self.phase != "connect-ready":
            raise SocketError("not-in-progress")
        if self.connect_result is not None:
            self.phase = "closed"
            self._close_now()
            raise SocketError(code_of(self.connect_result))
        self.phase = "connected"
        label = self.state.config.label
        threading.Thread(target=self._reader, name=f"tauon-tcp-read {label}", daemon=True).start()
        threading.Thread(target=self._writer, name=f"tauon-tcp-write {label}", daemon=True).start()
        return TcpInput(self), TcpOutput(self)

    # -- the helper threads ------------------------------------------------------------------------

    def _reader(self) -> None:
        pipe, cond = self.inbound, self.state.cond
        try:
            while True:
                data = self.sock.recv(BUFFER)
                if not data:
                    pipe.close()
                    return
                with cond:
                    cond.wait_for(pipe.writable)
                    if pipe.reader_gone:
                        return
                pipe.write(data)
        except (OSError, PipeError) as exc:
            self.error_code = self.error_code or code_of(exc)
            pipe.close(error=f"receiving failed: {exc}")

    def _writer(self) -> None:
        pipe, cond = self.outbound, self.state.cond
        try:
            while True:
                with cond:
                    cond.wait_for(pipe.readable)
                    data = pipe.read(BUFFER)
                    self.sending = data is not None
                if data is None:  # shut down for sending, or dropped: what was written has gone out
                    if not self.dropped:
                        self.sock.shutdown(socket.SHUT_WR)
                    break
                self.sock.sendall(data)
                with cond:
                    self.sending = False
                    cond.notify_all()
        except OSError as exc:
            with cond:
                self.error_code = self.error_code or code_of(exc)
                self.write_error = f"sending failed: {exc}"
                self.sending = False
                cond.notify_all()
        with cond:  # whichever of this thread and on_drop comes last closes the socket
            self.writer_done = True
            close = self.dropped
        if close:
            self._close_now()

    # -- teardown ----------------------------------------------------------------------------------

    def _close_now(self) -> None:
        with contextlib.suppress(OSError):  # not connected (or already reset): close all the same
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()

    def on_drop(self) -> None:
        """The guest dropped the socket, or the request ended: send what is buffered, then close."""
        with self.state.cond:
            if self.dropped:
                return
            self.dropped = True
            phase = self.phase
            writing = phase == "connected" and not self.writer_done
            self.inbound.abandon()
            self.outbound.close()
        if writing:
            # The writer thread closes the socket after the buffered bytes; LINGER bounds that.
            with contextlib.suppress(OSError):
                self.sock.settimeout(LINGER)
            return
        if phase != "connecting":  # a connecting socket is closed by its connect thread
            self._close_now()


def _socket(state: HostState, rep: int) -> TcpSocket:
    return state.table.get(rep, TcpSocket)


def _call(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return ok(fn())
    except SocketError as exc:
        return fail(exc.code)
    except OSError as exc:
        return fail(code_of(exc))


def create_tcp_socket(state: HostState, family: str) -> tuple[str, Any]:
    if not take_socket_slot(state):
        return fail("new-socket-limit")
    try:
        return ok(state.table.push(TcpSocket(state, family)))
    except OSError as exc:
        return fail(code_of(exc))


def start_bind(state: HostState, rep: int, network: int, local: Any) -> tuple[str, Any]:
    _socket(state, rep)
    return fail("access-denied")  # Spin refuses every TCP bind: guests never listen


def finish_bind(state: HostState, rep: int) -> tuple[str, Any]:
    _socket(state, rep)
    return fail("not-in-progress")


def start_connect(state: HostState, rep: int, network: int, remote: Any) -> tuple[str, Any]:
    conn = _socket(state, rep)
    addr = from_wit(remote)
    if not permitted(state, "tcp", addr):  # checked first, as wasmtime does
        return fail("access-denied")
    return _call(lambda: conn.start_connect(addr))


def finish_connect(state: HostState, rep: int) -> tuple[str, Any]:
    conn = _socket(state, rep)
    with state.cond:
        result = _call(conn.finish_connect)
    if result[0] == "err":
        return result
    reader, writer = result[1]
    return ok((state.table.push(reader), state.table.push(writer)))


def start_listen(state: HostState, rep: int) -> tuple[str, Any]:
    _socket(state, rep)
    return fail("invalid-state")  # listening needs a bound socket, and binding is refused


def finish_listen(state: HostState, rep: int) -> tuple[str, Any]:
    _socket(state, rep)
    return fail("not-in-progress")


def accept(state: HostState, rep: int) -> tuple[str, Any]:
    _socket(state, rep)
    return fail("invalid-state")


def _open(conn: TcpSocket) -> socket.socket:
    """The OS socket for an option or address call: not while connecting or after closing."""
    if conn.phase in ("connecting", "connect-ready", "closed") or conn.dropped:
        raise SocketError("invalid-state")
    return conn.sock


def local_address(state: HostState, rep: int) -> tuple[str, Any]:
    conn = _socket(state, rep)
    if conn.phase != "connected":
        return fail("invalid-state")
    return _call(lambda: from_os(conn.family, _open(conn).getsockname()).wit())


def remote_address(state: HostState, rep: int) -> tuple[str, Any]:
    conn = _socket(state, rep)
    if conn.phase != "connected":
        return fail("invalid-state")
    return _call(lambda: from_os(conn.family, _open(conn).getpeername()).wit())


def is_listening(state: HostState, rep: int) -> bool:
    _socket(state, rep)
    return False


def address_family(state: HostState, rep: int) -> str:
    return _socket(state, rep).family


def set_listen_backlog_size(state: HostState, rep: int, value: int) -> tuple[str, Any]:
    conn = _socket(state, rep)
    if value == 0:
        return fail("invalid-argument")
    conn.backlog = min(value, 1 << 31)
    return ok()


def _option(level: int, name: int, *, scale: int = 1, minimum: int = 1,
            v6: tuple[int, int] | None = None) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """Getter and setter of one socket option (`scale`: guest units per OS unit, e.g. ns per s)."""
    def where(conn: TcpSocket) -> tuple[int, int]:
        return v6 if v6 is not None and conn.family == "ipv6" else (level, name)

    def get(state: HostState, rep: int) -> tuple[str, Any]:
        conn = _socket(state, rep)
        return _call(lambda: _open(conn).getsockopt(*where(conn)) * scale)

    def set_(state: HostState, rep: int, value: int) -> tuple[str, Any]:
        conn = _socket(state, rep)
        if value < minimum:
            return fail("invalid-argument")
        os_value = max(1, -(-int(value) // scale))  # round up: a guest's 1 ns is 1 s, not 0
        return _call(lambda: _open(conn).setsockopt(*where(conn), min(os_value, 0x7FFFFFFF)))

    return get, set_


def keep_alive_enabled(state: HostState, rep: int) -> tuple[str, Any]:
    conn = _socket(state, rep)
    return _call(lambda: bool(_open(conn).getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)))


def set_keep_alive_enabled(state: HostState, rep: int, value: bool) -> tuple[str, Any]:
    conn = _socket(state, rep)
    return _call(lambda: _open(conn).setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(value)))


def subscribe(state: HostState, rep: int) -> int:
    conn = _socket(state, rep)
    return state.table.push(Pollable(lambda: conn.phase != "connecting"))


def shutdown(state: HostState, rep: int, how: str) -> tuple[str, Any]:
    conn = _socket(state, rep)
    if conn.phase != "connected" or conn.dropped:
        return fail("invalid-state")
    if how in ("send", "both"):
        conn.outbound.close()  # the writer thread shuts the send side once the buffer is out
    if how in ("receive", "both"):
        try:
            conn.sock.shutdown(socket.SHUT_RD)
        except OSError as exc:
            return fail(code_of(exc))
    return ok()


_IDLE = _option(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, scale=NS)
_INTERVAL = _option(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, scale=NS)
_COUNT = _option(socket.IPPROTO_TCP, socket.TCP_KEEPCNT)
_HOPS = _option(socket.IPPROTO_IP, socket.IP_TTL, v6=(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS))
_RCVBUF = _option(socket.SOL_SOCKET, socket.SO_RCVBUF)
_SNDBUF = _option(socket.SOL_SOCKET, socket.SO_SNDBUF)

_M = "[method]tcp-socket."
INTERFACES = [
    HostInterface("wasi:sockets/tcp-create-socket", {"create-tcp-socket": create_tcp_socket}),
    HostInterface("wasi:sockets/tcp", {
        _M + "start-bind": start_bind, _M + "finish-bind": finish_bind,
        _M + "start-connect": start_connect, _M + "finish-connect": finish_connect,
        _M + "start-listen": start_listen, _M + "finish-listen": finish_listen, _M + "accept": accept,
        _M + "local-address": local_address, _M + "remote-address": remote_address,
        _M + "is-listening": is_listening, _M + "address-family": address_family,
        _M + "set-listen-backlog-size": set_listen_backlog_size,
        _M + "keep-alive-enabled": keep_alive_enabled, _M + "set-keep-alive-enabled": set_keep_alive_enabled,
        _M + "keep-alive-idle-time": _IDLE[0], _M + "set-keep-alive-idle-time": _IDLE[1],
        _M + "keep-alive-interval": _INTERVAL[0], _M + "set-keep-alive-interval": _INTERVAL[1],
        _M + "keep-alive-count": _COUNT[0], _M + "set-keep-alive-count": _COUNT[1],
        _M + "hop-limit": _HOPS[0], _M + "set-hop-limit": _HOPS[1],
        _M + "receive-buffer-size": _RCVBUF[0], _M + "set-receive-buffer-size": _RCVBUF[1],
        _M + "send-buffer-size": _SNDBUF[0], _M + "set-send-buffer-size": _SNDBUF[1],
        _M + "subscribe": subscribe, _M + "shutdown": shutdown,
    }, ("tcp-socket",)),
]
