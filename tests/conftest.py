"""Shared fixtures: the stand-in models and synthetic data sets (built once per test run, in pytest's
temporary folder), paths to the committed fixture and to ../shared (present in the dev checkout and CI).

Nothing here writes into the checkout: every test runs with ``EVALKIT_CACHE_DIR`` in a temporary folder,
and :func:`standin_config` leaves ``output`` unset, so a run journals nowhere unless a test gives a folder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REAL_PAIRS = SHARED / "data" / "ade20k_ref_test.txt"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def real_pairs_file() -> Path:
    """The real 2000-line CoCosNet pairs file from ../shared; skipped where it is absent (a fresh clone)."""
    if not REAL_PAIRS.is_file():
        pytest.skip(f"{REAL_PAIRS} not present (only in a checkout beside ../shared)")
    return REAL_PAIRS


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """Every test (and every evalkit subprocess) uses a fresh cache folder, never the user's own."""
    import os

    old = os.environ.get("EVALKIT_CACHE_DIR")
    os.environ["EVALKIT_CACHE_DIR"] = str(tmp_path_factory.mktemp("evalkit-cache"))
    yield
    if old is None:
        os.environ.pop("EVALKIT_CACHE_DIR", None)
    else:
        os.environ["EVALKIT_CACHE_DIR"] = old


@pytest.fixture(autouse=True, scope="session")
def _no_github_step_summary():
    """Gated tests run under GitHub Actions must not append their tables to the real job summary."""
    import os

    old = os.environ.pop("GITHUB_STEP_SUMMARY", None)
    yield
    if old is not None:
        os.environ["GITHUB_STEP_SUMMARY"] = old


@pytest.fixture(scope="session")
def standins(tmp_path_factory: pytest.TempPathFactory):
    """The stand-in models (seed 0: ``original``, ``original_baked``, ``converted``, ``verifier``), built once
    per test run. Read-only for tests: one that needs a broken model writes its own copy."""
    from evalkit.demo.models import save_standins

    return save_standins(tmp_path_factory.mktemp("standins"))


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., object]:
    """``synthetic_data(n_pairs, sizes=None, seed=0)``: a synthetic ADE20k tree and its pairs file, built
    once per test run and set of parameters. Shared: a test that breaks a file copies the tree first (or
    puts the file back)."""
    from evalkit.demo.dataset import build_synthetic_ade20k

    built: dict[tuple, object] = {}

    def build(n_pairs: int, sizes: Sequence[tuple[int, int]] | None = None, seed: int = 0):
        key = (n_pairs, None if sizes is None else tuple(tuple(s) for s in sizes), seed)
        if key not in built:
            folder = tmp_path_factory.mktemp(f"data-{n_pairs}")
            built[key] = build_synthetic_ade20k(folder, n_pairs=n_pairs, sizes=sizes, seed=seed)
        return built[key]

    return build


def standin_config(standins, root: Path, pairs: Path):
    """The demo config with the stand-ins (``original``, ``converted``, verifier) and a data set filled in;
    ``output`` unset (a run journals only where a test says, never into the checkout)."""
    from evalkit import config as cfg

    overrides = cfg.Overrides(
        data_root=root,
        pairs=pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
    )
    config = cfg.apply_overrides(cfg.load_config(cfg.bundled_config("demo.yaml")), overrides)
    return replace(config, output=None)


def evaluate_standins(standins, root: Path, pairs: Path, output: Path | None = None, **kwargs):
    """``evalkit.evaluate`` of the demo config with the stand-ins (``original``, ``converted``, verifier) on
    the data set ``root`` / ``pairs``; ``kwargs`` as for :func:`evalkit.evaluate`."""
    import evalkit
    from evalkit import config as cfg

    return evalkit.evaluate(
        cfg.bundled_config("demo.yaml"),
        data_root=root,
        pairs=pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
        output=output,
        **kwargs,
    )


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The single line a bad-input exit prints on stderr."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("evalkit: error: ")
    return lines[0]


def start_run_until_journaled(cmd: list[str], output: Path, n_records: int, *, stderr=None):
    """Start ``cmd`` (an ``evalkit run`` into ``output``) and return its process once its journal holds
    ``n_records`` finished pairs, still running (tests then interrupt it)."""
    import subprocess
    import time

    from evalkit.execution.journal import JOURNAL_DIR

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr or subprocess.DEVNULL, text=True)
    journal = output / JOURNAL_DIR / "records.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and len(journal.read_text().splitlines()) >= n_records:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    return proc
