"""The Component Model's canonical ABI, in Python, over core wasm linear memory (issue 19).

Pure: no I/O; only `memory.py` touches wasmtime (through ctypes). Follows the specification's
CanonicalABI.md (sync ABI; 32-bit memories). Modules and their public API:

- `types`: the component value-type model every part shares (the component parser builds it).
- `errors`: `CanonTrap` (the only exception lifting guest data raises; `.within(where)` prefixes the
  path to the bad value) and `CanonUnsupported` (raised when compiling a type not handled yet: streams,
  futures, error-context, async functions).
- `layout`: `alignment(t)`, `elem_size(t)`, `field_offsets(types)`, `discriminant_size(n)`,
  `flags_size(n)`, `variant_payload_offset(vt)`, `despecialize(t)`, `flatten_type(t)`,
  `flatten_types(ts)`, `variant_payload_flat(vt)`, `join(a, b)`, `flatten_functype(ft, "lift"|"lower")
  -> CoreSignature(params, results, params_spilled, results_spilled)`; constants MAX_FLAT_PARAMS (16),
  MAX_FLAT_RESULTS (1), UTF16_TAG, MAX_STRING_BYTE_LENGTH, MAX_LIST_BYTE_LENGTH.
- `memory`: the `GuestMemory` protocol (`size`, `refresh`, `check`, `read`, `write`, `unpack`, `pack`,
  `load_u32`, `store_u32`, `load_int`, `store_int`, `load_float`, `store_float`; all bounds-checked,
  trapping) with `BytesMemory(size_or_data)` (a bytearray;
  `.data`, `.grow(n)`) and `WasmtimeMemory(memory, store)`; `CoreRealloc(func, store)`, a guest's
  `cabi_realloc` as a `Realloc` through wasmtime's raw call (about 100 times cheaper than
  `Func.__call__`; raises `wasmtime.Trap` when the guest traps).
- `context`: `CallContext(memory, realloc, handles, scope)`; `Realloc` is
  `(old_ptr, old_size, align, new_size) -> ptr` (e.g. `lambda *a: realloc_func(store, *a)`).
  `allocate`/`reallocate` call it, refresh the memory, and check alignment and bounds of the result.
- `handles`: `HandleTable(defines=resource types the instance implements)` with `add/get/remove`,
  `set_destructor(rtype, fn(rep))`, `lower_own`, `lower_borrow`, `lift_own`, `lift_borrow`,
  `resource_new`, `resource_rep`, `resource_drop` (the `canon resource.*` built-ins); `BorrowScope`
  (one call's borrows; `end()` returns lent handles and traps if the callee kept a borrow);
  `ResourceHandle`; `GuestResource(rtype, rep)`.
- `strings`: `string_loader(enc)(cx, ptr, tagged_units) -> str`, `string_storer(enc)(cx, s) -> (ptr,
  tagged_units)`, and the one-off `load_string` / `store_string`.
- `lift`: `compile_lifter(t, encoding) -> Lifter(type, load(cx, ptr), lift_flat(cx, iterator), size,
  align)`; `list_range_loader(element, encoding)(cx, ptr, length)`.
- `lower`: `compile_lowerer(t, encoding) -> Lowerer(type, store(cx, value, ptr), lower_flat(cx, value,
  out_list), size, align)`; `list_range_storer(element, encoding)(cx, value) -> (ptr, length)`.
  Records, variants, flags and handles are in `lower_compound`; `rows` packs records and tuples of
  numbers, strings, lists, enums and flags as one struct (and lists of them as one block); `scalars`
  holds the primitive types' formats, ranges and float bit casts.
- `calls`: `ImportCall(ft, encoding)` (`canon lower`: `.core` signature, `lift_params(cx, flat_args)`,
  `lower_result(cx, value, flat_args)`, `invoke(cx, impl, flat_args) -> flat results`) and
  `ExportCall(ft, encoding)` (`canon lift`: `lower_params(cx, args)`, `lift_result(cx, flat_results)`,
  `call(cx, core, args) -> (result, flat_results)`; post-return is the caller's).

Python value shapes are those of `tauon.wasm.component.codec`: bool/int/float/str (char: a 1-character
str); `list<u8>` as bytes (lowered from bytes, bytearray or memoryview); other lists as lists; tuples as
tuples; records lifted as dicts, lowered from a tuple in field order, a dict, or an object's
attributes; variants `(case, payload)` (lowered also from a bare case name for a case without payload);
enums str; options None or the value; results `("ok", v)` / `("err", e)`; flags a set of str; own and
borrow of a host resource (`ResourceType.host`) its rep (int); of a resource a component implements a
`GuestResource(rtype, rep)`.

Flat core values are Python ints and floats; i32/i64 inputs may be signed (as wasmtime returns them) and
are masked; outputs are unsigned (wasmtime wraps them).
"""
