"""The connection board (server/balance.py): the pure rule, the shared table over a real memfd, and the
daemon's listener keys."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tauon.server.balance import ROWS, ListenerKeys, ProcessShares, ShareBoard, busier


@pytest.mark.parametrize(("row", "me", "expected"), [
    ([1, 1], 0, False),          # both accept, neither holds a connection
    ([2, 1], 0, True),           # one more than the other: leave the next one to it
    ([2, 1], 1, False),
    ([3, 3, 2], 0, True),        # any less busy process is enough
    ([2, 3, 4], 0, False),       # the least busy takes it
    ([5, 0], 0, False),          # 0: the other does not accept on this socket (not started, or died)
    ([0, 1], 0, False),          # this process does not accept here at all
    ([2, 2, 0, 2], 3, False),    # ties take it
])
def test_a_process_steps_aside_only_for_one_that_holds_fewer(row: list[int], me: int, expected: bool) -> None:
    assert busier(row, me) is expected


@pytest.mark.parametrize(("row", "me", "waiting", "expected"), [
    ([2, 1], 0, 0, True),        # nothing queued: the counts alone decide
    ([2, 1], 0, 1, True),        # open 1 + 0, one queued: 1 is already this process's even part
    ([2, 1], 0, 2, False),       # a burst: two each in the end, so take on
    ([17, 1], 0, 48, False),     # 16 open, 48 queued: it takes on up to 32
    ([32, 1], 0, 33, False),     # 31 open, 33 queued: 32 each
    ([33, 1], 0, 32, True),      # 32 open: its part of 64
    ([3, 3, 1], 0, 4, False),    # three processes: (2 + 2 + 0 + 4) / 3 rounds up to 3
    ([2, 1], 1, 5, False),       # not busier by the counts: the queue does not matter
])
def test_a_burst_of_queued_connections_is_split_in_one_pass(row: list[int], me: int, waiting: int,
                                                             expected: bool) -> None:
    assert busier(row, me, waiting) is expected


@pytest.fixture
def board() -> Iterator[ShareBoard]:
    board = ShareBoard.create(3)
    yield board
    board.close()


def test_each_process_writes_its_own_cells_and_reads_the_others(board: ShareBoard) -> None:
    other = ShareBoard.attach([os.dup(fd) for fd in board.fds])  # a worker's view of the same memory
    try:
        assert other.processes == 3
        mine, theirs = ProcessShares(board, 0).share(5), ProcessShares(other, 2).share(5)
        assert board.open_row(5) == [0, 0, 0]
        mine.start()
        theirs.start()
        assert other.open_row(5) == [1, 0, 1]
        mine.took()
        mine.took()
        assert other.open_row(5) == [3, 0, 1] and theirs.busier() is False and mine.busier() is True
        assert theirs.others_accepted() == 2
        mine.let_go()
        assert board.open_row(5) == [2, 0, 1]
        assert board.connections(0, [5]) == 1 and board.connections(2, [5]) == 0
        # Stepping aside wakes a process that stood aside before and now holds fewer.
        theirs.step_aside(lambda: None)
        assert other.aside(5, 2) and not board.aside(5, 0)
        mine.step_aside(lambda: None)
        assert os.eventfd_read(board.wakers[2]) == 1
        theirs.step_aside(None)
        mine.step_aside(None)
        mine.stop()  # still holds one connection, but accepts no more: nobody steps aside for it
        assert other.open_row(5) == [0, 0, 1] and theirs.busier() is False
        other.write(7, 2, 9, 9)
        board.clear_process(2, [5, 7])
        assert board.open_row(5) == [0, 0, 0] and board.open_row(7) == [0, 0, 0]
    finally:
        other.close()


def test_a_worker_process_sees_the_board_through_the_fd_it_was_spawned_with(board: ShareBoard) -> None:
    code = ("import sys; from tauon.server.balance import ProcessShares, ShareBoard; "
            "b = ShareBoard.attach([int(fd) for fd in sys.argv[1:]]); s = ProcessShares(b, 1).share(9); "
            "s.start(); s.took(); b.wake(0); print(b.open_row(9), b.processes)")
    out = subprocess.run([sys.executable, "-c", code, *map(str, board.fds)], pass_fds=board.fds,
                         capture_output=True, text=True, check=True).stdout
    assert out.split() == ["[0,", "2,", "0]", "3"]
    assert board.open_row(9) == [0, 2, 0]  # what the child wrote is in the daemon's map
    assert os.eventfd_read(board.wakers[0]) == 1  # and it woke process 0


def test_listener_keys_skip_rows_in_use_and_start_them_clean(board: ShareBoard) -> None:
    keys = ListenerKeys()
    first = keys.take(board)
    assert first == 1
    board.write(first % ROWS, 1, 4, 4)
    board.write(2, 1, 7, 7)  # left behind by an earlier listener on row 2
    second = keys.take(board)
    assert second == 2 and board.open_row(2) == [0, 0, 0]
    # The counter wraps onto row 1, still in use: that key is skipped.
    keys._next = iter(range(ROWS + 1, ROWS + 10))  # type: ignore[assignment]
    third = keys.take(board)
    assert third == ROWS + 3 and board.open_row(1) == [0, 4, 0]
    assert sorted(keys.rows()) == [1, 2, 3]
    keys.release(first)
    keys.release(ROWS + 1)  # not a key this allocator holds: nothing happens
    assert sorted(keys.rows()) == [2, 3]
