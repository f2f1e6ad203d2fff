"""Editing component binaries so wasmtime 50's component C API can carry them well: request and
response bodies in one buffer instead of one value per byte (reads.py retypes reads in place,
routing.py appends string-typed imports and routes to them) and socket calls it could not make
(sockets.py). Every edit touches only import types or appends; the guest's code is never changed.

One walk (walker.py, over reader.py's grammar and binfmt.py's constants) serves all three; encode.py
writes what they emit; contract.py is what the host side (hostif/) must match; probe.py checks, by
running it, that a guest's allocator allows the in-place read retyping.
"""
