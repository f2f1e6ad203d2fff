"""WASI 0.2 host interfaces implemented in Python: one module per interface family, same shape each.

Every module exports `INTERFACES`, a list of `HostInterface` (see `registry`), with functions called
as `impl(state, *args)` where `state` is the request's `HostState`. `linker.build_linker` walks a
component's imports and links the versions it asks for.
"""
