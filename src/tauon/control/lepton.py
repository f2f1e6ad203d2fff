"""Lepton mode: a fixed list of apps in one file, `{"apps": [{"reference", "address", ...}, ...]}`.

Every entry is an app file's JSON object (plus an optional `name`) and goes through the same parser,
so errors read the same. An entry's app id is its `name`, else `<file>#<index>`. Two entries claiming
one address: the earlier one keeps it. Parsing is pure; `read_apps_file` is the only I/O.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from tauon.control.jsonfile import load_json
from tauon.control.spec import AppSpec, parse_spec
from tauon.errors import SpecError
from tauon.model.address import Address

MAX_APPS_FILE_BYTES = 4 * 1024 * 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_EXAMPLE = '{"apps": [{"name": "shop", "reference": "ghcr.io/acme/shop:v3", "address": "0.0.0.0:8080"}]}'


@dataclass(frozen=True, slots=True)
class AppsFile:
    apps: dict[str, AppSpec | SpecError] = field(default_factory=dict)
    """App id -> its spec, or why the entry cannot be served (same shape as a directory scan)."""
    warnings: tuple[str, ...] = ()


def _clash(a: Address | None, b: Address | None) -> bool:
    # Same rule as the directory's: a wildcard host and a specific host on one port clash at bind time.
    if a is None or b is None:
        return False  # Redis-only apps listen nowhere
    if a.port != b.port:
        return False
    wildcard = {"0.0.0.0", "::", ""}
    ha, hb = a.host.lower(), b.host.lower()
    return ha == hb or ha in wildcard or hb in wildcard


def parse_apps_file(file: str, data: bytes) -> AppsFile:
    """Parse a lepton apps file named `file`. Raises SpecError when the file as a whole is unusable."""
    value = load_json(file, data)
    if not isinstance(value, dict):
        raise SpecError(f"must contain a JSON object, found {type(value).__name__}", file=file,
                        hint=f"e.g. {_EXAMPLE}")
    unknown = sorted(set(value) - {"apps"})
    if "apps" not in value:
        close = difflib.get_close_matches("apps", unknown, n=1, cutoff=0.6)
        raise SpecError("is required", file=file, field="apps",
                        hint=f"found '{close[0]}': did you mean 'apps'?" if close else f"e.g. {_EXAMPLE}")
    entries = value["apps"]
    if not isinstance(entries, list):
        raise SpecError(f"must be a list of app objects, found {type(entries).__name__}", file=file,
                        field="apps", hint=f"e.g. {_EXAMPLE}")
    warnings = [f"{file}: ignoring unknown field(s) {', '.join(repr(u) for u in unknown)} (known: 'apps')"] \
        if unknown else []
    apps: dict[str, AppSpec | SpecError] = {}
    names: dict[str, int] = {}
    claims: list[AppSpec] = []
    for index, entry in enumerate(entries):
        app_id, location, error = _identify(file, index, entry, names)
        if error is None:
            assert isinstance(entry, dict)
            body = {k: v for k, v in entry.items() if k != "name"}
            try:
                spec = parse_spec(location, json.dumps(body).encode())
            except SpecError as exc:
                error = exc
            else:
                warnings.extend(spec.warnings)
                owner = next((c for c in claims if _clash(c.address, spec.address)), None)
                if owner is None:
                    spec = dataclasses.replace(spec, id=app_id, warnings=())
                    claims.append(spec)
                    apps[app_id] = spec
                    continue
                error = SpecError(f"address {spec.address} is already claimed by {owner.id}",
                                  file=location, field="address",
                                  hint=f"{owner.id} comes first in {file} and keeps it; change one address")
        apps[app_id] = error
    return AppsFile(apps=apps, warnings=tuple(warnings))


def _identify(file: str, index: int, entry: object,
              names: dict[str, int]) -> tuple[str, str, SpecError | None]:
    """(app id, where it is for messages, a problem with the entry's shape or name)."""
    app_id = f"{file}#{index}"
    if not isinstance(entry, dict):
        return app_id, app_id, SpecError(f"must be a JSON object, found {type(entry).__name__}",
                                         file=file, field=f"apps[{index}]", hint=f"e.g. {_EXAMPLE}")
    name = entry.get("name")
    if name is None:
        return app_id, app_id, None
    location = f"{file} apps[{index}]"
    if not isinstance(name, str) or not _NAME_RE.match(name):
        return app_id, location, SpecError(
            f"must be a short name of letters, digits, '.', '_' or '-', got {name!r}",
            file=location, field="name", hint="it names the app in logs, metrics and /status")
    if name in names:
        return app_id, location, SpecError(
            f"'{name}' is already the name of apps[{names[name]}]", file=location, field="name",
            hint="every app needs its own name")
    names[name] = index
    return name, f"{name} ({location})", None


def read_apps_file(path: Path) -> AppsFile:
    """Read and parse the apps file. Raises SpecError (naming the file) when it is unusable."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_APPS_FILE_BYTES + 1)
    except FileNotFoundError:
        raise SpecError("does not exist", file=str(path), hint="check the --apps path") from None
    except IsADirectoryError:
        raise SpecError("is a directory", file=str(path),
                        hint="--apps takes a JSON file; to watch a directory, pass it as DIR") from None
    except OSError as exc:
        raise SpecError(f"cannot be read: {exc.strerror}", file=str(path),
                        hint="check its permissions") from None
    if len(data) > MAX_APPS_FILE_BYTES:
        raise SpecError("is larger than 4 MiB", file=str(path), hint="an apps file is a small JSON object")
    return parse_apps_file(path.name, data)
