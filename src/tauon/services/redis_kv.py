"""A key-value store in Redis (`[key_value_store.<label>] type = "redis"`), as Spin's
crates/key-value-redis keeps it, so several tauon processes (replicas) share one store.

As in Spin, keys are the guest's keys as they are (the label is not part of them: one Redis database
per store) and values are the bytes set; `increment` is Redis' INCRBY, so a counter is stored as
Redis keeps integers (decimal text), which is what Spin's Redis store reads and writes too.

Every operation is one Redis command, atomic on the server, so replicas never race in a
read-modify-write: increment is INCRBY, and compare-and-swap is one Lua script that compares and sets
(Spin uses WATCH/MULTI on a connection of its own; see `compare_and_swap`).

Connections come from tauon's outbound Redis client (`outbound/redis_client.py`): a small pool per
store, each call bounded by CALL_TIMEOUT, waits lending the guest's run slot. A failed connection is
dropped and the next call opens a new one, so a Redis restart costs the calls made while it was down.
Errors are `other(<text>)`; the text never carries the URL's credentials.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from tauon.outbound.limits import ConnectionLimit, OutboundError
from tauon.outbound.redis_address import RedisTarget, parse_address
from tauon.outbound.redis_client import RedisConnection
from tauon.services.keyvalue import KeyValueError

CALL_TIMEOUT = 10.0
"""Seconds one key-value call may wait for a connection and its reply."""
MAX_CONNECTIONS = 64
"""Connections one store holds at most per process (calls beyond wait for one, within CALL_TIMEOUT)."""

# Compare the current value with the expected one (ARGV[1] = "1": expected absent) and set it, in one
# step on the server: no other client's command can come in between.
_CAS_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current then return 0 end
elseif current ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""


class RedisKeyValue:
    """One Redis-backed store. Thread-safe; methods take the label only to look like SqliteKeyValue."""

    def __init__(self, url: str, *, max_connections: int = MAX_CONNECTIONS) -> None:
        try:
            self._target: RedisTarget = parse_address(url)
        except OutboundError:
            raise ValueError("not a usable Redis URL") from None  # parse.py checked it already
        self._limit = ConnectionLimit(max_connections)
        self._idle: list[RedisConnection] = []
        self._lock = threading.Lock()

    @property
    def where(self) -> str:
        return self._target.where

    def _call(self, *args: Any) -> Any:
        deadline = time.monotonic() + CALL_TIMEOUT
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = RedisConnection(self._target, self._limit)
            if not self._limit.acquire(conn, deadline):
                raise KeyValueError("other", f"no free connection to Redis at {self.where}")
            try:
                conn.connect(deadline)
            except OutboundError as exc:
                conn.close()
                raise KeyValueError("other", f"Redis at {self.where}: {exc.message or exc.kind}") from None
        try:
            reply = conn.call(deadline, *args)
        except OutboundError as exc:
            if _is_server_error(conn):  # the connection is fine: keep it
                self._give_back(conn)
            else:
                conn.close()
            raise KeyValueError("other", f"Redis at {self.where}: {exc.message or exc.kind}") from None
        self._give_back(conn)
        return reply

    def _give_back(self, conn: RedisConnection) -> None:
        with self._lock:
            self._idle.append(conn)

    def get(self, store: str, key: str) -> bytes | None:
        return _bytes_or_none(self._call("GET", key))

    def set(self, store: str, key: str, value: bytes) -> None:
        self._call("SET", key, bytes(value))

    def delete(self, store: str, key: str) -> None:
        self._call("DEL", key)

    def exists(self, store: str, key: str) -> bool:
        return bool(self._call("EXISTS", key))

    def get_keys(self, store: str) -> list[str]:
        # As Spin: every key of the database (KEYS *), one store per Redis database.
        reply = self._call("KEYS", "*")
        return [bytes(k).decode("utf-8", "replace") for k in reply]

    def get_many(self, store: str, keys: Sequence[str]) -> list[tuple[str, bytes | None]]:
        if not keys:
            return []
        reply = self._call("MGET", *keys)
        return [(key, _bytes_or_none(value)) for key, value in zip(keys, reply, strict=True)]

    def set_many(self, store: str, items: Iterable[tuple[str, bytes]]) -> None:
        flat: list[Any] = []
        for key, value in items:
            flat += [key, bytes(value)]
        if flat:
            self._call("MSET", *flat)

    def delete_many(self, store: str, keys: Iterable[str]) -> None:
        keys = list(keys)
        if keys:
            self._call("DEL", *keys)

    def increment(self, store: str, key: str, delta: int) -> int:
        reply = self._call("INCRBY", key, delta)
        if not isinstance(reply, int):
            raise KeyValueError("other", "Redis answered INCRBY with something other than an integer")
        return reply

    def compare_and_swap(self, store: str, key: str, expected: bytes | None, new: bytes) -> bool:
        """Set `key` to `new` if its value is still `expected` (None: absent), atomically on the server.

        Spin's store WATCHes the key when the guest reads it and sets it in MULTI/EXEC, but takes an
        aborted EXEC (nil) for success; here a swap that lost a race is reported as lost."""
        reply = self._call("EVAL", _CAS_SCRIPT, 1, key, "1" if expected is None else "0",
                           b"" if expected is None else bytes(expected), bytes(new))
        return bool(reply == 1)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self._limit.close()


def _bytes_or_none(value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, bytes):
        raise KeyValueError("other", "Redis answered with something other than a value")
    return value


def _is_server_error(conn: RedisConnection) -> bool:
    """Whether the connection is still usable after a failed call (Redis answered with an error)."""
    return bool(conn._conn._sock is not None and not conn._closed)
