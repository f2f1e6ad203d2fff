"""The component model's binary format as named constants: section ids, sorts, type and declaration
tags, canonical options, and the few core-wasm opcodes the rewriters look for or emit.

Values are those of the component model's Binary.md (the version wasmtime 50 reads).
"""

from __future__ import annotations

import enum

HEADER = b"\0asm\x0d\x00\x01\x00"
"""Magic, version 0x0d and layer 1: a component (a core module has layer 0)."""


class Section(enum.IntEnum):
    CUSTOM = 0
    CORE_MODULE = 1
    CORE_INSTANCE = 2
    CORE_TYPE = 3
    COMPONENT = 4
    INSTANCE = 5
    ALIAS = 6
    TYPE = 7
    CANON = 8
    START = 9
    IMPORT = 10
    EXPORT = 11


class Sort(enum.Enum):
    """An index space. The value is the sort's encoding: one byte, or 0x00 and the core sort's byte."""

    FUNC = b"\x01"
    VALUE = b"\x02"
    TYPE = b"\x03"
    COMPONENT = b"\x04"
    INSTANCE = b"\x05"
    CORE_FUNC = b"\x00\x00"
    CORE_TABLE = b"\x00\x01"
    CORE_MEMORY = b"\x00\x02"
    CORE_GLOBAL = b"\x00\x03"
    CORE_TYPE = b"\x00\x10"
    CORE_MODULE = b"\x00\x11"
    CORE_INSTANCE = b"\x00\x12"

    @property
    def core(self) -> bool:
        return len(self.value) == 2

    @property
    def core_byte(self) -> int:
        """The byte of a core sort where the format names one without the 0x00 prefix (core
        instance exports and instantiation arguments)."""
        return self.value[-1]


CORE_PREFIX = 0x00
SORT_BY_BYTE = {s.value[0]: s for s in Sort if not s.core}
CORE_SORT_BY_BYTE = {s.value[1]: s for s in Sort if s.core}


class AliasTarget(enum.IntEnum):
    EXPORT = 0x00
    CORE_EXPORT = 0x01
    OUTER = 0x02


class InstanceKind(enum.IntEnum):
    """How a core or component instance is made (the same two bytes at both levels)."""

    INSTANTIATE = 0x00
    FROM_EXPORTS = 0x01


class NameForm(enum.IntEnum):
    PLAIN = 0x00
    VERSIONED = 0x01
    """An older form with a version suffix after the name."""


class Extern(enum.IntEnum):
    """externdesc kinds (CORE_MODULE is followed by 0x11)."""

    CORE_MODULE = 0x00
    FUNC = 0x01
    VALUE = 0x02
    TYPE = 0x03
    COMPONENT = 0x04
    INSTANCE = 0x05


class Bound(enum.IntEnum):
    EQ = 0x00
    SUB_RESOURCE = 0x01


class Decl(enum.IntEnum):
    """Declaration tags inside a component or instance type."""

    CORE_TYPE = 0x00
    TYPE = 0x01
    ALIAS = 0x02
    IMPORT = 0x03
    EXPORT = 0x04


class Ty(enum.IntEnum):
    """Type definition opcodes; primitives are PRIMITIVE_MIN..0x7F and ERROR_CONTEXT."""

    U8 = 0x7D
    U32 = 0x79
    U64 = 0x77
    STRING = 0x73
    PRIMITIVE_MIN = 0x73
    RECORD = 0x72
    VARIANT = 0x71
    LIST = 0x70
    TUPLE = 0x6F
    FLAGS = 0x6E
    ENUM = 0x6D
    OPTION = 0x6B
    RESULT = 0x6A
    OWN = 0x69
    BORROW = 0x68
    ERROR_CONTEXT = 0x64
    FUNC = 0x40
    COMPONENT = 0x41
    INSTANCE = 0x42
    RESOURCE = 0x3F


VALTYPE_PRIMITIVES = range(0x64, 0x80)
"""Bytes that start a primitive valtype where a type index could also stand."""
ABSENT, PRESENT = 0x00, 0x01
"""An option flag (an optional type, a result's ok or error)."""
RESULT_SINGLE, RESULT_NAMED = 0x00, 0x01
"""A function's result: one unnamed type, or a (here empty) named list."""
RESOURCE_REP_I32 = 0x7F
EXPORT_NO_TYPE, EXPORT_TYPED = 0x00, 0x01
"""An export with or without an ascribed externdesc."""


class Canon(enum.IntEnum):
    LIFT = 0x00
    LOWER = 0x01
    RESOURCE_NEW = 0x02
    RESOURCE_DROP = 0x03
    RESOURCE_REP = 0x04


CANON_FUNC = 0x00
"""The byte after LIFT and LOWER: the core (lift) or component (lower) function that follows."""


class Opt(enum.IntEnum):
    """Canonical options."""

    UTF8 = 0x00
    UTF16 = 0x01
    LATIN1_UTF16 = 0x02
    MEMORY = 0x03
    REALLOC = 0x04
    POST_RETURN = 0x05
    ASYNC = 0x06
    CALLBACK = 0x07


STRING_ENCODINGS = frozenset({Opt.UTF8, Opt.UTF16, Opt.LATIN1_UTF16})
OPTS_WITH_INDEX = frozenset({Opt.MEMORY, Opt.REALLOC, Opt.POST_RETURN, Opt.CALLBACK})

# Core wasm, for recognising an element segment: `(elem (i32.const 0) func ...)` on table 0.
ELEM_ACTIVE_TABLE0 = 0x00
I32_CONST = 0x41
END = 0x0B
