"""Spin 4's spin:sqlite/sqlite@3.1.0: the synchronous 3.0 functions (same databases, ACL, errors and
per-handle last-insert-rowid / changes as `spin_sqlite.V3_FUNCS`) plus their component-model async
variants (crates/factor-sqlite/src/host.rs, `v3::HostConnectionWithStore`).

`execute-async` answers the columns at once and the rows as a stream ended by a future with the
outcome. tauon runs the statement to its end before answering (the rows are in memory either way:
Spin's own producer buffers them up to its host limit), so a failing statement is the call's error
and the future always carries `ok`. Each function completes when called, as the synchronous ones do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tauon.hostif.p3_streams import BYTES, STRING, future_of, stream_of, unit_result
from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_sqlite import V3_FUNCS, _execute, _guarded
from tauon.hostif.state import HostState
from tauon.wasm.canon.types import ListType, Prim, RecordType, VariantType

ERROR = VariantType((("no-such-database", None), ("access-denied", None), ("invalid-connection", None),
                     ("database-full", None), ("io", STRING)))
VALUE = VariantType((("integer", Prim("s64")), ("real", Prim("f64")), ("text", STRING), ("blob", BYTES),
                     ("null", None)))
ROW = RecordType((("values", ListType(VALUE)),))
ROWS_DONE = unit_result(ERROR)


def _execute_async(state: HostState, rep: int, statement: str,
                   params: Sequence[tuple[str, Any] | str]) -> tuple[list[str], Any, Any]:
    columns, rows = _execute(state, rep, statement, params)
    return (columns, stream_of(ROW, rows), future_of(ROWS_DONE, ("ok", None)))


V3_1_FUNCS: dict[str, Callable[..., Any]] = {
    **V3_FUNCS,
    "[static]connection.open-async": V3_FUNCS["[static]connection.open"],
    "[method]connection.execute-async": _guarded(_execute_async),
    "[method]connection.last-insert-rowid-async": V3_FUNCS["[method]connection.last-insert-rowid"],
    "[method]connection.changes-async": V3_FUNCS["[method]connection.changes"],
}

INTERFACES = [HostInterface("spin:sqlite/sqlite@3.1.0", V3_1_FUNCS, ("connection",))]
