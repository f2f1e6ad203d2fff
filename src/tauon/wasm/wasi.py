"""WASI preview1 set-up the `wasmtime` package does not wrap."""

from __future__ import annotations

import ctypes

import wasmtime
from wasmtime import _ffi as ffi  # the C API function exists, its Python wrapper does not (50.0.1)


def set_stdin_bytes(config: wasmtime.WasiConfig, data: bytes) -> None:
    """Give the guest `data` as stdin, with no temp file.

    wasm_byte_vec_new copies the bytes; wasi_config_set_stdin_bytes then takes the vector's contents
    over (leaving it empty), so nothing is freed here.
    """
    vec = ffi.wasm_byte_vec_t()
    source = ctypes.cast(ctypes.c_char_p(data), ctypes.POINTER(ctypes.c_ubyte))
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), source)
    ffi.wasi_config_set_stdin_bytes(config.ptr(), ctypes.byref(vec))
