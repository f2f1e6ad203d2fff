"""The core modules routing.py appends, as text: the allocator wrapper its latin1 reads lower with,
and the trampolines that send each lowering of a stream function to the string import or the list
import."""

from __future__ import annotations

import wasmtime

from tauon.wasm.component.rewriting.routing_scan import Lowered


def keep_realloc_module(count: int = 1) -> bytes:
    """A core module wrapping `count` guest allocators (imports "" "realloc-j") as the allocators the
    routed reads lower with (exports "realloc-j"): shrinking a block answers the block itself;
    everything else is the guest's.

    Lowering latin1 text that is not ASCII, wasmtime allocates its UTF-8 length, writes the latin1
    bytes, then shrinks the block to their count, which some guests' allocators refuse
    (componentize-py's traps). The block simply stays as large as it was: allocators that free by
    pointer (malloc's kind, which these runtimes use) free all of it; one that frees by the size the
    guest believes (the list's length) can only lose the unused tail, never hand out bytes twice."""
    parts = ["(module"]
    for j in range(count):
        parts.append(f'(import "" "realloc-{j}" (func $realloc{j} (param i32 i32 i32 i32) (result i32)))')
    for j in range(count):
        parts.append(
            f'(func (export "realloc-{j}") (param $old i32) (param $old_size i32) (param $align i32) '
            '(param $size i32) (result i32) '
            '(if (result i32) (i32.and (i32.ne (local.get $old) (i32.const 0)) '
            '(i32.le_u (local.get $size) (local.get $old_size))) '
            '(then (local.get $old)) '
            f'(else (call $realloc{j} (local.get $old) (local.get $old_size) (local.get $align) '
            '(local.get $size)))))')
    parts.append(")")
    return bytes(wasmtime.wat2wasm(" ".join(parts)))


def trampolines(lowered: list[Lowered], slots: list[int]) -> bytes:
    parts = ['(module (type $w (func (param i32 i32 i32 i32))) (type $r (func (param i32 i64 i32)))',
             '(import "" "table" (table 0 funcref))']
    if any(entry.reads for entry in lowered):
        parts.append('(import "" "memory" (memory 0))')
    for k, entry in enumerate(lowered):
        ty = "$r" if entry.reads else "$w"
        parts.append(f'(import "" "slow-{k}" (func $slow{k} (type {ty})))')
        parts.append(f'(import "" "fast-{k}" (func $fast{k} (type {ty})))')
    for k, (entry, slot) in enumerate(zip(lowered, slots, strict=True)):
        if entry.reads:
            # The string read first; `closed` from it (result and variant discriminants both 1)
            # means "not ASCII here, or the end": the list read answers instead.
            parts.append(
                f'(func $route{k} (type $r) (call $fast{k} (local.get 0) (local.get 1) (local.get 2)) '
                '(if (i32.and (i32.load8_u (local.get 2)) (i32.load8_u offset=4 (local.get 2))) '
                f'(then (call $slow{k} (local.get 0) (local.get 1) (local.get 2)))))')
        else:
            # Even pointer and a length without the UTF-16 tag bit: the string import; else the list.
            parts.append(
                f'(func $route{k} (type $w) (if (i32.and (i32.or (local.get 1) '
                '(i32.shr_u (local.get 2) (i32.const 31))) (i32.const 1)) '
                f'(then (call $slow{k} (local.get 0) (local.get 1) (local.get 2) (local.get 3))) '
                f'(else (call $fast{k} (local.get 0) (local.get 1) (local.get 2) (local.get 3)))))')
        parts.append(f'(elem (table 0) (i32.const {slot}) func $route{k})')
    parts.append(")")
    return bytes(wasmtime.wat2wasm(" ".join(parts)))
