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
