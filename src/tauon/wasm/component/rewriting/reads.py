"""Request bodies in bulk: retype the byte lists `wasi:io/streams` reads return as latin1 strings.

wasmtime 50's component C API passes a `list<u8>` between guest and host as one 32-byte value per
byte (~25 ms per MiB), while a string crosses as one buffer. The canonical ABI lays out a `list<u8>`
and a `string` the same way (pointer + length, same core signature), and with the `latin1+utf16`
string encoding a string's bytes are exactly the list's bytes. So tauon edits the component's *import
types* (never its code): in each `wasi:io/streams@0.2.*` import, `input-stream.read` and
`blocking-read` return `result<string, stream-error>` instead of `result<list<u8>, stream-error>`, and
their `canon lower` gets `string-encoding=latin1+utf16`. wasmtime then writes the bytes into the guest
in one go (into a buffer the guest's own allocator gives it, as before); the guest sees identical core
calls and identical bytes. codec.py hands the host side bytes as before.

Writes cannot be retyped: the canonical ABI requires a latin1+utf16 string to start at an even
address, and a guest writes from wherever its buffer is (routing.py routes the even ones instead).

Only a shape seen in full is rewritten: every use of the retyped result and of those functions must
be one this module accounts for, else the component is left as it is (and still works, slower).
wasmtime validates the result when compiling it; a rejection falls back to the original (cache.py).

One more condition, checked by running it: lowering latin1 text that is not ASCII, wasmtime allocates
the UTF-8 length and then *shrinks* the buffer with the guest's `realloc`, which the list path never
does. Some allocators refuse that (componentize-py's traps), so `realloc_shrinks` instantiates each
core module that exports the allocator wit-component lowers with, alone, with every import a trap, and
shrinks an allocation; the rewrite is used only if that works. That runs guest code before the app
serves, so it runs under an epoch deadline and a memory cap (PROBE_SECONDS, PROBE_MEMORY), and tauon
runs it only in its compile child process (wasm/sandbox.py); an allocator that does not return in
time is an error (ProbeTimeout), since the app could not serve a request with it either.
"""

from __future__ import annotations

import threading

import wasmtime

from tauon.wasm.component.binary import (
    Def,
    Reader,
    Unsupported,
    apply_edits,
    defvaltype,
    extern_name,
    externdesc,
    functype,
    leb,
    read_alias,
    read_canon,
    read_instance,
    read_sections,
    read_sort,
    skip_deftype,
)

VERSION = 3
"""Part of the compiled-component cache key: a change here must not reuse old artifacts."""

STREAMS_PREFIX = "wasi:io/streams@0.2"
BYTE_FUNCS = frozenset({"[method]input-stream.read", "[method]input-stream.blocking-read"})
"""The functions whose `list<u8>` result becomes a latin1 string."""

_LATIN1_UTF16 = 0x02
_LIST, _RESULT, _U8, _STRING = 0x70, 0x6A, 0x7D, 0x73


def _streams_edit(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """The byte range, in the instance type at data[start:end], of the `list<u8>` ok type of the
    result the read functions return, if only they use that result; else None."""
    r = Reader(data, start, end)
    if r.byte() != 0x42:
        return None
    defs: dict[int, Def] = {}
    exports: dict[str, int] = {}
    count = 0  # the instance type's own type index space
    for _ in range(r.u32()):
        tag = r.byte()
        if tag == 0x01:
            d = Def(r.pos, r.byte())
            if d.kind == 0x40:
                functype(r, d)
            elif d.kind in (0x41, 0x42, 0x3F):
                r.pos -= 1
                skip_deftype(r)
            else:
                defvaltype(r, d)
            defs[count] = d
            count += 1
        elif tag == 0x02:
            if read_alias(r).sort == "type":
                count += 1
        elif tag == 0x04:
            name = extern_name(r)
            ext = externdesc(r)
            if ext.sort == "type":
                count += 1
            elif ext.sort == "func" and ext.index is not None:
                exports[name] = ext.index
        else:
            raise Unsupported("declaration in an interface")
    if r.pos != end:
        raise Unsupported("instance type length")
    readers = {exports[name] for name in BYTE_FUNCS if name in exports}
    if not readers or any(i in readers for n, i in exports.items() if n not in BYTE_FUNCS):
        return None  # no read function, or its function type is shared with another function
    results = {r_ for i in readers for r_ in defs[i].results}
    if len(results) != 1:
        return None
    (result,) = results
    returned = defs.get(result)
    if returned is None or returned.kind != _RESULT or returned.ok is None:
        return None
    listed = defs.get(returned.refs[0])
    if listed is None or listed.kind != _LIST or data[listed.start + 1] != _U8:
        return None
    if any(result in other.refs for i, other in defs.items() if i not in readers):
        return None  # the result type is used elsewhere too
    return returned.ok


def rewrite(data: bytes) -> bytes | None:
    """The component with its byte-stream imports retyped, or None when there is nothing to do or
    the component has a shape this module does not follow."""
    try:
        return _rewrite(data)
    except (Unsupported, IndexError, KeyError):
        return None


def _rewrite(data: bytes) -> bytes | None:
    sections = read_sections(data)
    types: dict[int, tuple[int, int]] = {}  # type index -> byte range of its definition
    counts = {"type": 0, "func": 0, "instance": 0}
    streams: dict[int, int] = {}  # instance index -> its instance type index
    targets: set[int] = set()  # component func indices of the byte functions
    edits: dict[int, bytes] = {}  # offset -> replacement for the byte run at that offset
    removed: dict[int, int] = {}  # offset -> bytes replaced there
    canon_edits: list[tuple[int, int, int]] = []  # (section index, opts offset, opts end)

    def bump(sort: str) -> int:
        if sort not in counts:
            return -1
        counts[sort] += 1
        return counts[sort] - 1

    for sidx, section in enumerate(sections):
        r = Reader(data, section.start, section.end)
        if section.id == 7:
            for _ in range(r.u32()):
                start = r.pos
                skip_deftype(r)
                types[bump("type")] = (start, r.pos)
        elif section.id == 10:
            for _ in range(r.u32()):
                name = extern_name(r)
                ext = externdesc(r)
                index = bump(ext.sort)
                if ext.sort == "instance" and name.startswith(STREAMS_PREFIX) and ext.index is not None:
                    streams[index] = ext.index
        elif section.id == 6:
            for _ in range(r.u32()):
                alias = read_alias(r)
                index = bump(alias.sort)
                if alias.sort == "func" and alias.instance in streams and alias.name in BYTE_FUNCS:
                    targets.add(index)
        elif section.id == 8:
            for _ in range(r.u32()):
                canon = read_canon(r)
                if canon.lifts:
                    bump("func")
                elif canon.op == 0x01 and canon.func in targets:
                    canon_edits.append((sidx, *canon.opts))
        elif section.id == 5:
            for _ in range(r.u32()):
                if any(sort == "func" and index in targets for sort, index in read_instance(r)):
                    return None  # a byte function handed on to an inner component
                bump("instance")
        elif section.id == 11:
            for _ in range(r.u32()):
                extern_name(r)
                sort = read_sort(r)
                index = r.u32()
                if sort == "func" and index in targets:
                    return None
                if r.byte() == 0x01:
                    externdesc(r)
                bump(sort)
        elif section.id == 4:
            pass  # a nested component: its own index spaces
        elif section.id in (0, 1, 2, 3):
            pass  # custom sections and core items: no component-level indices
        else:
            raise Unsupported(f"section {section.id}")
    if not targets or not canon_edits:
        return None
    for type_index in set(streams.values()):
        if type_index not in types:
            return None
        span = _streams_edit(data, *types[type_index])
        if span is None:
            return None
        edits[span[0]] = bytes([_STRING])  # result<list<u8>, E> -> result<string, E>
        removed[span[0]] = span[1] - span[0]
    for _sidx, opts_start, opts_end in canon_edits:
        r = Reader(data, opts_start, opts_end)
        opts = bytearray()
        n = 0
        for _ in range(r.u32()):
            opt = r.byte()
            if opt in (0x00, 0x01, 0x02):
                continue  # replaced below
            opts.append(opt)
            if opt in (0x03, 0x04, 0x05, 0x07):
                opts += leb(r.u32())
            n += 1
        opts.append(_LATIN1_UTF16)
        edits[opts_start] = leb(n + 1) + bytes(opts)
        removed[opts_start] = opts_end - opts_start
    return apply_edits(data, sections, edits, removed)


_REALLOCS = ("cabi_import_realloc", "cabi_realloc")
"""The exports wit-component lowers imports with, in its order of preference."""

PROBE_SECONDS = 2.0
"""Wall-clock budget of the allocator calls of one core module (a few calls that return at once)."""
PROBE_MEMORY = 64 << 20
"""Linear memory a probed module may grow to."""


class ProbeTimeout(Exception):
    """An allocator under probe did not return within PROBE_SECONDS."""

    def __init__(self, export: str) -> None:
        super().__init__(f"probing its allocator ({export}) at compile time did not finish within "
                         f"{PROBE_SECONDS:g} s")
        self.export = export


def realloc_shrinks(data: bytes) -> bool:
    """True if every core module of the component that exports the import allocator can shrink an
    allocation it made, run on its own (no instance of the app is involved). Raises ProbeTimeout."""
    try:
        modules = [data[s.start:s.end] for s in read_sections(data) if s.id == 1]
    except (Unsupported, IndexError):
        return False
    config = wasmtime.Config()
    config.cranelift_opt_level = "none"  # run once, a few calls: compile fast
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    probed = 0
    for binary in sorted(modules, key=len):  # small ones (adapters) first: a refusal ends it early
        if not any(name.encode() in binary for name in _REALLOCS):
            continue  # cannot export it: skip compiling
        outcome = _probe_module(engine, binary)
        if outcome is False:
            return False
        probed += outcome is True
    return probed > 0


def _probe_module(engine: wasmtime.Engine, binary: bytes) -> bool | None:
    """Whether this module's allocator shrinks; None when it exports none."""
    try:
        module = wasmtime.Module(engine, binary)
    except wasmtime.WasmtimeError:
        return False
    name = next((n for n in _REALLOCS if n in {e.name for e in module.exports}), None)
    if name is None:
        return None
    store = wasmtime.Store(engine)
    store.set_limits(memory_size=PROBE_MEMORY)
    store.set_epoch_deadline(1)  # one tick of the timer below interrupts it
    timer = threading.Timer(PROBE_SECONDS, engine.increment_epoch)
    timer.daemon = True
    timer.start()
    try:
        linker = wasmtime.Linker(engine)
        _define_fresh_state(store, linker, module)
        linker.define_unknown_imports_as_traps(module)
        realloc = linker.instantiate(store, module).exports(store)[name]
        assert isinstance(realloc, wasmtime.Func)
        first = realloc(store, 0, 0, 2, 64)
        second = realloc(store, first, 64, 2, 32)
    except wasmtime.Trap as exc:
        if exc.trap_code == wasmtime.TrapCode.INTERRUPT:
            raise ProbeTimeout(name) from None
        return False
    except (wasmtime.WasmtimeError, TypeError, AssertionError):
        return False
    finally:
        timer.cancel()
    return bool(first and second and second % 2 == 0)


def _define_fresh_state(store: wasmtime.Store, linker: wasmtime.Linker, module: wasmtime.Module) -> None:
    """Memories, tables and globals a module imports (an adapter imports the main module's): fresh
    ones of the declared type; globals start at zero."""
    for item in module.imports:
        ty = item.type
        value: wasmtime.Memory | wasmtime.Table | wasmtime.Global
        if isinstance(ty, wasmtime.MemoryType):
            value = wasmtime.Memory(store, ty)
        elif isinstance(ty, wasmtime.TableType):
            value = wasmtime.Table(store, ty, None)
        elif isinstance(ty, wasmtime.GlobalType):
            zero = {"i32": wasmtime.Val.i32(0), "i64": wasmtime.Val.i64(0), "f32": wasmtime.Val.f32(0.0),
                    "f64": wasmtime.Val.f64(0.0)}.get(str(ty.content))
            if zero is None:
                raise TypeError(f"global of type {ty.content}")
            value = wasmtime.Global(store, ty, zero)
        else:
            continue
        linker.define(store, item.module, item.name or "", value)


