"""The code's shape: no function or method in the CLI, the server or the pipeline runs over 60 lines."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "sd1kit"
PACKAGES = ("cli", "server", "pipeline")
MAX_LINES = 60


def _long_functions(path: Path) -> list[str]:
    """Every function or method (nested ones on their own; an enclosing one's span includes them) over MAX_LINES."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_LINES:
                out.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return out


def test_no_function_over_60_lines():
    offenders = [f for package in PACKAGES for path in sorted((SRC / package).rglob("*.py"))
                 for f in _long_functions(path)]
    assert not offenders, f"functions over {MAX_LINES} lines:\n" + "\n".join(offenders)
