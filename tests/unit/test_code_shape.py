"""The size limits the project keeps (README, Development): modules under ~400 lines, functions under
60. A module or function past them is a sign it holds two responsibilities; split it rather than
raise the limits."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src" / "tauon"
MAX_MODULE_LINES = 410
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(SOURCE.rglob("*.py"))


def test_the_source_tree_is_where_expected() -> None:
    assert len(_modules()) > 100  # the checks below would pass vacuously on a wrong path


def test_every_module_stays_under_the_line_limit() -> None:
    long = {str(path.relative_to(SOURCE)): n for path in _modules()
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert long == {}


def test_every_function_stays_under_the_line_limit() -> None:
    long = {}
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(SOURCE)}:{node.name}"] = lines
    assert long == {}
