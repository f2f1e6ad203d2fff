"""Read the watched directory into desired state: {app id: AppSpec | SpecError}.

A thin layer over the filesystem. It follows symlinks (Kubernetes ConfigMap volumes are symlinks into a
`..data` directory that kubelet swaps atomically) and considers only visible `*.json` names, so editor
temp files and kubelet's bookkeeping never look like apps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tauon.control.spec import AppSpec, is_app_file_name, parse_spec
from tauon.errors import SpecError

MAX_APP_FILE_BYTES = 1024 * 1024


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


def scan_directory(directory: Path) -> Scan:
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
            apps[name] = parse_spec(name, data)
        except SpecError as exc:
            apps[name] = exc
    return Scan(apps=apps)
