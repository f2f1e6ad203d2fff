from __future__ import annotations

import os
from pathlib import Path

import pytest

from tauon.control import dirscan
from tauon.control.dirscan import ScanMemo, scan_directory
from tauon.control.spec import AppSpec
from tauon.errors import SpecError

GOOD = b'{"reference": "r:1", "address": "127.0.0.1:8000"}'


def test_scan_filters_names_and_reads_through_symlinks(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(GOOD)
    (tmp_path / ".a.json.tmp").write_bytes(GOOD)
    (tmp_path / "notes.txt").write_bytes(GOOD)
    (tmp_path / "dir.json").mkdir()
    # The kubelet ConfigMap shape: key -> ..data/key, ..data -> ..2026_xx
    real = tmp_path / "..2026_11_24_10_00_00.1"
    real.mkdir()
    (real / "cm.json").write_bytes(GOOD.replace(b"8000", b"8001"))
    os.symlink(real.name, tmp_path / "..data")
    os.symlink("..data/cm.json", tmp_path / "cm.json")
    os.symlink("nowhere.json", tmp_path / "broken.json")
    scan = scan_directory(tmp_path)
    assert sorted(scan.apps) == ["a.json", "broken.json", "cm.json"]
    assert isinstance(scan.apps["a.json"], AppSpec)
    cm = scan.apps["cm.json"]
    assert isinstance(cm, AppSpec) and cm.address.port == 8001
    broken = scan.apps["broken.json"]
    assert isinstance(broken, SpecError) and "broken symlink" in str(broken)


def test_missing_directory(tmp_path: Path) -> None:
    scan = scan_directory(tmp_path / "gone")
    assert not scan.directory_present and scan.apps == {}


def test_half_written_file_is_an_error_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_bytes(GOOD[:10])
    scan = scan_directory(tmp_path)
    err = scan.apps["a.json"]
    assert isinstance(err, SpecError) and "not valid JSON" in str(err)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files parse_spec parses, in order (the real parser still runs)."""
    names: list[str] = []
    real_parse = dirscan.parse_spec

    def counting(name: str, data: bytes) -> AppSpec:
        names.append(name)
        return real_parse(name, data)

    monkeypatch.setattr(dirscan, "parse_spec", counting)
    return names


def test_a_memo_parses_again_only_the_files_that_changed(tmp_path: Path, parsed: list[str]) -> None:
    for name in ("a.json", "b.json", "c.json"):
        (tmp_path / name).write_bytes(GOOD)
    memo = ScanMemo(settle=0.0)  # the files' change times count as settled at once
    first = scan_directory(tmp_path, memo)
    assert sorted(parsed) == ["a.json", "b.json", "c.json"]
    parsed.clear()
    assert scan_directory(tmp_path, memo).apps == first.apps and parsed == []

    # Same size, modification time set back to what it was: the change time still moves.
    before = (tmp_path / "b.json").stat()
    (tmp_path / "b.json").write_bytes(GOOD.replace(b"8000", b"8009"))
    os.utime(tmp_path / "b.json", ns=(before.st_atime_ns, before.st_mtime_ns))
    (tmp_path / "c.json").unlink()
    again = scan_directory(tmp_path, memo)
    assert parsed == ["b.json"]
    b = again.apps["b.json"]
    assert isinstance(b, AppSpec) and b.address.port == 8009
    assert sorted(again.apps) == ["a.json", "b.json"]

    # A new file at a removed file's name is read, not remembered from before.
    parsed.clear()
    (tmp_path / "c.json").write_bytes(b"{")
    assert isinstance(scan_directory(tmp_path, memo).apps["c.json"], SpecError)
    assert parsed == ["c.json"]


def test_a_file_changed_within_the_settle_time_is_read_on_every_scan(tmp_path: Path,
                                                                     parsed: list[str]) -> None:
    (tmp_path / "a.json").write_bytes(GOOD)
    memo = ScanMemo()  # the default: two seconds
    for _ in range(3):
        scan_directory(tmp_path, memo)
    assert parsed == ["a.json"] * 3
