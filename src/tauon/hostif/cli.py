"""wasi:cli 0.2: environment (exactly the component's `env`, as in Spin), exit, stdio, no terminal.

stdin is empty for HTTP components; stdout and stderr are logged line by line, tagged with the app
and component.
"""

from __future__ import annotations

from typing import Any

from tauon.hostif.io import InputStream, LogOutput
from tauon.hostif.registry import HostInterface, HostTrap
from tauon.hostif.state import HostState


class GuestExit(HostTrap):
    def __init__(self, code: int) -> None:
        super().__init__(f"guest called exit with status {code}")
        self.code = code


def get_environment(state: HostState) -> list[tuple[str, str]]:
    return list(state.config.env)


def get_arguments(state: HostState) -> list[str]:
    return []


def initial_cwd(state: HostState) -> str | None:
    return None


def exit_(state: HostState, status: tuple[str, Any]) -> None:
    state.exit_code = 0 if status[0] == "ok" else 1
    raise GuestExit(state.exit_code)


def exit_with_code(state: HostState, code: int) -> None:
    state.exit_code = code
    raise GuestExit(code)


def get_stdin(state: HostState) -> int:
    return state.table.push(InputStream())


def get_stdout(state: HostState) -> int:
    return state.table.push(LogOutput(state.stdout.write))


def get_stderr(state: HostState) -> int:
    return state.table.push(LogOutput(state.stderr.write))


def no_terminal(state: HostState) -> None:
    return None


INTERFACES = [
    HostInterface("wasi:cli/environment", {
        "get-environment": get_environment,
        "get-arguments": get_arguments,
        "initial-cwd": initial_cwd,
    }),
    HostInterface("wasi:cli/exit", {"exit": exit_, "exit-with-code": exit_with_code}),
    HostInterface("wasi:cli/stdin", {"get-stdin": get_stdin}),
    HostInterface("wasi:cli/stdout", {"get-stdout": get_stdout}),
    HostInterface("wasi:cli/stderr", {"get-stderr": get_stderr}),
    HostInterface("wasi:cli/terminal-input", {}, ("terminal-input",)),
    HostInterface("wasi:cli/terminal-output", {}, ("terminal-output",)),
    HostInterface("wasi:cli/terminal-stdin", {"get-terminal-stdin": no_terminal}),
    HostInterface("wasi:cli/terminal-stdout", {"get-terminal-stdout": no_terminal}),
    HostInterface("wasi:cli/terminal-stderr", {"get-terminal-stderr": no_terminal}),
]
