"""Inception Score (evalkit.metrics.inception_score)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.metrics import inception_score

# --- helpers -------------------------------------------------------------------------------------------


def _softmax_rows(n: int, c: int, seed: int, temperature: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, (n, c)) / temperature
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _is_loops(probs: np.ndarray, eps: float = 1e-16) -> float:
    """IS with explicit loops over images and classes, in Python floats."""
    n, c = probs.shape
    marginal = [sum(float(probs[i, j]) for i in range(n)) / n for j in range(c)]
    total = 0.0
    for i in range(n):
        for j in range(c):
            p = float(probs[i, j])
            total += p * (math.log(p + eps) - math.log(marginal[j] + eps))
    return math.exp(total / n)


def _is_transcription(probs: np.ndarray, eps: float = 1e-16) -> float:
    """IS as exp of the mutual information, written with entropies: H(pm) - mean H(p_i) (+eps terms)."""
    p = probs.astype(np.float64)
    pm = p.mean(axis=0)
    cross = -(p * np.log(pm + eps)).sum(axis=1)  # -sum_j p_ij log pm_j
    entropy = -(p * np.log(p + eps)).sum(axis=1)
    return float(np.exp(np.mean(cross - entropy)))


# --- fidelity vs oracles -------------------------------------------------------------------------------


class TestFidelity:
    def test_matches_loop_transcription(self):
        probs = _softmax_rows(7, 5, seed=0)
        mean, std = inception_score(probs)
        assert mean == pytest.approx(_is_loops(probs), rel=1e-12)
        assert std == 0.0

    @pytest.mark.parametrize("seed", range(3))
    def test_matches_transcription_on_1001_classes(self, seed):
        probs = _softmax_rows(200, 1001, seed=seed, temperature=0.3)
        assert inception_score(probs)[0] == pytest.approx(_is_transcription(probs), rel=1e-12)

    def test_zero_probabilities_allowed(self):
        probs = np.array([[0.5, 0.5, 0.0], [0.0, 0.25, 0.75], [1.0, 0.0, 0.0]])
        assert inception_score(probs)[0] == pytest.approx(_is_loops(probs), rel=1e-12)

    def test_float32_input_computed_in_float64(self):
        probs = _softmax_rows(50, 30, seed=1).astype(np.float32)
        assert inception_score(probs)[0] == pytest.approx(_is_loops(probs.astype(np.float64)), rel=1e-12)

    def test_uniform_probs_give_one(self):
        probs = np.full((12, 10), 0.1)
        assert inception_score(probs) == (pytest.approx(1.0, abs=1e-12), 0.0)

    @pytest.mark.parametrize("c", [2, 10, 1001])
    def test_distinct_one_hot_gives_number_of_classes(self, c):
        probs = np.eye(c)[np.random.default_rng(c).permutation(c)]
        assert inception_score(probs)[0] == pytest.approx(c, rel=1e-12)

    def test_splits_match_per_split_transcription(self):
        probs = _softmax_rows(23, 6, seed=2)
        order = np.random.default_rng(5).permutation(23)
        scores = [_is_loops(part) for part in np.array_split(probs[order], 4)]
        mean, std = inception_score(probs, splits=4, seed=5)
        assert mean == pytest.approx(np.mean(scores), rel=1e-12)
        assert std == pytest.approx(np.std(scores), rel=1e-10)

    def test_background_class_not_dropped(self):
        # Dropping or renormalising column 0 would change the score; it is used as given.
        probs = _softmax_rows(40, 11, seed=3)
        renormalised = probs[:, 1:] / probs[:, 1:].sum(axis=1, keepdims=True)
        assert inception_score(probs)[0] != pytest.approx(inception_score(renormalised)[0], rel=1e-6)


# --- properties ----------------------------------------------------------------------------------------


@st.composite
def probability_rows(draw):
    n = draw(st.integers(1, 12))
    c = draw(st.integers(1, 12))
    weights = draw(
        st.lists(
            st.lists(st.floats(0.0, 1.0, allow_subnormal=False), min_size=c, max_size=c).filter(
                lambda row: sum(row) > 1e-3
            ),
            min_size=n,
            max_size=n,
        )
    )
    array = np.array(weights, dtype=np.float64)
    return array / array.sum(axis=1, keepdims=True)


class TestProperties:
    @settings(max_examples=80, deadline=None)
    @given(probs=probability_rows())
    def test_bounded_by_one_and_number_of_classes(self, probs):
        mean, std = inception_score(probs)
        assert 1.0 - 1e-12 <= mean <= probs.shape[1] * (1.0 + 1e-12)
        assert std == 0.0

    @settings(max_examples=40, deadline=None)
    @given(probs=probability_rows(), data=st.data())
    def test_splits_bounded(self, probs, data):
        splits = data.draw(st.integers(1, probs.shape[0]))
        mean, std = inception_score(probs, splits=splits, seed=data.draw(st.integers(0, 10)))
        assert 1.0 - 1e-12 <= mean <= probs.shape[1] * (1.0 + 1e-12)
        assert std >= 0.0

    @settings(max_examples=40, deadline=None)
    @given(probs=probability_rows(), seed=st.integers(0, 2**32 - 1))
    def test_single_split_invariant_to_row_order(self, probs, seed):
        shuffled = probs[np.random.default_rng(seed).permutation(len(probs))]
        assert inception_score(shuffled)[0] == pytest.approx(inception_score(probs)[0], rel=1e-12)


# --- validation errors ---------------------------------------------------------------------------------


class TestValidation:
    def test_logits_rejected(self):
        logits = np.random.default_rng(0).normal(0.0, 3.0, (4, 5))
        message = r"inception_score: probs .*pass softmax probabilities, not logits"
        with pytest.raises(ValueError, match=message):
            inception_score(logits)

    def test_unnormalised_rows_rejected_with_row_index(self):
        probs = _softmax_rows(5, 4, seed=0)
        probs[3] *= 1.01
        message = r"rows must sum to 1 \(within 0.001\), row 3 sums to 1.01.*not logits"
        with pytest.raises(ValueError, match=message):
            inception_score(probs)

    def test_small_normalisation_error_tolerated(self):
        probs = _softmax_rows(5, 4, seed=0).astype(np.float16)  # rows off by ~1e-4
        assert np.isfinite(inception_score(probs)[0])

    def test_nan_rejected(self):
        probs = _softmax_rows(5, 4, seed=0)
        probs[1, 2] = np.nan
        with pytest.raises(ValueError, match=r"inception_score: probs contains NaN or inf"):
            inception_score(probs)

    def test_one_dimensional_rejected(self):
        with pytest.raises(ValueError, match=r"probs must be a 2-D N x C array.*np.stack"):
            inception_score(np.full(10, 0.1))

    def test_non_numeric_rejected(self):
        with pytest.raises(ValueError, match=r"probs must be a real floating-point array"):
            inception_score(np.array([["a", "b"]]))

    @pytest.mark.parametrize("splits", [0, 6, 2.0, True])
    def test_bad_splits(self, splits):
        probs = _softmax_rows(5, 4, seed=0)
        message = r"splits must be an integer between 1 and the number of images \(5\)"
        with pytest.raises(ValueError, match=message):
            inception_score(probs, splits=splits)


# --- determinism ---------------------------------------------------------------------------------------


class TestDeterminism:
    def test_seeded_splits_reproducible(self):
        probs = _softmax_rows(100, 20, seed=4)
        assert inception_score(probs, splits=10, seed=3) == inception_score(probs, splits=10, seed=3)

    def test_different_seed_gives_different_splits(self):
        probs = _softmax_rows(100, 20, seed=4)
        assert inception_score(probs, splits=10, seed=3) != inception_score(probs, splits=10, seed=4)

    def test_single_split_ignores_seed(self):
        probs = _softmax_rows(30, 8, seed=5)
        assert inception_score(probs, seed=1) == inception_score(probs, seed=2)
