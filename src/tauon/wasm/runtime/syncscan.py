"""A quick answer, from a few sections, to whether a component certainly does not use component-model
async: planning a whole component (parse.py, plan.py) to find out took about as long as the rest of
loading a small app from the cache (1.5 ms for the C fixture, 33 for the JS one, 95 for Python's), on
every generation build of every app.

Component-model async shows only in canon sections (an `async` or `callback` option, or an async
builtin), or as an export name (the WASIp3 handler). A component whose canon sections, its nested
components' included, hold only lifts, lowers and resource builtins without those options, and whose
export sections never spell the handler's name, is synchronous. Anything else, unusual or unknown
included, is "maybe", and the caller plans the component.
"""

from __future__ import annotations

import mmap
from pathlib import Path

from tauon.wasm.component.rewriting.reader import Reader, Unsupported
from tauon.wasm.sections import Section, component_sections, is_component, scan

_COMPONENT = 4
_CANON = 8
_EXPORT = 11
_LIFT, _LOWER = 0x00, 0x01
_RESOURCE_BUILTINS = frozenset({0x02, 0x03, 0x04})  # resource.new, resource.drop, resource.rep
_OPTS_WITHOUT_PAYLOAD = frozenset({0x00, 0x01, 0x02})  # string encodings
_OPTS_WITH_INDEX = frozenset({0x03, 0x04, 0x05})  # memory, realloc, post-return

P3_HANDLER = "wasi:http/handler@0.3."
"""An export the builder always runs on tauon's runtime (executors/select.py), whatever it uses."""


def certainly_sync(wasm_path: Path, handler_prefix: str) -> bool:
    """True when `wasm_path` is a component binary that uses no component-model async and exports
    nothing named starting with `handler_prefix`; False when it may (or when in doubt)."""
    needle = handler_prefix.encode()
    try:
        with component_sections(Path(wasm_path)) as found:
            return found is not None and _sync_sections(*found, needle)
    except (OSError, ValueError, Unsupported):
        return False


_READ = frozenset({_COMPONENT, _CANON, _EXPORT})


def _sync_sections(data: mmap.mmap | bytes, sections: list[Section], needle: bytes) -> bool:
    return all(_sync_section(section.id, data[section.start:section.end], needle)
               for section in sections if section.id in _READ)


def _sync_section(section_id: int, body: bytes, needle: bytes) -> bool:
    if section_id == _EXPORT:
        return needle not in body
    if section_id == _CANON:
        return _sync_canon(body)
    return _sync_nested(body, needle)  # wit-component nests one to give its exports their types


def _sync_nested(data: bytes, needle: bytes) -> bool:
    return is_component(data) and _sync_sections(data, scan(data), needle)


def _sync_canon(body: bytes) -> bool:
    r = Reader(body)
    for _ in range(r.u32()):
        op = r.byte()
        if op in _RESOURCE_BUILTINS:
            r.u32()
            continue
        if op not in (_LIFT, _LOWER) or r.byte() != 0x00:
            return False
        r.u32()  # the core function (lift) or component function (lower)
        for _ in range(r.u32()):
            code = r.byte()
            if code in _OPTS_WITH_INDEX:
                r.u32()
            elif code not in _OPTS_WITHOUT_PAYLOAD:
                return False  # async, callback, or an option this scan does not know
        if op == _LIFT:
            r.u32()  # the function type
    return r.pos == r.end
