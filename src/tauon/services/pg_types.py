"""PostgreSQL values as Spin maps them (crates/factor-outbound-pg/src/types.rs), in the richest interface's
shapes (spin:postgres/postgres@4.x `db-value`, `db-data-type`, `parameter-value`); `hostif/spin_pg.py`
narrows them for the older versions as Spin's spin-world conversions do.

Guest values cross as the component codec's tuples: a variant case is `(name, payload)`, or its bare
name when it has none. Results are read in binary format, so every value arrives exactly as the server
sent it (float4 stays an f32's value, an interval keeps its months, unknown types arrive as raw bytes,
as Spin's `unsupported(list<u8>)` returns them).
"""

from __future__ import annotations

import datetime
import decimal
import json
import struct
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from psycopg import adapt, postgres, pq
from psycopg.types import json as pg_json
from psycopg.types import numeric
from psycopg.types.range import Range

MAX_RESULT_BYTES = 128 << 20
"""Spin's MAX_HOST_BUFFERED_BYTES: a query result larger than this fails."""

# OIDs of the types Spin maps (pg_type.oid values; stable across PostgreSQL versions)
_DATA_TYPES: dict[int, str] = {
    16: "boolean", 17: "binary", 700: "floating32", 701: "floating64", 21: "int16", 23: "int32",
    20: "int64", 25: "str", 1043: "str", 1042: "str", 1114: "datetime", 1184: "datetime", 1082: "date",
    1083: "time", 2950: "uuid", 3802: "jsonb", 1700: "decimal", 3904: "range-int32",
    3926: "range-int64", 3906: "range-decimal", 1007: "array-int32", 1016: "array-int64",
    1231: "array-decimal", 1009: "array-str", 1015: "array-str", 1014: "array-str", 1186: "interval",
}
INTERVAL_OID = 1186
JSONB_OID = 3802


class ParamError(ValueError):
    """A guest parameter Spin cannot send (its text is what the guest sees)."""


class ValueError_(ValueError):
    """A column value Spin cannot read back."""


def data_type(oid: int, type_name: Callable[[int], str]) -> Any:
    """The v4 `db-data-type` of a result column."""
    name = _DATA_TYPES.get(oid)
    return name if name is not None else ("other", type_name(oid))


def columns(result: pq.abc.PGresult, type_name: Callable[[int], str]) -> list[tuple[str, Any]]:
    """(name, v4 `db-data-type`) of each column of a result, read from libpq's result directly
    (psycopg's `description` builds an object per column per statement)."""
    out = []
    for i in range(result.nfields):
        raw = result.fname(i)
        out.append((raw.decode() if raw is not None else "", data_type(result.ftype(i), type_name)))
    return out


# -- loaders: binary values psycopg would otherwise reshape ----------------------------------------------


class RawLoader(adapt.Loader):
    """Any type Spin does not map: the server's binary bytes (Spin's `unsupported(list<u8>)`)."""

    format = pq.Format.BINARY

    def load(self, data: Any) -> bytes:
        return bytes(data)


class IntervalLoader(adapt.Loader):
    """interval as Spin's record (micros, days, months): psycopg's timedelta would fold months into days."""

    format = pq.Format.BINARY

    def load(self, data: Any) -> tuple[int, int, int]:
        micros, days, months = struct.unpack(">qii", bytes(data))
        return (micros, days, months)


class JsonbBytesLoader(adapt.Loader):
    """jsonb re-serialized as Spin does (serde_json: compact, keys sorted)."""

    format = pq.Format.BINARY

    def load(self, data: Any) -> bytes:
        raw = bytes(data)[1:]  # binary jsonb: a version byte, then the text
        return json.dumps(json.loads(raw), separators=(",", ":"), sort_keys=True,
                          ensure_ascii=False).encode()


class Interval:
    def __init__(self, micros: int, days: int, months: int) -> None:
        self.value = (micros, days, months)


class IntervalDumper(adapt.Dumper):
    format = pq.Format.BINARY
    oid = INTERVAL_OID

    def dump(self, obj: Interval) -> bytes:
        return struct.pack(">qii", *obj.value)


class Array:
    """A one-dimensional array parameter with the element type Spin's Rust type fixes (int4[], int8[],
    numeric[], text[]), whatever its elements (psycopg would guess from them, or send `unknown`)."""

    def __init__(self, oid: int, items: list[Any]) -> None:
        self.oid = oid
        self.items = items


def _array_item(item: Any) -> str:
    if item is None:
        return "NULL"
    text = format(item, "f") if isinstance(item, decimal.Decimal) else str(item)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ArrayDumper(adapt.Dumper):
    """Array as PostgreSQL's text literal, typed by the object's oid."""

    def get_key(self, obj: Array, format: Any) -> Any:
        return (Array, obj.oid)

    def upgrade(self, obj: Array, format: Any) -> adapt.Dumper:
        dumper = ArrayDumper(Array)
        dumper.oid = obj.oid
        return dumper

    def dump(self, obj: Array) -> bytes:
        return ("{" + ",".join(_array_item(i) for i in obj.items) + "}").encode()


def make_adapters() -> adapt.AdaptersMap:
    """psycopg's adapters with Spin's mapping: raw bytes for every type Spin does not know."""
    adapters = adapt.AdaptersMap(postgres.adapters)
    for info in postgres.types:
        for oid in (info.oid, info.array_oid):
            if oid and oid not in _DATA_TYPES:
                adapters.register_loader(oid, RawLoader)
    adapters.register_loader(0, RawLoader)  # types psycopg has never heard of (enums, extensions)
    adapters.register_loader(INTERVAL_OID, IntervalLoader)
    adapters.register_loader(JSONB_OID, JsonbBytesLoader)
    adapters.register_dumper(Interval, IntervalDumper)
    adapters.register_dumper(Array, ArrayDumper)
    return adapters


# -- parameters: guest parameter-value -> Python value with the type Spin would send --------------------


def _decimal(text: str) -> decimal.Decimal:
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise ParamError(f"invalid decimal {text}") from None
    if not value.is_finite():
        raise ParamError(f"invalid decimal {text}")
    return value


def _date(v: Sequence[int]) -> datetime.date:
    try:
        return datetime.date(v[0], v[1], v[2])
    except ValueError:
        raise ParamError(f"invalid date y={v[0]}, m={v[1]}, d={v[2]}") from None


def _time(v: Sequence[int]) -> datetime.time:
    try:
        return datetime.time(v[0], v[1], v[2], v[3] // 1000)
    except ValueError:
        raise ParamError(f"invalid time {v[0]}:{v[1]}:{v[2]}:{v[3]}") from None


def _datetime(v: Sequence[int]) -> datetime.datetime:
    return datetime.datetime.combine(_date(v[:3]), _time(v[3:]))


def _timestamp(seconds: int) -> datetime.datetime:
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    except (ValueError, OverflowError, OSError):
        raise ParamError(f"invalid epoch timestamp {seconds}") from None


def _uuid(text: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ParamError(f"invalid UUID {text}") from None


def _jsonb(data: bytes) -> pg_json.Jsonb:
    try:
        return pg_json.Jsonb(json.loads(data))
    except ValueError:
        raise ParamError(f"invalid JSON {data.decode('utf-8', 'replace')}") from None


def _range(bounds: Any, convert: Callable[[Any], Any]) -> Range[Any]:
    lower, upper = bounds
    lo = convert(lower[0]) if lower is not None else None
    hi = convert(upper[0]) if upper is not None else None
    left = "[" if lower is not None and lower[1] == "inclusive" else "("
    right = "]" if upper is not None and upper[1] == "inclusive" else ")"
    return Range(lo, hi, left + right)


def _array(values: Sequence[Any], convert: Callable[[Any], Any]) -> list[Any]:
    return [None if v is None else convert(v) for v in values]


_PARAMS: dict[str, Callable[[Any], Any]] = {
    "boolean": bool,
    "int8": numeric.Int2,  # Spin's i8 maps to PostgreSQL's one-byte "char"; int2 is the useful reading
    "int16": numeric.Int2,
    "int32": numeric.Int4,
    "int64": numeric.Int8,
    "floating32": numeric.Float4,
    "floating64": numeric.Float8,
    "str": str,
    "binary": bytes,
    "date": _date,
    "time": _time,
    "datetime": _datetime,
    "timestamp": _timestamp,
    "uuid": _uuid,
    "jsonb": _jsonb,
    "decimal": _decimal,
    "range-int32": lambda v: _range(v, numeric.Int4),
    "range-int64": lambda v: _range(v, numeric.Int8),
    "range-decimal": lambda v: _range(v, _decimal),
    "array-int32": lambda v: Array(1007, _array(v, int)),
    "array-int64": lambda v: Array(1016, _array(v, int)),
    "array-decimal": lambda v: Array(1231, _array(v, _decimal)),
    "array-str": lambda v: Array(1009, _array(v, str)),
    "interval": lambda v: Interval(v["micros"], v["days"], v["months"]),
}


def to_param(value: Any) -> Any:
    """A v4 `parameter-value` (as the codec lifts it: `(case, payload)`) as the Python value psycopg
    sends. Raises ParamError."""
    tag, payload = (value, None) if isinstance(value, str) else value
    if tag == "db-null":
        return None
    return _PARAMS[tag](payload)


# -- results: Python values (as the loaders above produce them) -> v4 db-value -------------------------


def _range_out(value: Range[Any], convert: Callable[[Any], Any]) -> Any:
    if value.isempty:
        return (None, None)
    lower = None if value.lower is None else (convert(value.lower),
                                              "inclusive" if value.lower_inc else "exclusive")
    upper = None if value.upper is None else (convert(value.upper),
                                              "inclusive" if value.upper_inc else "exclusive")
    return (lower, upper)


def _decimal_out(value: decimal.Decimal) -> str:
    if not value.is_finite():
        raise ValueError_(f"cannot convert numeric {value} to a decimal")
    return format(value, "f")


def _datetime_out(value: datetime.datetime) -> tuple[int, ...]:
    if value.tzinfo is not None:  # timestamptz: the instant in UTC, as Spin's tuples are UTC
        value = value.astimezone(datetime.UTC)
    return (value.year, value.month, value.day, value.hour, value.minute, value.second,
            value.microsecond * 1000)


def _ident(value: Any) -> Any:
    return value


_VALUES: dict[str, Callable[[Any], Any]] = {
    "boolean": _ident, "binary": _ident, "floating32": _ident, "floating64": _ident, "int16": _ident,
    "int32": _ident, "int64": _ident, "str": _ident, "jsonb": _ident,
    "datetime": _datetime_out,
    "date": lambda v: (v.year, v.month, v.day),
    "time": lambda v: (v.hour, v.minute, v.second, v.microsecond * 1000),
    "uuid": str,
    "decimal": _decimal_out,
    "range-int32": lambda v: _range_out(v, _ident),
    "range-int64": lambda v: _range_out(v, _ident),
    "range-decimal": lambda v: _range_out(v, _decimal_out),
    "array-int32": _ident, "array-int64": _ident,
    "array-decimal": lambda v: [None if d is None else _decimal_out(d) for d in v],
    "array-str": _ident,
    "interval": _ident,
}


def _tagged(tag: str, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    if convert is _ident:
        return lambda v: (tag, v)
    return lambda v: (tag, convert(v))


_CONVERTERS: dict[tuple[Any, ...], list[Callable[[Any], Any]]] = {}
"""converters() by column types: a statement run again reuses its list (bounded: see converters)."""


def converters(types: tuple[Any, ...]) -> list[Callable[[Any], Any]]:
    """Per column of a result (its v4 data types): value -> v4 db-value."""
    found = _CONVERTERS.get(types)
    if found is not None:
        return found
    if len(_CONVERTERS) >= 1024:  # guests choose the column types: keep the cache bounded
        _CONVERTERS.clear()
    found = _CONVERTERS[types] = _converters(types)
    return found


def _converters(types: Sequence[Any]) -> list[Callable[[Any], Any]]:
    out: list[Callable[[Any], Any]] = []
    for dtype in types:
        if isinstance(dtype, tuple):  # other(name): raw bytes
            out.append(lambda v: ("unsupported", bytes(v)))
            continue
        convert = _VALUES[dtype]
        out.append(_tagged(dtype, convert))
    return out


def value_size(value: Any) -> int:
    """Roughly what Spin's DbValue::memory_size counts (32 bytes a value plus its payload)."""
    if isinstance(value, (str, bytes)):
        return 32 + len(value)
    if isinstance(value, list):
        return 32 + sum(16 + (len(v) if isinstance(v, str) else 0) for v in value)
    return 32
