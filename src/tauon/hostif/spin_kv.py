"""Spin key-value for components (spin-spec §5.3): fermyon:spin/key-value@2.0.0 (resource `store`), the
unversioned v1 fermyon:spin/key-value (u32 handles), and wasi:keyvalue/{store,atomics,batch}@0.2.0-draft2.

All three open stores by label with the component's ACL (an unlisted label is `access-denied` even when
the store exists; an undefined one `no-such-store`). The error mappings are Spin's
(crates/factor-key-value/src/host.rs). spin:key-value/key-value@3.0.0 (component-model async) is in
spin_kv_p3.py, for tauon's component runtime.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tauon.hostif.registry import HostInterface
from tauon.hostif.spin_common import NO_SERVICES, Handle, Result, lookup, message, reserve, services_of
from tauon.hostif.state import HostState
from tauon.services.keyvalue import KeyValueError, KeyValueStore

_PLAIN_ERRORS = frozenset({"store-table-full", "no-such-store", "access-denied"})


class OpenStore(Handle):
    """A store a guest opened: a v2 `store`, a draft2 `bucket`, or a v1 u32 handle."""

    def __init__(self, store: KeyValueStore, counts: dict[str, int]) -> None:
        super().__init__(counts, "store")
        self.store = store


class Cas(Handle):
    """wasi:keyvalue/atomics `cas`: the value read by `current` is what `swap` expects (Spin's rule:
    no `current` call means the key is expected to be absent)."""

    def __init__(self, store: KeyValueStore, key: str, counts: dict[str, int]) -> None:
        super().__init__(counts, "cas")
        self.store = store
        self.key = key
        self.expected: bytes | None = None


def _open(state: HostState, label: str) -> int:
    """The rep of a newly opened store. Raises KeyValueError."""
    services = services_of(state)
    if services is None:
        raise KeyValueError("other", NO_SERVICES)
    store = services.open_store(label)
    counts = reserve(state, "store")
    if counts is None:
        raise KeyValueError("store-table-full", "too many key-value stores opened")
    return state.table.push(OpenStore(store, counts))


def _store(state: HostState, rep: int) -> KeyValueStore:
    return state.table.get(rep, OpenStore).store


# -- fermyon:spin/key-value@2.0.0 -------------------------------------------------------------------


def _v2_error(exc: KeyValueError) -> Result:
    return ("err", exc.kind if exc.kind in _PLAIN_ERRORS else ("other", message(exc)))


def _v2(op: Callable[..., Any]) -> Callable[..., Result]:
    """A store operation as `result<T, error>`: KeyValueError becomes the error variant."""

    def call(state: HostState, *args: Any) -> Result:
        try:
            return ("ok", op(state, *args))
        except KeyValueError as exc:
            return _v2_error(exc)

    return call


V2_FUNCS: dict[str, Callable[..., Result]] = {
    "[static]store.open": _v2(_open),
    "[method]store.get": _v2(lambda state, rep, key: _store(state, rep).get(key)),
    "[method]store.set": _v2(lambda state, rep, key, value: _store(state, rep).set(key, value)),
    "[method]store.delete": _v2(lambda state, rep, key: _store(state, rep).delete(key)),
    "[method]store.exists": _v2(lambda state, rep, key: _store(state, rep).exists(key)),
    "[method]store.get-keys": _v2(lambda state, rep: _store(state, rep).get_keys()),
}


# -- fermyon:spin/key-value (v1, unversioned) -------------------------------------------------------


class _InvalidStore(Exception):
    pass


def _v1_store(state: HostState, handle: int) -> KeyValueStore:
    found = lookup(state, handle, OpenStore)
    if found is None:
        raise _InvalidStore
    return found.store


def _v1(op: Callable[..., Any]) -> Callable[..., Result]:
    def call(state: HostState, *args: Any) -> Result:
        try:
            return ("ok", op(state, *args))
        except _InvalidStore:
            return ("err", "invalid-store")
        except KeyValueError as exc:
            return ("err", exc.kind if exc.kind in _PLAIN_ERRORS or exc.kind == "no-such-key"
                    else ("io", message(exc)))

    return call


def _v1_get(state: HostState, handle: int, key: str) -> bytes:
    value = _v1_store(state, handle).get(key)
    if value is None:  # v1 reports a missing key as an error; v2 returns none
        raise KeyValueError("no-such-key")
    return value


def _v1_close(state: HostState, handle: int) -> None:
    if lookup(state, handle, OpenStore) is not None:
        state.table.drop(handle)


V1_FUNCS: dict[str, Callable[..., Any]] = {
    "open": _v1(_open),
    "get": _v1(_v1_get),
    "set": _v1(lambda state, handle, key, value: _v1_store(state, handle).set(key, value)),
    "delete": _v1(lambda state, handle, key: _v1_store(state, handle).delete(key)),
    "exists": _v1(lambda state, handle, key: _v1_store(state, handle).exists(key)),
    "get-keys": _v1(lambda state, handle: _v1_store(state, handle).get_keys()),
    "close": _v1_close,
}


# -- wasi:keyvalue@0.2.0-draft2 ---------------------------------------------------------------------


def _wasi_error(exc: KeyValueError) -> Any:
    if exc.kind in ("access-denied", "no-such-store"):
        return exc.kind
    if exc.kind == "store-table-full":
        return ("other", "store table full")
    return ("other", message(exc))


def _wasi(op: Callable[..., Any]) -> Callable[..., Result]:
    def call(state: HostState, *args: Any) -> Result:
        try:
            return ("ok", op(state, *args))
        except KeyValueError as exc:
            return ("err", _wasi_error(exc))

    return call


def _list_keys(state: HostState, rep: int, cursor: str | None) -> tuple[list[str], None]:
    if cursor is not None:  # Spin returns every key at once and never hands out a cursor
        raise KeyValueError("other", "list_keys: cursor not supported")
    return (_store(state, rep).get_keys(), None)


def _cas_new(state: HostState, bucket: int, key: str) -> int:
    store = _store(state, bucket)
    counts = reserve(state, "cas")
    if counts is None:
        raise KeyValueError("other", "too many compare_and_swaps opened")
    return state.table.push(Cas(store, key, counts))


def _cas_current(state: HostState, rep: int) -> bytes | None:
    cas = state.table.get(rep, Cas)
    cas.expected = cas.store.get(cas.key)
    return cas.expected


def _swap(state: HostState, rep: int, value: bytes) -> Result:
    """Consumes the guest's cas; on a lost race hands back a fresh one holding the current value."""
    cas = state.table.take(rep, Cas)
    cas.on_drop()
    try:
        if cas.store.compare_and_swap(cas.key, cas.expected, value):
            return ("ok", None)
        counts = reserve(state, "cas")
        if counts is None:
            raise KeyValueError("other", "too many compare_and_swaps opened")
        again = Cas(cas.store, cas.key, counts)
        again.expected = again.store.get(again.key)
        return ("err", ("cas-failed", state.table.push(again)))
    except KeyValueError as exc:
        return ("err", ("store-error", _wasi_error(exc)))


STORE_FUNCS: dict[str, Callable[..., Result]] = {
    "open": _wasi(_open),
    "[method]bucket.get": _wasi(lambda state, rep, key: _store(state, rep).get(key)),
    "[method]bucket.set": _wasi(lambda state, rep, key, value: _store(state, rep).set(key, value)),
    "[method]bucket.delete": _wasi(lambda state, rep, key: _store(state, rep).delete(key)),
    "[method]bucket.exists": _wasi(lambda state, rep, key: _store(state, rep).exists(key)),
    "[method]bucket.list-keys": _wasi(_list_keys),
}
ATOMICS_FUNCS: dict[str, Callable[..., Result]] = {
    "[static]cas.new": _wasi(_cas_new),
    "[method]cas.current": _wasi(_cas_current),
    "increment": _wasi(lambda state, bucket, key, delta: _store(state, bucket).increment(key, delta)),
    "swap": _swap,
}
BATCH_FUNCS: dict[str, Callable[..., Result]] = {
    "get-many": _wasi(lambda state, bucket, keys: _store(state, bucket).get_many(keys)),
    "set-many": _wasi(lambda state, bucket, items: _store(state, bucket).set_many(items)),
    "delete-many": _wasi(lambda state, bucket, keys: _store(state, bucket).delete_many(keys)),
}

INTERFACES = [
    HostInterface("fermyon:spin/key-value@2.0.0", V2_FUNCS, ("store",)),
    HostInterface("fermyon:spin/key-value", V1_FUNCS),
    HostInterface("wasi:keyvalue/store@0.2.0-draft2", STORE_FUNCS, ("bucket",)),
    HostInterface("wasi:keyvalue/atomics@0.2.0-draft2", ATOMICS_FUNCS, ("cas",)),
    HostInterface("wasi:keyvalue/batch@0.2.0-draft2", BATCH_FUNCS),
]
