"""What the host side must match of the rewritten components: import and function names, and which
functions pass their bytes as latin1 strings. The rewriters (reads.py, routing.py, sockets.py) build
components to this contract; `hostif/linker.py` and `hostif/io.py` define the host functions by it.
Plain constants and one rule, no imports: both sides can depend on it.
"""

from __future__ import annotations

STREAMS_PREFIX = "wasi:io/streams@0.2"
"""The wasi:io/streams imports (any 0.2.x) whose reads and writes the rewriters touch."""

RETYPED_READS = frozenset({"[method]input-stream.read", "[method]input-stream.blocking-read"})
"""The streams functions whose `list<u8>` result reads.py retypes to a latin1 `string` in place."""

BYTES_IMPORT = "tauon:bytes/streams@0.1.0"
"""The import routing.py appends: string-typed reads and writes on wasi:io/streams' own resources."""
WRITE_FUNCS = ("[method]output-stream.write", "[method]output-stream.blocking-write-and-flush")
"""Routed writes, each taking `contents: string` (latin1) where wasi's takes `list<u8>`."""
READ_FUNCS = ("[method]input-stream.read", "[method]input-stream.blocking-read")
"""Routed reads, each returning `result<string, stream-error>` (latin1)."""
ASCII_SUFFIX = "-ascii"
"""A routed read with this suffix is lowered UTF-8 into the caller's buffer: the host must return
only ASCII through it (and `closed` when the next bytes are not ASCII, so the list read answers)."""

SOCKET_PREFIXES = ("wasi:sockets/tcp@0.2", "wasi:sockets/udp@0.2")
SOCKET_FUNCS = frozenset({"[method]tcp-socket.start-bind", "[method]tcp-socket.start-connect",
                          "[method]udp-socket.start-bind"})
"""Functions whose `network: borrow<network>` parameter sockets.py retypes to `u32`: the host gets
the guest's handle number, and must not look it up as a resource."""


def ascii_read(read: str) -> str:
    """The routed ASCII form of one of READ_FUNCS."""
    return read + ASCII_SUFFIX


def latin1_bytes(import_name: str, func: str) -> bool:
    """Whether the host function `func` of `import_name` passes byte lists as latin1 strings (the
    codec then hands the host bytes, as for `list<u8>`)."""
    return import_name == BYTES_IMPORT or (import_name.startswith(STREAMS_PREFIX) and func in RETYPED_READS)
