"""Connection balance (server/acceptor.py over server/balance.py) with real sockets on a real event
loop: two acceptors on one listening socket stand for two serving processes (two columns of one
board). In one loop the first acceptor's callback always runs first, so without the balance it would
take every connection; the daemon-and-workers version is in test_daemon_workers.py."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

from support.certs import TestCA
from tauon.server import acceptor as acceptor_module
from tauon.server.acceptor import DEFER, Acceptor, Ticket
from tauon.server.balance import ProcessShares, ShareBoard
from tauon.settings import loop_options

KEY = 3


class Hello(asyncio.Protocol):
    """Says which acceptor took the connection, and gives its ticket back on close (as the HTTP
    protocol does)."""

    ticket: Ticket | None = None

    def __init__(self, who: int, taken: dict[int, int]) -> None:
        self.who, self.taken = who, taken

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.taken[self.who] += 1
        transport.write(str(self.who).encode())  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ticket is not None:
            self.ticket.close()


@pytest.fixture
def board() -> Iterator[ShareBoard]:
    board = ShareBoard.create(2)
    yield board
    board.close()


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    yield sock
    sock.close()


def run(main: Callable[[], object]) -> None:
    anyio.run(main, backend="asyncio", backend_options=loop_options())  # uvloop, as tauon runs


async def connect(port: int) -> tuple[int, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return int(await reader.readexactly(1)), writer


def test_connections_go_to_the_acceptor_holding_fewer(board: ShareBoard, listening: socket.socket) -> None:
    port = listening.getsockname()[1]
    taken = {0: 0, 1: 0}

    async def main() -> None:
        # Each "process" has its own descriptor for the socket, as each process does (a loop
        # watches a descriptor once).
        socks = [listening, listening.dup()]
        acceptors = [Acceptor(socks[who], lambda who=who: Hello(who, taken),  # type: ignore[misc]
                              ProcessShares(board, who).share(KEY)) for who in (0, 1)]
        for acceptor in acceptors:
            acceptor.start()
        with anyio.fail_after(10):
            clients = [await connect(port) for _ in range(9)]
        assert taken == {0: 5, 1: 4} or taken == {0: 4, 1: 5}, taken
        assert sorted(board.open_row(KEY)) == [5, 6]  # 1 + open connections each
        # Closed connections leave the count; the balance follows what is open now.
        for who, writer in clients:
            if who == 0:
                writer.close()
        with anyio.fail_after(10):
            while board.open_row(KEY)[0] != 1:
                await anyio.sleep(0.01)
            more = [await connect(port) for _ in range(4)]
        assert [who for who, _ in more] == [0, 0, 0, 0]
        for acceptor in acceptors:
            acceptor.close()
            await acceptor.wait_closed()
        assert board.open_row(KEY) == [0, 0]  # neither accepts any more
        for _, writer in clients + more:
            writer.close()
        socks[1].close()

    run(main)


def queue_connections(port: int, count: int) -> list[socket.socket]:
    """`count` clients whose handshakes the kernel completes: they wait in the accept queue."""
    return [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]


async def turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


def test_a_lone_acceptor_takes_a_whole_burst_in_one_wake_up(listening: socket.socket) -> None:
    """uvloop (libuv since 1.45) accepts one connection per loop turn, so under load a burst took as
    many turns as it had connections; this takes them all at once."""
    taken = {0: 0}

    async def main() -> None:
        clients = queue_connections(listening.getsockname()[1], 40)
        acceptor = Acceptor(listening, lambda: Hello(0, taken), None)
        acceptor.start()
        await turns(4)  # one to accept, the rest for each connection's setup task
        assert taken == {0: 40}
        acceptor.close()
        for client in clients:
            client.close()

    run(main)


def test_a_burst_is_split_in_one_pass_per_process(board: ShareBoard, listening: socket.socket) -> None:
    """64 connections wait and the other process is busy (accepting, but its loop has not come round):
    this one takes its even part, 32, at once, instead of one before each hand-over."""
    port = listening.getsockname()[1]
    taken = {0: 0, 1: 0}

    async def main() -> None:
        clients = queue_connections(port, 64)
        other = ProcessShares(board, 1).share(KEY)
        other.start()
        first = Acceptor(listening, lambda: Hello(0, taken), ProcessShares(board, 0).share(KEY))
        first.start()
        await turns(2)
        assert board.open_row(KEY) == [33, 1]  # 1 + open each: 32 taken, then it stepped aside
        second = Acceptor(listening.dup(), lambda: Hello(1, taken), other)
        second.start()
        await turns(4)
        assert board.open_row(KEY) == [33, 33] and taken == {0: 32, 1: 32}
        for acceptor in (first, second):
            acceptor.close()
        second.sock.close()
        for client in clients:
            client.close()

    run(main)


def test_a_process_that_takes_nothing_is_not_waited_for(board: ShareBoard, listening: socket.socket) -> None:
    """The other process accepts on the socket (its cell says so) but never takes a connection: a
    stuck loop. Every connection is still accepted, after about DEFER each."""
    port = listening.getsockname()[1]
    taken = {0: 0}

    async def main() -> None:
        ProcessShares(board, 1).share(KEY).start()  # accepting, holding nothing, and stuck
        acceptor = Acceptor(listening, lambda: Hello(0, taken), ProcessShares(board, 0).share(KEY))
        acceptor.start()
        loop = asyncio.get_running_loop()
        with anyio.fail_after(10):
            started = loop.time()
            clients = [await connect(port) for _ in range(5)]
            took = loop.time() - started
        assert taken == {0: 5} and board.open_row(KEY) == [6, 1]
        assert took >= 4 * DEFER  # the last four each waited for the stuck one first
        acceptor.close()
        for _, writer in clients:
            writer.close()

    run(main)


def test_a_connection_that_never_starts_gives_its_place_back(board: ShareBoard, listening: socket.socket,
                                                              tmp_path: Path) -> None:
    """A TLS handshake that fails ends the connection before the protocol sees it: its count goes."""
    leaf = TestCA(tmp_path / "ca").issue("server")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(leaf.cert, leaf.key)
    port = listening.getsockname()[1]
    taken = {0: 0}

    async def main() -> None:
        acceptor = Acceptor(listening, lambda: Hello(0, taken), ProcessShares(board, 0).share(KEY),
                            ssl_context=context)
        acceptor.start()
        with anyio.fail_after(10):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\n\r\n")  # plain HTTP to a TLS port: the handshake fails
            await reader.read()
            writer.close()
            while board.open_row(KEY) != [1, 0]:
                await anyio.sleep(0.01)
        assert taken == {0: 0}
        acceptor.close()
        await acceptor.wait_closed()

    run(main)


class OutOfDescriptorsOnce:
    """The listening socket, except that its first accept fails as it does when the process has no
    descriptor free (EMFILE), which a test cannot bring about without starving itself."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.failed = sock, False

    def fileno(self) -> int:
        return self.sock.fileno()

    def getsockname(self) -> object:
        return self.sock.getsockname()

    def accept(self) -> tuple[socket.socket, object]:
        if not self.failed:
            self.failed = True
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()


def test_out_of_descriptors_pauses_accepting_then_goes_on(board: ShareBoard, listening: socket.socket,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(acceptor_module, "RETRY_AFTER", 0.2)
    port = listening.getsockname()[1]
    taken = {0: 0}
    flaky = OutOfDescriptorsOnce(listening)

    async def main() -> None:
        acceptor = Acceptor(flaky, lambda: Hello(0, taken),  # type: ignore[arg-type]
                            ProcessShares(board, 0).share(KEY))
        acceptor.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with anyio.fail_after(10):
            who, writer = await connect(port)
        # Paused for RETRY_AFTER (the loop's clock counts in ms), not spinning on the failing socket.
        assert who == 0 and loop.time() - started >= 0.15
        acceptor.close()
        writer.close()

    run(main)
    assert flaky.failed and "Too many open files; pausing accepts" in caplog.text
