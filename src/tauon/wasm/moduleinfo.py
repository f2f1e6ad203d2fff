"""What Spin's `componentize_if_necessary` reads from a core module, and how it classifies it (pure).

Spin (spin-spec §4.6; `crates/componentize/src/{lib,module_info}.rs`) looks at three things: the
function exports (`_start`, a canonical-ABI realloc), the `component-type*` custom section wit-bindgen
embeds (itself an encoded component whose own `producers` section says `processed-by wit-bindgen-<lang>
<version>`), and the module's `producers`. From them:

- wit-bindgen 0.5 to <1.0 (major.minor, optionally .patch, nothing after) -> the preview1 reactor
  adapter (`REACTOR`);
- no wit-bindgen version: `_start` and no sign of wit-bindgen -> a preview1 command (`COMMAND`), else
  the Spin 1.x ABI (`LEGACY`);
- any other wit-bindgen version -> refused (`UnsupportedBindgen`, with Spin's wording).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tauon.wasm.component.rewriting.reader import Reader, Unsupported

Conversion = Literal["reactor", "command", "legacy"]
REACTOR: Conversion = "reactor"
COMMAND: Conversion = "command"
LEGACY: Conversion = "legacy"

REALLOC_EXPORTS = ("cabi_realloc", "canonical_abi_realloc")  # wit-bindgen has used both
_MODULE_HEADER = b"\0asm\x01\x00\x00\x00"
_COMPONENT_HEADER = b"\0asm\x0d\x00\x01\x00"


class UnsupportedBindgen(ValueError):
    def __init__(self, version: str) -> None:
        super().__init__(f"cannot adapt modules created with wit-bindgen version {version}")
        self.version = version


@dataclass
class ModuleInfo:
    function_exports: list[str] = field(default_factory=list)
    bindgen_processed_by: dict[str, str] | None = None
    """`processed-by` of the component-type section's producers; None without a readable section."""
    clang_version: str | None = None

    @property
    def has_start_export(self) -> bool:
        return "_start" in self.function_exports

    @property
    def realloc_export(self) -> str | None:
        return next((name for name in self.function_exports if name in REALLOC_EXPORTS), None)

    def probably_uses_wit_bindgen(self) -> bool:
        return self.bindgen_processed_by is not None or self.realloc_export is not None

    @property
    def bindgen_version(self) -> str | None:
        """The version of the first `wit-bindgen*` tool the component-type section names."""
        for tool, version in (self.bindgen_processed_by or {}).items():
            if tool.startswith("wit-bindgen"):
                return version
        return None


def _sections(data: bytes, header: bytes) -> list[tuple[int, int, int]]:
    """(id, payload start, payload end) of each section. Raises Unsupported."""
    if not data.startswith(header):
        raise Unsupported("not a binary of this kind")
    r = Reader(data, 8)
    out = []
    while r.pos < r.end:
        sid = r.byte()
        size = r.u32()
        if r.pos + size > r.end:
            raise Unsupported("a section runs past the end")
        out.append((sid, r.pos, r.pos + size))
        r.skip(size)
    return out


def _custom(data: bytes, start: int, end: int) -> tuple[str, int]:
    r = Reader(data, start, end)
    return r.name(), r.pos


def _producers(data: bytes, start: int, end: int) -> dict[str, dict[str, str]]:
    """The producers section: field name -> {tool: version}."""
    r = Reader(data, start, end)
    fields: dict[str, dict[str, str]] = {}
    for _ in range(r.u32()):
        name = r.name()
        values = fields.setdefault(name, {})
        for _ in range(r.u32()):
            tool = r.name()
            values[tool] = r.name()
    return fields


def _function_exports(data: bytes, start: int, end: int) -> list[str]:
    r = Reader(data, start, end)
    names = []
    for _ in range(r.u32()):
        name = r.name()
        kind = r.byte()
        r.u32()
        if kind == 0x00:
            names.append(name)
    return names


def _bindgen_producers(payload: bytes) -> dict[str, str] | None:
    """`processed-by` of the encoded world in a component-type section; None if it is not one."""
    try:
        for sid, start, end in _sections(payload, _COMPONENT_HEADER):
            if sid == 0:
                name, at = _custom(payload, start, end)
                if name == "producers":
                    return _producers(payload, at, end).get("processed-by", {})
    except Unsupported:
        return None
    return {}


def read_module_info(data: bytes) -> ModuleInfo:
    """Raises ValueError if `data` is not a binary core module."""
    info = ModuleInfo()
    try:
        for sid, start, end in _sections(data, _MODULE_HEADER):
            if sid == 7:
                info.function_exports = _function_exports(data, start, end)
            elif sid == 0:
                name, at = _custom(data, start, end)
                if name == "producers":
                    info.clang_version = _producers(data, at, end).get("processed-by", {}).get("clang")
                elif name.startswith("component-type"):
                    found = _bindgen_producers(data[at:end])
                    if found is not None:  # Spin, too, ignores a section it cannot decode
                        info.bindgen_processed_by = found
    except Unsupported as exc:
        raise ValueError(f"not a readable core wasm module: {exc}") from None
    return info


def classify(info: ModuleInfo) -> Conversion:
    """Spin's WitBindgenVersion::detect + componentize_old_module. Raises UnsupportedBindgen."""
    version = info.bindgen_version
    if version is not None:
        if not _adaptable(version):
            raise UnsupportedBindgen(version)
        return REACTOR
    if info.has_start_export and not info.probably_uses_wit_bindgen():
        return COMMAND
    return LEGACY


def _adaptable(version: str) -> bool:
    """0.5 <= major.minor < 1.0, as `major.minor` or `major.minor.patch` and nothing after."""
    parts = version.split(".")
    try:
        major, minor = int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return False
    if not (0 <= major < 256 and 0 <= minor < 256):  # Spin parses them as u8
        return False
    if major >= 1 or minor < 5:
        return False
    return len(parts) <= 3
