"""Shared fixtures: paths to the committed fixture and to ../shared (present in the dev checkout and CI)."""

from __future__ import annotations

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


def standin_config(standins, root: Path, pairs: Path):
    """The demo config with the stand-ins (``original``, ``converted``, verifier) and a data set filled in."""
    from evalkit import config as cfg

    overrides = cfg.Overrides(
        data_root=root,
        pairs=pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
    )
    return cfg.apply_overrides(cfg.load_config(cfg.bundled_config("demo.yaml")), overrides)
