"""Component dependency names and how they match imports, as Spin's composer matches them (pure).

Spin (spin-spec §2.5; `crates/compose`) keys `components[].dependencies` by a name that is either a
plain kebab name (matching only an import of that plain name) or a package name with an optional
interface and version: `foo:bar` matches every import of package foo:bar, `foo:bar/baz` only that
interface (any version), `foo:bar@1.0.0` and `foo:bar/baz@1.0.0` only imports of that version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORLD_LINE = re.compile(r"^  (import|export) ([^\s;:]+(?::[^\s;:]+)?)(?::\s|;)")
_KEBAB = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class Name:
    """A package-style name (`package` set) or a plain one (`plain` set)."""

    plain: str | None = None
    package: str | None = None
    interface: str | None = None
    version: str | None = None


def parse_dependency_name(text: str) -> Name:
    """Raises ValueError naming what is wrong."""
    if ":" not in text and "/" not in text:
        if not _KEBAB.match(text):
            raise ValueError(f"{text!r} is neither a kebab-case name nor a package name like 'ns:pkg'")
        return Name(plain=text)
    head, _, version = text.partition("@")
    package, slash, interface = head.partition("/")
    namespace, _, pkg = package.partition(":")
    if not (_KEBAB.match(namespace) and _KEBAB.match(pkg)) or (slash and not _KEBAB.match(interface)):
        raise ValueError(f"{text!r} is not a package name like 'ns:pkg', 'ns:pkg/interface' or "
                         "'ns:pkg/interface@1.0.0'")
    if "@" in text and not version:
        raise ValueError(f"{text!r} has an empty version")
    return Name(package=package, interface=interface or None, version=version or None)


def parse_import_name(text: str) -> Name:
    """An import name as it appears in a component ('wasi:http/types@0.2.0', 'my-func')."""
    if ":" not in text and "/" not in text:
        return Name(plain=text)
    package, _, rest = text.partition("/")
    interface, _, version = rest.partition("@")
    return Name(package=package, interface=interface, version=version or None)


def matches_import(dependency: Name, import_name: str) -> bool:
    imported = parse_import_name(import_name)
    if dependency.plain is not None or imported.plain is not None:
        return dependency.plain is not None and dependency.plain == imported.plain
    if dependency.package != imported.package:
        return False
    if dependency.interface is not None and dependency.interface != imported.interface:
        return False
    return dependency.version is None or dependency.version == imported.version


def world_names(wit: str) -> tuple[list[str], list[str]]:
    """(imports, exports) of the root world in `wasm-tools component wit` output."""
    imports: list[str] = []
    exports: list[str] = []
    in_root = False
    for line in wit.splitlines():
        if line.startswith("world root {"):
            in_root = True
        elif in_root and line.startswith("}"):
            break
        elif in_root and (match := _WORLD_LINE.match(line)):
            (imports if match.group(1) == "import" else exports).append(match.group(2))
    return imports, exports

