"""The shape every host interface module shares, and stable ids for host resource types."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class HostTrap(Exception):
    """Raised by a host function to trap the guest with a clear message (e.g. a misuse of a handle)."""


@dataclass(frozen=True, slots=True)
class HostInterface:
    name: str
    """Versionless interface name, e.g. 'wasi:io/streams'."""
    funcs: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    """Function name as the component imports it ('[method]input-stream.read') -> impl(state, *args)."""
    resources: tuple[str, ...] = ()
    """Resources this interface defines (not the ones it `use`s)."""
    flat: bool = False
    """Convert its functions' values in one C call each (wasm/component/codec_flat.py): for
    interfaces whose calls are frequent and whose values are many small parts (query results)."""


P3 = "@0.3"
"""Suffix of the names WASI 0.3 interfaces are declared under ('wasi:clocks/monotonic-clock@0.3'):
0.3 changed signatures, so a 0.3 import must never resolve to the 0.2 interface of the same name
(`linker.interface_for` maps 0.3.x and its release candidate to these)."""


def p3_name(base: str) -> str:
    return base + P3


_ids: dict[str, int] = {}
_ids_lock = threading.Lock()


def resource_id(qualified: str) -> int:
    """A process-wide id for the host resource type `qualified` ('wasi:io/streams#input-stream')."""
    with _ids_lock:
        return _ids.setdefault(qualified, len(_ids) + 1)
