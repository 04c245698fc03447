"""The README's Python blocks are what users paste: every import in them resolves and every name they use
is defined (imported, assigned or built in), so a pasted block fails only for lack of data, never with an
ImportError or a NameError."""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_imports_resolve(index: int) -> None:
    tree = ast.parse(BLOCKS[index])
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(
                    f"{node.module}.{alias.name}"
                ), f"README block {index}: {node.module} has no {alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                importlib.import_module(alias.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            # evalkit.evaluate, evalkit.write_reports, ...: the package's lazy attributes exist
            if node.value.id == "evalkit":
                assert getattr(importlib.import_module("evalkit"), node.attr) is not None


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_block_names_defined(index: int) -> None:
    tree = ast.parse(BLOCKS[index])
    defined = set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, ast.withitem) and isinstance(node.optional_vars, ast.Name):
            defined.add(node.optional_vars.id)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert not used - defined, f"README block {index} uses undefined names {sorted(used - defined)}"
