"""The messages between the daemon and its worker processes, and their encoding.

Each message is a frozen dataclass named for what it says; on the channel (workers/channel.py) it is a
dict with its `op` and its fields. `decode` rejects an unknown op, a missing or extra field and a field
of the wrong type with `BadMessage`, naming which, instead of failing somewhere later.

Daemon -> worker: Init (first), then Deploy / Close / Remove requests, each answered by Ok or Failed
with the request's `seq`; Stop ends the worker. Worker -> daemon: Ready (first), the answers, and Stats
once a second.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from tauon.app.plan import GenerationPlan
from tauon.model.address import Address
from tauon.settings import Settings
from tauon.workers.channel import RawMessage

StatsSnapshot = tuple[dict[tuple[str, int], int], list[int], float, int]
"""One app's request stats in one process: (component, status) counts, latency buckets, total
seconds, requests in flight (metrics.RequestStats as plain data)."""


class BadMessage(ValueError):
    """A message that is not one of the protocol's (a bug, or a tauon of another version)."""


@dataclass(frozen=True)
class Init:
    op: ClassVar[str] = "init"
    settings: Settings
    worker: int


@dataclass(frozen=True)
class Ready:
    op: ClassVar[str] = "ready"
    pid: int


@dataclass(frozen=True)
class Deploy:
    """Serve generation `number` of `app` on listening socket `key` (sent along when `fd`)."""

    op: ClassVar[str] = "deploy"
    seq: int
    app: str
    serial: int
    """The daemon's deploy counter: a resync racing a newer deploy must not roll it back."""
    number: int
    plan: GenerationPlan
    address: Address
    key: int
    fd: bool
    """A listening socket rides along (the first deploy of `key` to this worker)."""
    fd_lost: bool = False
    """Set by the receiving channel: the socket came but this process had no descriptor free."""


@dataclass(frozen=True)
class Close:
    """Stop accepting on listening socket `key` and drain it."""

    op: ClassVar[str] = "close"
    seq: int
    key: int


@dataclass(frozen=True)
class Remove:
    """Stop serving `app` if it is deployed on `key` (None: whatever is deployed)."""

    op: ClassVar[str] = "remove"
    seq: int
    app: str
    key: int | None


@dataclass(frozen=True)
class Stop:
    op: ClassVar[str] = "stop"


@dataclass(frozen=True)
class Ok:
    op: ClassVar[str] = "ok"
    seq: int


@dataclass(frozen=True)
class Failed:
    op: ClassVar[str] = "error"
    seq: int
    error: str
    transient: bool = False
    """Worth trying again later (e.g. no descriptor free); otherwise the worker is restarted."""


@dataclass(frozen=True)
class Stats:
    op: ClassVar[str] = "stats"
    apps: dict[str, StatsSnapshot]
    capacity: tuple[int, int, int]
    """Guests running, run slots, pooled instances."""


Request = Deploy | Close | Remove
Reply = Ok | Failed
Message = Init | Ready | Deploy | Close | Remove | Stop | Ok | Failed | Stats

_CLASSES: dict[str, type[Any]] = {cls.op: cls for cls in typing.get_args(Message)}


def encode(message: Message) -> RawMessage:
    raw: RawMessage = {"op": message.op}
    for f in dataclasses.fields(message):
        raw[f.name] = getattr(message, f.name)
    return raw


def decode(raw: RawMessage) -> Message:
    if not isinstance(raw, dict):
        raise BadMessage(f"a {type(raw).__name__} where a message was expected")
    op = raw.get("op")
    cls = _CLASSES.get(op) if isinstance(op, str) else None
    if cls is None:
        raise BadMessage(f"unknown message {op!r} (expected one of {', '.join(sorted(_CLASSES))})")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    given = set(raw) - {"op"}
    if missing := sorted(required - given):
        raise BadMessage(f"{op!r} message without {', '.join(missing)}")
    if extra := sorted(given - names):
        raise BadMessage(f"{op!r} message with unknown field(s) {', '.join(extra)}")
    for name in given:
        if not _conforms(raw[name], hints[name]):
            raise BadMessage(f"{op!r} message: {name} is a {type(raw[name]).__name__}, "
                             f"not {_shown(hints[name])}")
    message: Message = cls(**{name: raw[name] for name in given})
    return message


_HINTS: dict[str, dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    hints = _HINTS.get(cls.op)
    if hints is None:
        hints = _HINTS[cls.op] = typing.get_type_hints(cls)
    return hints


def _conforms(value: Any, hint: Any) -> bool:
    """Whether `value` has the declared type at its outermost level (contents are the sender's)."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arm) for arm in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, origin or hint)


def _shown(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_shown(arm) for arm in typing.get_args(hint))
    cls = origin or hint
    return "None" if cls is type(None) else str(getattr(cls, "__name__", cls))
