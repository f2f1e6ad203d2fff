"""Whether a component runs on tauon's own component runtime, and so needs its core modules compiled.

Apart from the runtime (wasm/runtime/load.py imports the planner and the instance machinery, 80 ms):
the compile child asks this of every component, and nearly all are answered by the section scan
(syncscan.py) without planning.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tauon.wasm.runtime.syncscan import P3_HANDLER, certainly_sync

if TYPE_CHECKING:
    from tauon.wasm.runtime.plan import Lifted

_guard = threading.Lock()
_async: dict[tuple[str, int, int], bool] = {}


def compiles_core_modules(wasm_path: Path, runtime: str) -> bool:
    """Whether tauon's component runtime runs this component (so its core modules must be compiled):
    with `--component-runtime tauon`, and always for one using component-model async or exporting
    the WASIp3 HTTP handler, which only this runtime hosts."""
    if runtime == "tauon":
        return True
    try:
        stat = Path(wasm_path).stat()
    except OSError:
        return False
    key = (str(wasm_path), stat.st_size, stat.st_mtime_ns)
    with _guard:
        found = _async.get(key)
    if found is None:
        found = not certainly_sync(wasm_path, P3_HANDLER) and _plans_async(wasm_path)
        with _guard:
            if len(_async) > 256:
                _async.clear()
            _async[key] = found
    return found


def _plans_async(wasm_path: Path) -> bool:
    # The planner and its types: imported only when the scan is unsure.
    from tauon.wasm.runtime.load import plan_component
    from tauon.wasm.runtime.model import UnsupportedComponent
    from tauon.wasm.runtime.plan import Lifted

    def lifted(exports: dict[str, Any]) -> list[Lifted]:
        found: list[Lifted] = []
        for item in exports.values():
            if isinstance(item, Lifted):
                found.append(item)
            elif isinstance(item, dict):
                found.extend(lifted(item))
        return found

    try:
        plan = plan_component(wasm_path)
    except UnsupportedComponent:
        return False
    return (bool(plan.async_builtins) or any(lower.opts.is_async for lower in plan.lowers)
            or any(item.opts.is_async for item in lifted(plan.exports))
            or any(name.startswith(P3_HANDLER) for name in plan.exports))
