"""The layout's promises: which package may import which (DESIGN.md, "What it is").

contract/ is shared and imports neither side; service/ never imports the worker, pygit2 or
DuckDB; the engine runs with no queue, no GitHub and no web framework; test modules share code
only through tests/support.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# (folder, top-level modules that nothing under it may import)
FORBIDDEN = [
    ("contract", {"service", "worker"}),
    ("service", {"worker", "pygit2", "duckdb"}),
    ("worker", {"service"}),
    ("worker/engine", {"arq", "redis", "gidgethub", "aiohttp"}),
]


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, dotted module) of every absolute import in a Python file, nested ones included."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize(("folder", "forbidden"), FORBIDDEN, ids=[f for f, _ in FORBIDDEN])
def test_a_layer_imports_only_what_it_may(folder: str, forbidden: set[str]) -> None:
    offending = [
        f"{path.relative_to(ROOT)}:{line}: {module}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for line, module in imported_modules(path)
        if module.split(".")[0] in forbidden
    ]
    assert offending == []


def test_the_rules_catch_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from worker.engine import fetch\n")
    assert [m for _, m in imported_modules(module)] == ["os", "worker.engine"]


@pytest.mark.parametrize("entry", ["worker.engine.pipeline", "worker.cli"])
def test_the_engine_and_command_line_load_no_queue_github_or_web(entry: str) -> None:
    probe = (
        f"import sys, {entry}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(result.stdout.split())
    assert "pygit2" in loaded  # the probe saw the engine's own imports
    assert loaded & {"arq", "redis", "gidgethub", "aiohttp"} == set()


def test_test_modules_share_code_only_through_support() -> None:
    offending = [
        f"{path.name}:{line}: {module}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for line, module in imported_modules(path)
        if module.startswith("tests.test_") or module == "conftest"
    ]
    assert offending == []
