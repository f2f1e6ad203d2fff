"""wasi:cli 0.3 (and its 2026-03-15 release candidate), as Spin 4 links it from wasmtime-wasi.

The environment is the component's `environment` (as for 0.2; no arguments, no working directory),
`exit` ends the guest with its status, and no stdio is a terminal. 0.3 renamed `initial-cwd` to
`get-initial-cwd`; `exit-with-code` exists in 0.3.0 only (the release candidate lacks it).
"""

from __future__ import annotations

from tauon.hostif.cli import exit_, exit_with_code, get_arguments, get_environment, initial_cwd, no_terminal
from tauon.hostif.registry import HostInterface, p3_name

INTERFACES = [
    HostInterface(p3_name("wasi:cli/environment"), {
        "get-environment": get_environment,
        "get-arguments": get_arguments,
        "get-initial-cwd": initial_cwd,
    }),
    HostInterface(p3_name("wasi:cli/exit"), {"exit": exit_, "exit-with-code": exit_with_code}),
    HostInterface(p3_name("wasi:cli/terminal-input"), {}, ("terminal-input",)),
    HostInterface(p3_name("wasi:cli/terminal-output"), {}, ("terminal-output",)),
    HostInterface(p3_name("wasi:cli/terminal-stdin"), {"get-terminal-stdin": no_terminal}),
    HostInterface(p3_name("wasi:cli/terminal-stdout"), {"get-terminal-stdout": no_terminal}),
    HostInterface(p3_name("wasi:cli/terminal-stderr"), {"get-terminal-stderr": no_terminal}),
]
