"""The README's Python blocks are what users paste: every import in them resolves and every name they use
is defined (imported, assigned or built in); every block not marked ``<!-- readme-snippet: not run (why) -->``
runs as written, on the stand-ins and data ``evalkit demo`` builds; and every option of every command's
``--help`` is documented in the README, so neither can drift."""

from __future__ import annotations

import argparse
import ast
import builtins
import contextlib
import importlib
import importlib.util
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
README_TEXT = README.read_text(encoding="utf-8")
#: (marker before the block or "", block text) for every ```python block
MARKED_BLOCKS = re.findall(
    r"(<!-- readme-snippet: not run \(.+?\) -->\n)?```python\n(.*?)```", README_TEXT, flags=re.S
)
BLOCKS = [block for _, block in MARKED_BLOCKS]
RUN_BLOCKS = [block for marker, block in MARKED_BLOCKS if not marker]


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


def test_every_block_not_run_says_why_and_the_library_example_runs() -> None:
    not_run = [block for marker, block in MARKED_BLOCKS if marker]
    assert len(not_run) <= 1 and all("DaskExecutor" in b for b in not_run)  # only the Dask sketch
    assert any("run_and_report" in b and "evaluate" in b for b in RUN_BLOCKS)


@pytest.mark.parametrize("index", range(len(RUN_BLOCKS)))
def test_readme_block_runs_as_written_on_the_demo_inputs(
    index: int, standins, synthetic_data, tmp_path: Path, monkeypatch, capsys
) -> None:
    """The README says: run from the repository's folder, after `evalkit demo`. Here: a copy of its
    configs/ in a temporary folder (nothing lands in the checkout), and the demo cache laid out as
    `evalkit demo` leaves it, with the session's stand-ins and data (built once per test run)."""
    from evalkit import defaults
    from evalkit.workflow import demo_cache_dir, demo_inputs_ready

    monkeypatch.setenv("EVALKIT_CACHE_DIR", str(tmp_path / "cache"))
    demo = demo_cache_dir()
    demo.mkdir(parents=True)
    data = synthetic_data(defaults.DEMO_PAIRS)
    shutil.copytree(Path(standins.original).parent, demo / "models")
    shutil.copytree(Path(data.pairs).parent, demo / f"data-{defaults.DEMO_PAIRS}")
    assert demo_inputs_ready()  # what `evalkit demo` would reuse, so what the README's reader has
    work = tmp_path / "work"
    shutil.copytree(REPO / "configs", work / "configs")
    monkeypatch.chdir(work)

    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(RUN_BLOCKS[index], f"README.md python block {index}", "exec"), namespace)

    err = capsys.readouterr().err
    if "run_and_report" in RUN_BLOCKS[index]:
        outcome = namespace["outcome"]
        assert outcome.passed and outcome.result.dataset.n_pairs == 8  # limit=8 of the 32 demo pairs
        for name in ("results.json", "summary.csv", "per_sample.csv", "report.md", "report.html", "gate.md"):
            assert (work / "reports" / "x" / name).is_file(), name
        # progress=True: the command line's display (log lines, stderr is no terminal here), 8 pairs each
        assert "original 8/8" in err and "converted 8/8" in err and "verifier 8/8" in err
        # evaluate() without progress= shows none: no line for its 4 pairs
        assert "4/4" not in err
        result = namespace["result"]
        assert result.dataset.n_pairs == 4 and result.models["converted"].metrics.fid > 0
        assert (work / "elsewhere" / "report.md").is_file()


def _help_options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, long option) for every option each --help lists, subcommands included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _help_options(sub, (*path, name))
        elif action.help != argparse.SUPPRESS:
            for option in action.option_strings:
                if option.startswith("--") and option != "--help":
                    yield path, option


def _documented(command: tuple[str, ...], option: str) -> bool:
    pattern = re.compile(re.escape(option) + r"(?![\w-])")
    if command in ((), ("run",), ("check",)):
        # evalkit's own and run's options (check's are run's): anywhere in the README
        return bool(pattern.search(README_TEXT))
    # the other commands' options: on a line that names the command, so that `report --output` is not
    # taken as documented by `run --output`
    name = " ".join(command)
    names = (f"`{name}`", f"evalkit {name}")
    return any(
        pattern.search(line) and any(n in line for n in names) for line in README_TEXT.splitlines()
    )


def test_every_option_of_every_help_is_in_the_readme(capsys) -> None:
    from evalkit import cli

    parser = cli.build_parser()
    found = list(_help_options(parser))
    commands = {c for c, _ in found}
    assert {("run",), ("gate",), ("report",), ("demo",), ("cache", "clear")} <= commands
    missing = [f"evalkit {' '.join(c)} {o}".replace("  ", " ") for c, o in found if not _documented(c, o)]
    assert not missing, f"options in --help but not in README.md: {missing}"
    # and --help itself lists them: the parser walked is the one `evalkit CMD --help` prints
    for command in (["gate"], ["report"], ["demo"], ["cache", "clear"]):
        with contextlib.suppress(SystemExit):
            cli.main([*command, "--help"])
        out = capsys.readouterr().out
        for c, option in found:
            if list(c) == command:
                assert option in out, (command, option)


def test_progress_argument_is_off_by_default_and_true_gives_the_console_display() -> None:
    from evalkit.execution.pipeline import ConsoleProgress, progress_display

    assert not isinstance(progress_display(None), ConsoleProgress)
    assert not isinstance(progress_display(False), ConsoleProgress)
    assert isinstance(progress_display(True), ConsoleProgress)
    mine = ConsoleProgress()
    assert progress_display(mine) is mine


MATRIX = README_TEXT.split("### Bad input: the matrix", 1)[-1].split("\n## ", 1)[0].split("\n### ", 1)[0]
MATRIX_TESTS = re.findall(r"`(tests/test_\w+\.py)::(test_\w+)` \|", MATRIX)
#: tests of the matrix file that check good input (the controls), not a case
GOOD_INPUT_CONTROLS = {"test_rgb_mask_with_equal_channels_is_read_as_gray", "test_check_passes_on_good_input"}


def test_readme_bad_input_matrix_names_existing_tests_and_every_case_of_the_matrix_file() -> None:
    assert len(MATRIX_TESTS) >= 30
    for file, name in MATRIX_TESTS:
        assert re.search(rf"^def {name}\(", (REPO / file).read_text(encoding="utf-8"), flags=re.M), (
            f"README's bad-input matrix names {file}::{name}, which does not exist"
        )
    listed = {name for file, name in MATRIX_TESTS if file == "tests/test_bad_input.py"}
    matrix_file = (REPO / "tests" / "test_bad_input.py").read_text(encoding="utf-8")
    cases = set(re.findall(r"^def (test_\w+)\(", matrix_file, flags=re.M))
    assert cases - GOOD_INPUT_CONTROLS - listed == set(), "a bad-input case without its row in the README"
