"""WASI preview1 stores for core-module guests (WAGI, Spin 1.x), and the set-up wasmtime-py lacks."""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi  # the C API function exists, its Python wrapper does not (50.0.1)

from tauon.model.mount import Mount
from tauon.wasm.engine import limited_store


def set_stdin_bytes(config: wasmtime.WasiConfig, data: bytes) -> None:
    """Give the guest `data` as stdin, with no temp file.

    wasm_byte_vec_new copies the bytes; wasi_config_set_stdin_bytes then takes the vector's contents
    over (leaving it empty), so nothing is freed here.
    """
    vec = ffi.wasm_byte_vec_t()
    source = ctypes.cast(ctypes.c_char_p(data), ctypes.POINTER(ctypes.c_ubyte))
    ffi.wasm_byte_vec_new(ctypes.byref(vec), len(data), source)
    ffi.wasi_config_set_stdin_bytes(config.ptr(), ctypes.byref(vec))


def wasi_store(engine: wasmtime.Engine, *, env: list[tuple[str, str]], mounts: Iterable[Mount[str]],
               stdout_path: str, stderr_path: str, memory_limit: int, deadline_ticks: int,
               argv: list[str] | None = None, stdin: bytes | None = None,
               data: Any = None) -> wasmtime.Store:
    """A fresh Store for one request: exactly this env/argv, read-only mounts only, output to the
    capture files, the app's memory cap and epoch deadline. Nothing of the host is inherited.
    `data`: the request's state, which host functions reach through their Caller."""
    config = wasmtime.WasiConfig()
    if argv is not None:
        config.argv = argv
    config.env = env
    if stdin is not None:
        set_stdin_bytes(config, stdin)
    config.stdout_file = stdout_path
    config.stderr_file = stderr_path
    for mount in mounts:
        config.preopen_dir(mount.source, mount.guest_path, fs_mutable=False)
    store = limited_store(engine, memory_limit=memory_limit, deadline_ticks=deadline_ticks, data=data)
    store.set_wasi(config)
    return store
