from __future__ import annotations

import os
from pathlib import Path

from tauon.control.dirscan import scan_directory
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
