"""wasi:sockets building blocks: addresses, validity, Spin's allowed-hosts check of socket addresses,
error codes, the per-request socket budget; and the v1 outbound HTTP checks that need no network."""

from __future__ import annotations

import errno
import ipaddress
import logging
import time

import pytest

from support.servers.echo import TcpEchoServer
from tauon.app.allowed_hosts import parse_allowed_hosts
from tauon.hostif import io, sockets, sockets_tcp
from tauon.hostif.http_buffered import DESTINATION_NOT_ALLOWED, INVALID_URL, HttpError, LegacyHttp, send
from tauon.hostif.netaddr import (
    MAX_SOCKETS_PER_REQUEST,
    SockAddr,
    code_of,
    from_os,
    from_wit,
    permitted,
    valid_family,
    valid_remote,
    valid_unicast,
)
from tauon.hostif.state import HostConfig, HostState


def _state(*entries: str, variables: dict[str, str] | None = None) -> HostState:
    values = variables or {}
    allowed = parse_allowed_hosts(list(entries), resolve=lambda name: values[name]) if entries else None
    config = HostConfig(label="t/c", logger=logging.getLogger("test.sockets"), allowed_hosts=allowed)
    return HostState(config, timeout=5)


def test_addresses_cross_as_wit_and_os_values() -> None:
    v4 = from_wit(("ipv4", {"port": 7, "address": (127, 0, 0, 1)}))
    assert v4 == SockAddr(ipaddress.IPv4Address("127.0.0.1"), 7)
    assert (v4.text(), v4.os(), v4.wit()) == ("127.0.0.1:7", ("127.0.0.1", 7),
                                              ("ipv4", {"port": 7, "address": (127, 0, 0, 1)}))
    wit6 = ("ipv6", {"port": 443, "flow-info": 0, "address": (0, 0, 0, 0, 0, 0, 0, 1), "scope-id": 0})
    v6 = from_wit(wit6)
    assert (v6.text(), v6.os(), v6.wit()) == ("[::1]:443", ("::1", 443, 0, 0), wit6)
    assert from_os("ipv6", ("::1", 443, 0, 0)) == v6


def test_address_validity_as_wasmtime_checks_it() -> None:
    ip = ipaddress.ip_address
    assert valid_unicast(ip("10.0.0.1")) and not valid_unicast(ip("224.0.0.1"))
    assert not valid_unicast(ip("255.255.255.255")) and not valid_unicast(ip("ff02::1"))
    assert not valid_remote(SockAddr(ip("0.0.0.0"), 80)) and not valid_remote(SockAddr(ip("1.2.3.4"), 0))
    assert valid_family(ip("1.2.3.4"), "ipv4") and not valid_family(ip("::1"), "ipv4")
    assert valid_family(ip("::1"), "ipv6")
    assert not valid_family(ip("::ffff:1.2.3.4"), "ipv6")  # IPv4-mapped
    assert not valid_family(ip("::1.2.3.4"), "ipv6")  # IPv4-compatible


@pytest.mark.parametrize(("entries", "scheme", "addr", "allowed"), [
    (["*://127.0.0.1:7"], "tcp", "127.0.0.1:7", True),
    (["*://127.0.0.1:7"], "udp", "127.0.0.1:7", True),
    (["*://127.0.0.1:7"], "tcp", "127.0.0.1:8", False),
    (["*://127.0.0.2:7"], "tcp", "127.0.0.1:7", False),
    (["tcp://127.0.0.1:7"], "udp", "127.0.0.1:7", False),
    (["http://127.0.0.1:7"], "tcp", "127.0.0.1:7", False),
    (["*://127.0.0.0/24:7"], "tcp", "127.0.0.200:7", True),
    (["*://127.0.0.0/24:7"], "tcp", "127.0.1.1:7", False),
    (["tcp://127.0.0.1:7000..7010"], "tcp", "127.0.0.1:7009", True),
    (["tcp://127.0.0.1:7000..7010"], "tcp", "127.0.0.1:7010", False),
    (["tcp://[::1]:*"], "tcp", "[::1]:9", True),
    (["*://*:*"], "udp", "10.1.2.3:53", True),
    ([], "tcp", "127.0.0.1:7", False),
])
def test_socket_addresses_are_checked_as_spin_checks_them(entries: list[str], scheme: str, addr: str,
                                                         allowed: bool) -> None:
    host, _, port = addr.rpartition(":")
    sock_addr = SockAddr(ipaddress.ip_address(host.strip("[]")), int(port))
    assert permitted(_state(*entries), scheme, sock_addr) is allowed


def test_templated_entries() -> None:
    state = _state("*://{{ prefix }}/{{ bits }}:7", variables={"prefix": "127.0.0.0", "bits": "24"})
    assert permitted(state, "tcp", SockAddr(ipaddress.IPv4Address("127.0.0.9"), 7))


def test_os_errors_map_to_error_codes() -> None:
    assert code_of(ConnectionRefusedError(errno.ECONNREFUSED, "refused")) == "connection-refused"
    assert code_of(OSError(errno.ECONNRESET, "reset")) == "connection-reset"
    assert code_of(OSError(errno.EADDRINUSE, "in use")) == "address-in-use"
    assert code_of(TimeoutError()) == "timeout"
    assert code_of(OSError(errno.ENOTSOCK, "odd")) == "unknown"


def test_sockets_per_request_are_bounded() -> None:
    state = _state("*://*:*")
    made = [sockets_tcp.create_tcp_socket(state, "ipv4") for _ in range(MAX_SOCKETS_PER_REQUEST)]
    assert all(result[0] == "ok" for result in made)
    assert sockets_tcp.create_tcp_socket(state, "ipv6") == ("err", "new-socket-limit")
    state.finish()  # closes every socket


def test_binding_and_listening_are_refused_whatever_is_allowed() -> None:
    state = _state("*://*:*")
    rep = sockets_tcp.create_tcp_socket(state, "ipv4")[1]
    net = sockets.instance_network(state)
    local = ("ipv4", {"port": 0, "address": (127, 0, 0, 1)})
    assert sockets_tcp.start_bind(state, rep, net, local) == ("err", "access-denied")
    assert sockets_tcp.start_listen(state, rep) == ("err", "invalid-state")
    assert sockets_tcp.finish_connect(state, rep) == ("err", "not-in-progress")
    state.finish()


def test_name_lookups_fail_as_in_spin() -> None:
    state = _state("*://*:*")
    net = sockets.instance_network(state)
    for name in ("localhost", "example.com", "127.0.0.1", "::1"):
        assert sockets.resolve_addresses(state, net, name) == ("err", "permanent-resolver-failure")
    for bad in ("", "a b", "exa mple.com"):
        assert sockets.resolve_addresses(state, net, bad) == ("err", "invalid-argument")


def _v1(*entries: str, origin: tuple[str, int] | None = None) -> LegacyHttp:
    allowed = parse_allowed_hosts(list(entries))
    return LegacyHttp(allowed.allows, lambda: allowed.allows_relative(["http", "https"]), 1e18,
                      self_origin=origin)


@pytest.mark.parametrize(("entries", "uri", "case"), [
    (["https://example.com"], "http://example.com/", DESTINATION_NOT_ALLOWED),
    (["https://example.com"], "not a url", DESTINATION_NOT_ALLOWED),
    (["https://example.com"], "/relative", DESTINATION_NOT_ALLOWED),
    (["http://self"], "/relative", INVALID_URL),  # allowed, but no origin to send it to
    (["http://127.0.0.1:9"], "http://127.0.0.1:9/a b", INVALID_URL),
    (["http://127.0.0.1:9"], "http://127.0.0.1:9/\u00e9", INVALID_URL),
])
def test_v1_outbound_http_refusals(entries: list[str], uri: str, case: int) -> None:
    with pytest.raises(HttpError) as caught:
        send(_v1(*entries), "GET", uri, [], None)
    assert caught.value.case == case


def _connected(state: HostState, port: int) -> tuple[int, int, int]:
    rep = sockets_tcp.create_tcp_socket(state, "ipv4")[1]
    net = sockets.instance_network(state)
    remote = ("ipv4", {"port": port, "address": (127, 0, 0, 1)})
    assert sockets_tcp.start_connect(state, rep, net, remote) == ("ok", None)
    state.wait_until(lambda: state.table.get(rep, sockets_tcp.TcpSocket).phase != "connecting", "test")
    result = sockets_tcp.finish_connect(state, rep)
    assert result[0] == "ok", result
    return rep, *result[1]


@pytest.mark.parametrize("shutdown_first", [False, True])
def test_a_socket_left_open_sends_what_was_written_then_closes(shutdown_first: bool) -> None:
    """Loopback TCP to the test's echo server, driven without a guest: at the end of the request the
    bytes written go out, the peer sees EOF and the socket is closed (not left to the collector),
    whether its send side was shut down first or not."""
    server = TcpEchoServer()
    try:
        state = _state(f"tcp://127.0.0.1:{server.port}")
        rep, _rx, tx = _connected(state, server.port)
        assert io.output_blocking_write_and_flush(state, tx, b"hello") == ("ok", None)
        conn = server.wait_connections(1)[0]
        if shutdown_first:
            assert sockets_tcp.shutdown(state, rep, "send") == ("ok", None)
            assert conn.eof.wait(10)  # the send side is shut before the request ends
        sock = state.table.get(rep, sockets_tcp.TcpSocket).sock
        state.finish()
        assert conn.eof.wait(10)
        assert bytes(conn.received) == b"hello"
        deadline = time.monotonic() + 10
        while sock.fileno() != -1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sock.fileno() == -1
    finally:
        server.close()
