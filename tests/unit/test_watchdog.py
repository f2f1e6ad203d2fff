"""The watchdog that bounds blocking database calls, the socket it cuts them with, and `call_before`
(connecting)."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from tauon.services.watchdog import LateResult, SocketCut, Watchdog, call_before


def test_guard_fires_only_for_a_block_still_running_at_its_deadline() -> None:
    dog = Watchdog()
    fired = threading.Event()
    with dog.guard(time.monotonic() + 0.05, fired.set):
        assert fired.wait(10), "a block past its deadline must be cut"
    quiet = threading.Event()
    with dog.guard(time.monotonic() + 0.2, quiet.set):
        pass  # finished in time
    with dog.guard(time.monotonic() + 0.3, lambda: None):
        time.sleep(0.4)  # a later deadline that did pass: the earlier, finished guard stayed quiet
    assert not quiet.is_set()


def test_finished_guards_leave_nothing_behind() -> None:
    dog = Watchdog()
    for _ in range(1000):
        with dog.guard(time.monotonic() + 30, lambda: None):
            pass
    assert (len(dog._heap), len(dog._live)) == (0, 0)


def test_call_before_returns_raises_or_hands_a_late_result_over() -> None:
    assert call_before(time.monotonic() + 5, lambda: 7, lambda v: None) == 7
    with pytest.raises(ZeroDivisionError):
        call_before(time.monotonic() + 5, lambda: 1 // 0, lambda v: None)
    release, discarded = threading.Event(), threading.Event()
    got: list[int] = []

    def slow() -> int:
        release.wait(10)
        return 5

    with pytest.raises(LateResult):
        call_before(time.monotonic() + 0.05, slow, lambda v: (got.append(v), discarded.set()))
    release.set()
    assert discarded.wait(10) and got == [5]


def test_disarm_waits_for_a_callback_already_running() -> None:
    """After `disarm` returns the callback has finished: a caller may then close what it acts on."""
    dog = Watchdog()
    started, release = threading.Event(), threading.Event()
    token = dog.arm(time.monotonic(), lambda: (started.set(), release.wait(10)))
    assert started.wait(10)
    disarmed = threading.Event()
    waiter = threading.Thread(target=lambda: (dog.disarm(token), disarmed.set()))
    waiter.start()
    assert not disarmed.wait(0.3), "disarm returned while the callback still ran"
    release.set()
    assert disarmed.wait(10)
    waiter.join()
    # a callback may disarm its own entry without waiting for itself
    done = threading.Event()
    box: list[int] = []
    box.append(dog.arm(time.monotonic(), lambda: (dog.disarm(box[0]), done.set())))
    assert done.wait(10)


def _pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)


def test_socket_cut_reaches_only_its_own_socket_after_the_client_let_go() -> None:
    """The client library closes its descriptor (a lost connection) and another connection reuses the
    number: a cut still shuts down the first connection's socket only."""
    client, server = _pair()
    other, peer = _pair()
    cut = SocketCut(client.fileno())
    number = client.fileno()
    client.close()  # the library lets go
    os.dup2(other.fileno(), number)  # the number now names another connection's socket
    reused = socket.socket(fileno=number)
    other.close()
    try:
        cut.cut()
        assert cut.cut_down
        assert server.recv(1) == b""  # the first connection was shut down: its peer sees the end
        reused.sendall(b"x")
        assert peer.recv(1) == b"x"  # the other one still works
    finally:
        cut.close()
        for sock in (server, peer, reused):
            sock.close()


def test_socket_cut_running_cuts_only_between_begin_and_end() -> None:
    client, server = _pair()
    cut = SocketCut(client.fileno())
    try:
        cut.cut_running()  # no call running: nothing happens
        client.sendall(b"a")
        assert server.recv(1) == b"a" and not cut.cut_down
        cut.begin()
        cut.cut_running()
        cut.end()
        assert cut.cut_down and server.recv(1) == b""
        cut.close()
        cut.cut()  # after close: the socket is no longer tauon's to touch
    finally:
        client.close()
        server.close()
