"""Spin 4's spin:key-value/key-value@3.0.0: the v2 store (same labels, ACL and error variants as
`spin_kv.V2_FUNCS`) with component-model async functions, and `get-keys` as a stream of keys ended by
a future carrying the outcome (crates/factor-key-value/src/host.rs, `v3::HostStoreWithStore`).

Each operation completes when called (the guest sees it return at once), as the synchronous store
does for the v2 interface: the default store is a local SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tauon.hostif.p3_streams import STRING, future_of, stream_of, unit_result
from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_kv import V2_FUNCS, _store, _v2_error
from tauon.hostif.state import HostState
from tauon.services.keyvalue import KeyValueError
from tauon.wasm.canon.types import VariantType
from tauon.wasm.runtime.async_host import FutureReader, StreamReader

ERROR = VariantType((("store-table-full", None), ("no-such-store", None), ("access-denied", None),
                     ("other", STRING)))
"""spin:key-value@3.0.0's `error`."""
KEYS_DONE = unit_result(ERROR)


def get_keys(state: HostState, rep: int) -> tuple[StreamReader, FutureReader]:
    """`get-keys: async func() -> tuple<stream<string>, future<result<_, error>>>`. A failing store
    ends an empty stream with the error in the future, as Spin's producer does."""
    try:
        keys = _store(state, rep).get_keys()
    except KeyValueError as exc:
        return stream_of(STRING, []), future_of(KEYS_DONE, _v2_error(exc))
    return stream_of(STRING, keys), future_of(KEYS_DONE, ("ok", None))


V3_FUNCS: dict[str, Callable[..., Any]] = {
    **{name: V2_FUNCS[name] for name in ("[static]store.open", "[method]store.get", "[method]store.set",
                                         "[method]store.delete", "[method]store.exists")},
    "[method]store.get-keys": get_keys,
}

INTERFACES = [HostInterface("spin:key-value/key-value@3.0.0", V3_FUNCS, ("store",))]
