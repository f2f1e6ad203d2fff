"""Give each app spec its runtime config: the file its `runtime_config` names (relative to the app
file's directory), else the daemon's `--runtime-config`.

Read on every rescan, like the app file: the file's digest is folded into the spec's content hash, so
editing the TOML is a change of the app (a new generation; the last good one keeps serving when the
new file is wrong). A problem is the app's SpecError, naming the app file, the TOML file, the table
and the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from pathlib import Path

from tauon.control.spec import AppSpec
from tauon.errors import SpecError
from tauon.runtimeconfig.errors import RuntimeConfigError
from tauon.runtimeconfig.model import RuntimeConfig
from tauon.runtimeconfig.parse import parse_runtime_config

MAX_FILE_BYTES = 1024 * 1024


def runtime_config_path(spec: AppSpec, base_dir: Path, default: Path | None) -> Path | None:
    if spec.runtime_config is not None:
        return (base_dir / spec.runtime_config).absolute()
    return default


def read_runtime_config(path: Path, *, app_file: str, named_by: str) -> RuntimeConfig:
    """Raises SpecError for `app_file`; `named_by` says where the path came from, for the hint."""
    def error(message: str, where: str | None = None, hint: str | None = None) -> SpecError:
        place = f"runtime config {path}" + (f": [{where}]" if where else "")
        return SpecError(f"{place} {message}", file=app_file, field="runtime_config",
                         hint=hint or f"fix the file ({named_by}); the last good version keeps serving")

    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise error("does not exist", hint=f"check the path ({named_by})") from None
    except OSError as exc:
        raise error(f"cannot be read: {exc.strerror}", hint="check its permissions") from None
    if len(data) > MAX_FILE_BYTES:
        raise error("is larger than 1 MiB")
    try:
        return parse_runtime_config(path, data)
    except RuntimeConfigError as exc:
        raise error(exc.message, exc.where, exc.hint) from None


def attach_runtime_configs(apps: Mapping[str, AppSpec | SpecError], base_dir: Path,
                           default: Path | None) -> dict[str, AppSpec | SpecError]:
    """Each spec with its parsed runtime config and a content hash covering it."""
    out: dict[str, AppSpec | SpecError] = {}
    for app_id, spec in apps.items():
        if isinstance(spec, SpecError):
            out[app_id] = spec
            continue
        path = runtime_config_path(spec, base_dir, default)
        if path is None:
            out[app_id] = spec
            continue
        named_by = "the app file's runtime_config" if spec.runtime_config is not None \
            else "tauon's --runtime-config"
        try:
            config = read_runtime_config(path, app_file=spec.id, named_by=named_by)
        except SpecError as exc:
            out[app_id] = exc
            continue
        combined = hashlib.sha256(f"{spec.content_hash}\0{path}\0{config.digest}".encode()).hexdigest()
        out[app_id] = dataclasses.replace(spec, runtime=config, content_hash=combined)
    return out
