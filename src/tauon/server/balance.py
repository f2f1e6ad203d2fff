"""How many client connections each serving process holds on each listening socket, in memory every
process shares, so that a new connection goes to the process holding the fewest (Envoy's "exact"
connection balance).

Every process accepts on the same listening socket (workers/). Left to the kernel, whichever process
wakes first takes the connection, and keep-alive connections stay where they land: a wrk run at 8
connections split them 7/1 or 5/3 between two processes, and the busier one's queue set the p99
(`bench/connection_split.py`). With a board, a process that holds more of an address's connections
than another process serving it leaves the next connection to that one (server/acceptor.py).

The board is a memfd the daemon creates and every worker maps (passed at spawn): a row per listening
socket, and in it three cells per process, each written by that process only: 1 + its open
connections while it accepts there (0: it does not), how many it has accepted in all (so a process
that leaves a connection to another can tell whether that one is taking any), and whether it has
stepped aside. 8-byte aligned cells are read and written whole, so a reader never sees a torn value.
With it go one eventfd per process (`wakers`): a process about to step aside wakes one that stepped
aside earlier and now holds fewer, so the two never both wait (server/acceptor.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import mmap
import os
from collections.abc import Callable, Sequence

ROWS = 16384
"""Listening sockets a board has room for; a row is reused only after this many more were opened."""
_CELLS = 3  # per process and row: open + 1 (0 = not accepting), accepted in all, stepped aside (1/0)


def busier(row: Sequence[int], me: int, waiting: int = 0) -> bool:
    """True when this process (column `me`) holds more open connections than some other process
    accepting on the same socket: it should leave the next connection to that one. `row` holds each
    process's 1 + open connections, 0 for one that does not accept there.

    `waiting`: connections queued on the socket. A process holding less than its even part of the
    open and the waiting ones together takes on: a burst is then spread in one pass per process,
    not in one hand-over per connection, each waiting for the other process's loop to come round
    (wrk's 64 new connections took 30 hand-overs, half a second under load)."""
    mine = row[me]
    if not any(0 < theirs < mine for index, theirs in enumerate(row) if index != me):
        return False
    if waiting <= 0:
        return True
    accepting = [theirs - 1 for theirs in row if theirs > 0]
    even = -(-(sum(accepting) + waiting) // len(accepting))  # ceiling
    return mine - 1 >= even


class ShareBoard:
    """The shared table. `processes` columns; the daemon is process 0."""

    def __init__(self, fd: int, wakers: Sequence[int]) -> None:
        self.fd = fd
        self.wakers = list(wakers)
        self.processes = len(self.wakers)
        self._map = mmap.mmap(fd, ROWS * self.processes * _CELLS * 8)
        self._cells = memoryview(self._map).cast("q")

    @classmethod
    def create(cls, processes: int) -> ShareBoard:
        """A new board (the daemon's); its fds are inherited by workers as they are spawned."""
        fd = os.memfd_create("tauon-connections")  # close-on-exec: workers get it through pass_fds
        os.ftruncate(fd, ROWS * processes * _CELLS * 8)
        return cls(fd, [os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC) for _ in range(processes)])

    @property
    def fds(self) -> list[int]:
        """What a worker is spawned with, in `attach`'s order."""
        return [self.fd, *self.wakers]

    @classmethod
    def attach(cls, fds: Sequence[int]) -> ShareBoard:
        """A worker's view of the daemon's board, from the fds it was spawned with."""
        return cls(fds[0], fds[1:])

    def _at(self, row: int, process: int) -> int:
        return (row * self.processes + process) * _CELLS

    def open_row(self, row: int) -> list[int]:
        """Each process's 1 + open connections on `row` (0: not accepting there)."""
        cells = self._cells
        base = row * self.processes * _CELLS
        return [cells[base + _CELLS * p] for p in range(self.processes)]

    def accepted(self, row: int, process: int) -> int:
        return self._cells[self._at(row, process) + 1]

    def aside(self, row: int, process: int) -> bool:
        return self._cells[self._at(row, process) + 2] == 1

    def write(self, row: int, process: int, open_plus_one: int, accepted: int, aside: bool = False) -> None:
        at = self._at(row, process)
        self._cells[at] = open_plus_one
        self._cells[at + 1] = accepted
        self._cells[at + 2] = int(aside)

    def wake(self, process: int) -> None:
        os.eventfd_write(self.wakers[process], 1)

    def clear(self, row: int) -> None:
        """A new listening socket starts from nothing in every process."""
        for process in range(self.processes):
            self.write(row, process, 0, 0)

    def clear_process(self, process: int, rows: Sequence[int]) -> None:
        """`process` has died: it accepts nowhere, and its connections went with it."""
        for row in rows:
            self.write(row, process, 0, 0)

    def connections(self, process: int, rows: Sequence[int]) -> int:
        """Open connections of `process` over `rows`."""
        return sum(max(0, self._cells[self._at(row, process)] - 1) for row in rows)

    def close(self) -> None:
        self._cells.release()
        self._map.close()
        for fd in self.fds:
            os.close(fd)


class Share:
    """One process's cells on one listening socket's row, and what it decides from the row."""

    def __init__(self, shares: ProcessShares, row: int) -> None:
        self.shares = shares
        self.board, self.row, self.me = shares.board, row, shares.me
        self.open = 0
        self.accepted = 0
        self.accepting = False
        self.aside = False

    def _publish(self) -> None:
        self.board.write(self.row, self.me, self.open + 1 if self.accepting else 0, self.accepted,
                         self.aside)

    def start(self) -> None:
        self.accepting = True
        self._publish()

    def stop(self) -> None:
        """No more accepts here; connections still open keep their count to themselves."""
        self.accepting = False
        self.step_aside(None)

    def took(self) -> None:
        self.open += 1
        self.accepted += 1
        self._publish()

    def let_go(self) -> None:
        self.open -= 1
        self._publish()

    def busier(self, waiting: int = 0) -> bool:
        return busier(self.board.open_row(self.row), self.me, waiting)

    def step_aside(self, look_again: Callable[[], None] | None) -> None:
        """Mark this process as leaving the socket to the others, `look_again` being what this
        process's waker calls then (None: back to accepting). Stepping aside, it wakes every process
        that stepped aside before and now holds fewer connections than this one."""
        self.aside = look_again is not None
        if look_again is not None:
            self.shares.stepped[self.row] = look_again
        else:
            self.shares.stepped.pop(self.row, None)
        self._publish()
        if self.aside:
            row = self.board.open_row(self.row)
            mine = row[self.me]
            for process, theirs in enumerate(row):
                if process != self.me and 0 < theirs < mine and self.board.aside(self.row, process):
                    self.board.wake(process)

    def others_accepted(self) -> int:
        """What every other process has accepted on this socket, in all (moves while they take any)."""
        return sum(self.board.accepted(self.row, p) for p in range(self.board.processes) if p != self.me)


class ProcessShares:
    """This process's place on the board: its column, and its waker, which re-examines every socket
    this process stepped aside from (`stepped`: the acceptors' callbacks, by row)."""

    def __init__(self, board: ShareBoard, me: int) -> None:
        self.board, self.me = board, me
        self.stepped: dict[int, Callable[[], None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def share(self, key: int) -> Share:
        return Share(self, key % ROWS)

    def listen(self, loop: asyncio.AbstractEventLoop) -> None:
        """Watch this process's waker on `loop` (once per loop)."""
        if self._loop is not loop:
            loop.add_reader(self.board.wakers[self.me], self._woken)
            self._loop = loop

    def _woken(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.board.wakers[self.me])
        for look_again in list(self.stepped.values()):
            look_again()


class ListenerKeys:
    """The daemon's names for its listening sockets. A key is also a row of the board (key % ROWS), so
    a new key skips rows still in use; keys are never reused, so a worker never confuses a socket it
    still drains with a new one."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._rows: dict[int, int] = {}  # row -> key

    def take(self, board: ShareBoard | None = None) -> int:
        while True:
            key = next(self._next)
            if key % ROWS not in self._rows or len(self._rows) >= ROWS:
                break
        self._rows[key % ROWS] = key
        if board is not None:
            board.clear(key % ROWS)
        return key

    def release(self, key: int) -> None:
        if self._rows.get(key % ROWS) == key:
            del self._rows[key % ROWS]

    def rows(self) -> list[int]:
        return list(self._rows)


KEYS = ListenerKeys()
"""The daemon's keys (a worker is told each key by the daemon)."""
