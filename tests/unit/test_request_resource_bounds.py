"""Per request, the host resources a guest can make the host hold are bounded, and released when the
request ends: open descriptors, live resources, header bytes. Exceeding one traps that request only."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from tauon.hostif import filesystem as fs
from tauon.hostif import http
from tauon.hostif.registry import HostTrap
from tauon.hostif.state import HostConfig, HostState
from tauon.hostif.table import MAX_FDS, ResourceTable
from tauon.model.mount import Mount


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def request(tmp_path: Path) -> HostState:
    (tmp_path / "files").mkdir(exist_ok=True)
    config = HostConfig(label="app.json/web", logger=logging.getLogger("t"),
                        mounts=(Mount(str(tmp_path / "files"), "/"),))
    return HostState(config, timeout=30)


def test_get_directories_in_a_loop_stops_at_the_descriptor_bound(tmp_path: Path) -> None:
    """One request once opened 19,997 descriptors this way, and another app then failed."""
    before = open_fds()
    state = request(tmp_path)
    with pytest.raises(HostTrap, match=f"more than {MAX_FDS} open files, directories or sockets"):
        for _ in range(20_000):
            fs.get_directories(state)
    assert open_fds() - before <= MAX_FDS + 2  # the refused one was closed, not leaked
    state.finish()
    assert open_fds() <= before + 2


def test_dropping_descriptors_gives_the_room_back(tmp_path: Path) -> None:
    state = request(tmp_path)
    for _ in range(3 * MAX_FDS):
        [(rep, _)] = fs.get_directories(state)
        state.table.drop(rep)
    assert state.table.fds == 0
    state.finish()


def test_live_resources_are_bounded() -> None:
    table = ResourceTable(max_live=100)
    for _ in range(100):
        table.push(object())
    with pytest.raises(HostTrap, match="more than 100 live host resources"):
        table.push(object())


def test_header_appends_are_bounded(tmp_path: Path) -> None:
    """Header appends once grew the daemon's heap by 580 MB from one request."""
    state = request(tmp_path)
    rep = http.fields_new(state)
    value = b"v" * 8192
    with pytest.raises(HostTrap, match="more than 16 MiB of header fields"):
        for _ in range(10_000):
            assert http.fields_append(state, rep, "x-big", value) == ("ok", None)
    assert len(state.table.get(rep, http.Fields).entries) < 2100


def test_clones_count_too(tmp_path: Path) -> None:
    state = request(tmp_path)
    rep = http.fields_new(state)
    http.fields_append(state, rep, "x", b"v" * 1024 * 1024)
    with pytest.raises(HostTrap, match="header fields"):
        for _ in range(100):
            http.fields_clone(state, rep)
