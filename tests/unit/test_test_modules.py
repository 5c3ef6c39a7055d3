"""No test module imports another test module: what tests share lives in helper modules
beside tests/clients.py, so running (or collecting) one test file never runs another's."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_test_modules(path: Path) -> list[str]:
    """The `test_*` modules a file imports."""
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        found += [
            n for n in names if n.startswith("tests.") and n.rpartition(".")[2].startswith("test_")
        ]
    return found


def test_no_test_module_imports_another() -> None:
    modules = sorted(TESTS.rglob("test_*.py"))
    assert len(modules) > 50
    offenders = {str(p.relative_to(TESTS)): imported_test_modules(p) for p in modules}
    assert {name: found for name, found in offenders.items() if found} == {}
