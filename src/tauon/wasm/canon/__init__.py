"""The Component Model's canonical ABI, in Python, over core wasm linear memory (issue 19).

`types` is the component value-type model every other part shares (the component parser builds it,
lifting and lowering walk it). Pure: no wasmtime, no I/O.
"""
