"""Every ```python example of the docs compiles, and every name it imports from omnistock
exists (the examples that need a running service are run by tests/integration)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from tests.transcripts import pages, python_blocks

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = [
    (page, index, code)
    for page in pages(ROOT)
    for index, code in enumerate(python_blocks(page.read_text(encoding="utf-8")))
]


@pytest.mark.parametrize(
    ("page", "index", "code"),
    EXAMPLES,
    ids=[f"{page.relative_to(ROOT)}#{index + 1}" for page, index, _ in EXAMPLES],
)
def test_a_python_example_compiles_and_imports_what_exists(page: Path, index: int, code: str) -> None:
    tree = ast.parse(code, filename=f"{page.name} example {index + 1}")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("omnistock"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("omnistock"):
                    importlib.import_module(alias.name)


def test_the_docs_have_python_examples() -> None:
    assert len(EXAMPLES) >= 4
