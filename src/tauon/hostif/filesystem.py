"""wasi:filesystem 0.2 (placeholder until the read-only mounts land): no preopened directories."""

from __future__ import annotations

from tauon.hostif.registry import HostInterface
from tauon.hostif.state import HostState


def get_directories(state: HostState) -> list[tuple[int, str]]:
    return []


INTERFACES = [
    HostInterface("wasi:filesystem/types", {}, ("descriptor", "directory-entry-stream")),
    HostInterface("wasi:filesystem/preopens", {"get-directories": get_directories}),
]
