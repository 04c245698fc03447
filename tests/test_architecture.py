"""The house rules of docs/architecture.md, checked on the import graph (read with ``ast``, nothing run).

Each stage may import only the stages below it; no module imports another module's private name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "evalkit"
SHARED = {"errors", "defaults", "fileio", "number_format"}

#: What each top-level part of the package may import from evalkit (besides itself).
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "defaults": set(),
    "fileio": set(),
    "number_format": set(),
    "metrics": set(),  # pure functions: nothing of evalkit
    "config": SHARED | {"metrics"},
    "data": SHARED | {"config"},
    "runtime": SHARED | {"config", "data"},
    "results": SHARED | {"config", "metrics", "stats"},
    "stats": SHARED | {"config", "metrics", "results"},
    "execution": SHARED | {"config", "data", "runtime", "metrics", "stats", "results"},
    "gate": SHARED | {"config", "metrics", "results"},
    "report": SHARED | {"config", "metrics", "stats", "results"},
    "demo": SHARED | {"config", "data"},
    # compress: NNCF's model making (calibration data, the runtime, the metric as accuracy control)
    "compress": SHARED | {"config", "data", "runtime", "metrics", "stats", "results", "execution"},
    "workflow": SHARED
    | {"config", "data", "runtime", "metrics", "stats", "results", "execution", "gate", "report", "demo"}
    | {"compress"},
    # data: `verify-data` calls data.manifest directly (there is no run to orchestrate).
    "cli": SHARED | {"config", "data", "results", "execution", "gate", "report", "workflow", "demo"},
    "__main__": {"cli"},
    "__init__": {"config", "workflow", "report"},  # the lazy library surface
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, str, int]]:
    """``(imported module, imported name or "", line)`` of every evalkit import of a file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            out += [(target, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            out += [(alias.name, "", node.lineno) for alias in node.names]
    return [(t, n, line) for t, n, line in out if t == "evalkit" or t.startswith("evalkit.")]


FILES = sorted(PACKAGE.rglob("*.py"))


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_a_stage_imports_only_the_stages_below_it(path: Path) -> None:
    part = _part(_module_name(path))
    allowed = ALLOWED[part] | {part}
    bad = []
    for target, name, line in _imports(path):
        imported = _part(target) if target != "evalkit" else name
        if imported == "__version__":
            continue
        if imported not in allowed:
            bad.append(f"line {line}: {target} {name}".strip())
    assert not bad, f"{part} may import only {sorted(allowed)}: " + "; ".join(bad)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_imports_a_private_name(path: Path) -> None:
    bad = [
        f"line {line}: from {target} import {name}"
        for target, name, line in _imports(path)
        if name.startswith("_") and name != "__version__"
    ]
    assert not bad, "; ".join(bad)
