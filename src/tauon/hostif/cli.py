"""wasi:cli 0.2: environment (exactly the component's `env`, as in Spin), exit, stdio, no terminal.

For HTTP components stdin is empty and stdout and stderr are logged line by line, tagged with the app
and component. A command run per request (WAGI) puts a `CommandIO` in the request's
`state.extensions["cli"]`: its arguments and environment, the request body as stdin, and a bounded
buffer capturing stdout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tauon.hostif.io import InputStream, LogOutput, OutputStream, StreamFailed
from tauon.hostif.registry import HostInterface, HostTrap
from tauon.hostif.state import HostState

EXTENSION = "cli"


class BytesInput(InputStream):
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._offset = 0

    def read(self, n: int) -> bytes | None:
        if self._offset >= len(self._data):
            return None
        chunk = bytes(self._data[self._offset:self._offset + n])
        self._offset += len(chunk)
        return chunk


class CapturedOutput(OutputStream):
    """Guest stdout kept in memory up to `limit` bytes; past it, writes fail and `overflowed` is set."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data = bytearray()
        self.overflowed = False

    def write(self, data: bytes) -> None:
        if len(self.data) + len(data) > self.limit:
            self.overflowed = True
            raise StreamFailed(f"stdout is over the limit of {self.limit} bytes")
        self.data += data


@dataclass
class CommandIO:
    arguments: list[str]
    environment: list[tuple[str, str]]
    stdin: bytes
    stdout: CapturedOutput = field(default_factory=lambda: CapturedOutput(64 * 1024 * 1024))


def _command(state: HostState) -> CommandIO | None:
    command = state.extensions.get(EXTENSION)
    return command if isinstance(command, CommandIO) else None


class GuestExit(HostTrap):
    def __init__(self, code: int) -> None:
        super().__init__(f"guest called exit with status {code}")
        self.code = code


def get_environment(state: HostState) -> list[tuple[str, str]]:
    command = _command(state)
    return list(command.environment) if command is not None else list(state.config.env)


def get_arguments(state: HostState) -> list[str]:
    command = _command(state)
    return list(command.arguments) if command is not None else []


def initial_cwd(state: HostState) -> str | None:
    return None


def exit_(state: HostState, status: tuple[str, Any]) -> None:
    state.exit_code = 0 if status[0] == "ok" else 1
    raise GuestExit(state.exit_code)


def exit_with_code(state: HostState, code: int) -> None:
    state.exit_code = code
    raise GuestExit(code)


def get_stdin(state: HostState) -> int:
    command = _command(state)
    return state.table.push(BytesInput(command.stdin) if command is not None else InputStream())


def get_stdout(state: HostState) -> int:
    command = _command(state)
    if command is not None:
        return state.table.push(command.stdout)
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
