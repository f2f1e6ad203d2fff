"""Read the watched directory into desired state: {app id: AppSpec | SpecError}.

A thin layer over the filesystem. It follows symlinks (Kubernetes ConfigMap volumes are symlinks into a
`..data` directory that kubelet swaps atomically) and considers only visible `*.json` names, so editor
temp files and kubelet's bookkeeping never look like apps.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from tauon.control.spec import AppSpec, is_app_file_name, parse_spec
from tauon.errors import SpecError

MAX_APP_FILE_BYTES = 1024 * 1024
SETTLE = 2.0
"""Seconds: a file whose status changed more recently is read again on every scan. File times come
from a coarse clock, so two writes within one tick may leave the same size and times (git's "racy"
index entries); once this long has passed, any later write changes the change time (ctime), which
nothing can set back."""


@dataclass(frozen=True, slots=True)
class Scan:
    apps: dict[str, AppSpec | SpecError] = field(default_factory=dict)
    directory_present: bool = True
    """False when the directory is missing or cannot be listed: keep every app as it is."""
    error: str | None = None
    """Why the directory could not be listed (other than being absent)."""


def printable_name(name: str) -> str:
    """A file name as text: undecodable bytes (os.listdir's surrogate escapes) shown as \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class ScanMemo:
    """What each app file parsed to, by its path, with the file's identity then (device, inode, size,
    modification and change times): a rescan parses again only the files that changed. Rescans are
    whole-directory (every watch event and the periodic resync), and reading and parsing 1,000 app
    files took 147 ms each time, against 12 ms with every file remembered."""

    def __init__(self, settle: float = SETTLE) -> None:
        self.settle = settle
        self._entries: dict[str, tuple[tuple[int, ...], AppSpec | SpecError]] = {}
        self._next: dict[str, tuple[tuple[int, ...], AppSpec | SpecError]] = {}

    def get(self, path: Path, identity: tuple[int, ...]) -> AppSpec | SpecError | None:
        found = self._entries.get(str(path))
        if found is None or found[0] != identity:
            return None
        self._next[str(path)] = found
        return found[1]

    def put(self, path: Path, identity: tuple[int, ...], parsed: AppSpec | SpecError) -> None:
        if identity[-1] < (time.time() - self.settle) * 1e9:  # settled: see SETTLE
            self._next[str(path)] = (identity, parsed)

    def finish(self) -> None:
        """End of a scan: forget the files it did not see."""
        self._entries, self._next = self._next, {}


def _identity(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)  # ctime last: SETTLE


def scan_directory(directory: Path, memo: ScanMemo | None = None) -> Scan:
    try:
        names = sorted(os.listdir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return Scan(directory_present=False)
    except OSError as exc:  # e.g. permissions changed under us: not a reason to stop every app
        return Scan(directory_present=False, error=f"cannot list {directory}: {exc.strerror}")
    apps: dict[str, AppSpec | SpecError] = {}
    for name in names:
        if not is_app_file_name(name):
            continue
        shown = printable_name(name)
        if shown != name:  # the name is not UTF-8: it cannot be an app id (logs, metrics, /status)
            apps[shown] = SpecError("has a file name that is not valid UTF-8", file=shown,
                                    hint="rename it to a UTF-8 name ending in .json")
            continue
        path = directory / name
        try:
            if not path.is_file():  # follows symlinks; skips directories named *.json
                if path.is_symlink() and not path.exists():
                    apps[name] = SpecError(
                        "is a broken symlink", file=name, hint=f"it points to {os.readlink(path)!r}"
                    )
                continue
            identity = _identity(path.stat())  # before the read: a write after it changes it
            known = memo.get(path, identity) if memo is not None else None
            if known is not None:
                apps[name] = known
                continue
            with path.open("rb") as fh:
                data = fh.read(MAX_APP_FILE_BYTES + 1)
        except FileNotFoundError:
            continue  # deleted between listdir and open: the next event rescans
        except OSError as exc:
            apps[name] = SpecError(f"cannot be read: {exc.strerror}", file=name,
                                   hint="check its permissions")
            continue
        if len(data) > MAX_APP_FILE_BYTES:
            apps[name] = SpecError("is larger than 1 MiB", file=name,
                                   hint="an app file is a small JSON object")
            continue
        try:
            parsed: AppSpec | SpecError = parse_spec(name, data)
        except SpecError as exc:
            parsed = exc
        apps[name] = parsed
        if memo is not None:
            memo.put(path, identity, parsed)
    if memo is not None:
        memo.finish()
    return Scan(apps=apps)
