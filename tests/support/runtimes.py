"""Running component tests on each component runtime (`--component-runtime wasmtime|tauon`, issue 19).

A test (or a fixture) that asks for the `component_runtime` fixture (tests/conftest.py) runs once per
runtime; `@pytest.mark.runtimes("wasmtime")` limits a test to the runtimes it names (a slow module runs
the tauon variant only where it exercises a distinct runtime path). While the fixture is active,
`support.daemon.run_tauon` adds `--component-runtime X` to the daemon's arguments and, on tauon,
fails a test whose daemon logged that a component fell back to the wasmtime path (unless the test
expects it); in-process tests put `component_runtime` in their GenerationPlan or executor themselves.

The fixture is module-scoped so that a module's daemon fixtures (which must ask for it) start once per
runtime, not once per test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

RUNTIMES = ("wasmtime", "tauon")
FALLBACK = "the tauon component runtime cannot run this component"
"""What tauon logs (executors/runtime_choice.py) when a component falls back to the wasmtime path."""
ON_TAUON = re.compile(r"(\S+): runs on the tauon component runtime")

_selected: list[str | None] = [None]


def selected() -> str | None:
    """The runtime the running test selected; None outside the `component_runtime` fixture."""
    return _selected[0]


@contextmanager
def selecting(runtime: str | None) -> Iterator[str | None]:
    """Select `runtime` (None: the default, nothing passed to the daemon) while in the block."""
    if runtime is not None and runtime not in RUNTIMES:
        raise ValueError(f"unknown component runtime {runtime!r}")
    previous = _selected[0]
    _selected[0] = runtime
    try:
        yield runtime
    finally:
        _selected[0] = previous


def daemon_args() -> tuple[str, ...]:
    """The `tauon` arguments that select the runtime (none outside the fixture: the default applies)."""
    runtime = _selected[0]
    return ("--component-runtime", runtime) if runtime is not None else ()


def on_tauon(log: str) -> set[str]:
    """The `app.json/component` names a daemon log says run on the tauon runtime."""
    return set(ON_TAUON.findall(log))


def check_daemon_log(log: str) -> None:
    """On the tauon runtime: some component ran on it, and none fell back to the wasmtime path (either
    would let a test pass without exercising the runtime it claims to)."""
    if _selected[0] != "tauon":
        return
    lines = [line for line in log.splitlines() if FALLBACK in line]
    assert not lines, "component(s) fell back to the wasmtime path:\n" + "\n".join(lines)
    assert on_tauon(log), "no component ran on the tauon runtime (the log never says one does)"


def check_on_tauon(log: str, *names: str) -> None:
    """On the tauon runtime, each `app.json/component` in `names` runs on it."""
    if _selected[0] == "tauon":
        missing = set(names) - on_tauon(log)
        assert not missing, f"not on the tauon runtime: {sorted(missing)}"
