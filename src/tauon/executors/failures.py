"""How a core-module guest run failed, for the executors that run core modules (WAGI, Spin 1.x)."""

from __future__ import annotations

import wasmtime

from tauon.wasm.pool import is_exhausted


def classify_failure(exc: Exception, *, memory_used: int | None, memory_limit: int) -> tuple[str, str]:
    """(kind, message) for a failed run: 'timeout', 'memory', 'exit', 'busy' or 'trap'.

    Traps carry a code; other errors only text (wasmtime-py-notes §4.4). A failed memory.grow is not a
    trap (malloc returns NULL, and the guest then aborts or exits), so memory exhaustion is inferred
    from the instance's memory being close to the limit when the guest failed.
    """
    text = last_line(str(exc))
    if is_exhausted(text):
        return "busy", text
    code = exc.trap_code if isinstance(exc, wasmtime.Trap) else None
    if code in (wasmtime.TrapCode.INTERRUPT, wasmtime.TrapCode.OUT_OF_FUEL) or "wasm trap: interrupt" in text:
        return "timeout", text
    near_limit = memory_used is not None and memory_limit - memory_used < max(4 << 20, memory_limit // 8)
    if near_limit or ("memory" in text and ("limit" in text or "exceeds" in text)):
        used = f" at {memory_used} bytes" if memory_used is not None else ""
        return "memory", f"out of memory{used} (limit {memory_limit} bytes): {text}"
    if isinstance(exc, wasmtime.ExitTrap):
        return "exit", f"exited with status {exc.code}"
    return "trap", text


def memory_size(store: wasmtime.Store, instance: wasmtime.Instance | None) -> int | None:
    if instance is None:
        return None
    try:
        memory = instance.exports(store)["memory"]
    except (KeyError, wasmtime.WasmtimeError):
        return None
    return memory.data_len(store) if isinstance(memory, wasmtime.Memory) else None


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text
