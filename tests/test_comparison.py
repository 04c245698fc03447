"""Paired comparison statistics (evalkit.stats.comparison): paired_delta, set_deltas and their bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from evalkit.metrics import fid, inception_score, kid
from evalkit.stats.comparison import (
    PairedDelta,
    SetDelta,
    bootstrap_indices,
    paired_delta,
    set_delta_samples,
    set_deltas,
)

# --- helpers -------------------------------------------------------------------------------------------


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """Non-negative, correlated float64 features, like pooled ReLU activations."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(1234).normal(0.0, 1.0, (d, d)) / np.sqrt(d)
    return np.maximum(rng.normal(0.0, 1.0, (n, d)) @ mixing + 0.3 + shift, 0.0)


def _probs(n: int, c: int, seed: int) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(0.0, 2.0, (n, c))
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _triple(n: int, d: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Ground truth, reference and candidate features and the two models' probs, for n pairs."""
    gt = _features(n, d, seed)
    ref = 0.7 * gt + 0.3 * _features(n, d, seed + 1, shift=0.05)  # outputs follow their inputs
    cand = 0.7 * gt + 0.3 * _features(n, d, seed + 2, shift=0.1)
    return gt, ref, cand, _probs(n, 7, seed + 3), _probs(n, 7, seed + 4)


def _paired(n: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-image values with a large per-image spread shared by both models, plus a shift of the candidate."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(13.0, 3.0, n)
    return difficulty + rng.normal(0.0, 0.2, n), difficulty + shift + rng.normal(0.0, 0.2, n)


# --- paired_delta ----------------------------------------------------------------------------------------


class TestPairedDelta:
    def test_mean_delta_is_mean_of_differences(self):
        ref, cand = _paired(57, seed=0, shift=0.1)
        result = paired_delta("PSNR", ref, cand, higher_is_better=True)
        assert result.mean_delta == pytest.approx(np.mean(cand - ref), rel=1e-14)
        assert result.n == 57
        assert result.n_excluded == 0

    def test_interval_brackets_mean_delta(self):
        for seed in range(5):
            ref, cand = _paired(40, seed=seed, shift=0.0)
            result = paired_delta("SSIM", ref, cand, higher_is_better=True, seed=seed)
            assert result.ci_low < result.mean_delta < result.ci_high

    def test_interval_width_shrinks_like_one_over_sqrt_n(self):
        small = paired_delta("PSNR", *_paired(100, 1, 0.0), higher_is_better=True, n_resamples=2000)
        large = paired_delta("PSNR", *_paired(1600, 2, 0.0), higher_is_better=True, n_resamples=2000)
        ratio = (small.ci_high - small.ci_low) / (large.ci_high - large.ci_low)
        assert ratio == pytest.approx(4.0, rel=0.25)

    def test_interval_width_matches_normal_theory(self):
        # Mean of 1000 deltas with std 0.2 * sqrt(2): the 95% interval is about 2 * 1.96 * sd / sqrt(N) wide.
        ref, cand = _paired(1000, 3, 0.0)
        result = paired_delta("PSNR", ref, cand, higher_is_better=True, n_resamples=2000)
        expected = 2 * 1.96 * np.std(cand - ref) / math.sqrt(1000)
        assert result.ci_high - result.ci_low == pytest.approx(expected, rel=0.15)

    def test_p_value_is_scipy_wilcoxon(self):
        ref, cand = _paired(80, seed=4, shift=0.03)
        result = paired_delta("PSNR", ref, cand, higher_is_better=True)
        assert result.p_value == scipy.stats.wilcoxon(cand - ref).pvalue

    def test_shifted_candidate_is_worse_or_better(self):
        ref, cand = _paired(200, seed=5, shift=-0.5)
        worse = paired_delta("PSNR", ref, cand, higher_is_better=True)
        assert worse.ci_high < 0
        text = worse.sentence("converted", "original")
        assert text.startswith("converted is worse than original on PSNR by 0.")
        assert " dB, 95% CI [" in text and "Wilcoxon p = " in text
        better = paired_delta("SSIM", cand, ref, higher_is_better=True)
        assert better.sentence("converted", "original").startswith(
            "converted is better than original on SSIM"
        )
        # Lower is better: a positive delta is worse.
        lower = paired_delta("LPIPS", cand, ref, higher_is_better=False)
        assert lower.sentence("converted", "original").startswith("converted is worse than original on LPIPS")

    def test_identical_samples_are_within_noise(self):
        ref, _ = _paired(50, seed=6, shift=0.0)
        result = paired_delta("PSNR", ref, ref.copy(), higher_is_better=True)
        assert (result.mean_delta, result.ci_low, result.ci_high) == (0.0, 0.0, 0.0)
        assert result.p_value is None  # all deltas are 0
        assert result.sentence("converted", "original") == (
            "converted is within noise of original on PSNR (Δ 0.0000 dB, 95% CI [0.0000, 0.0000])."
        )

    def test_infinite_psnr_pairs_are_left_out(self):
        ref, cand = _paired(30, seed=7, shift=0.2)
        ref[[3, 8]] = np.inf  # identical images: both models or only one
        cand[[8, 20]] = np.inf
        result = paired_delta("PSNR", ref, cand, higher_is_better=True)
        used = np.ones(30, dtype=bool)
        used[[3, 8, 20]] = False
        assert result.n == 27 and result.n_excluded == 3
        assert result.mean_delta == pytest.approx(np.mean(cand[used] - ref[used]), rel=1e-14)
        assert result.p_value == scipy.stats.wilcoxon(cand[used] - ref[used]).pvalue
        assert math.isfinite(result.ci_low) and math.isfinite(result.ci_high)
        assert "3 of 30 pairs with an infinite value left out" in result.sentence("converted", "original")

    def test_all_infinite_gives_nan(self):
        result = paired_delta("PSNR", np.full(5, np.inf), np.full(5, np.inf), higher_is_better=True)
        assert math.isnan(result.mean_delta) and math.isnan(result.ci_low) and result.n == 0
        assert "cannot be compared" in result.sentence("converted", "original")

    def test_too_few_pairs_for_wilcoxon(self):
        result = paired_delta("PSNR", [1.0, 2.0, 3.0], [1.5, 2.4, 3.1], higher_is_better=True)
        assert result.p_value is None
        assert math.isfinite(result.ci_low)

    def test_no_resamples_gives_no_interval(self):
        ref, cand = _paired(40, seed=8, shift=0.1)
        result = paired_delta("PSNR", ref, cand, higher_is_better=True, n_resamples=0)
        assert math.isnan(result.ci_low) and math.isnan(result.ci_high)
        assert result.p_value is not None
        assert "no confidence interval was computed" in result.sentence("converted", "original")

    def test_deterministic_per_seed(self):
        ref, cand = _paired(60, seed=9, shift=0.05)
        first = paired_delta("PSNR", ref, cand, higher_is_better=True, seed=3)
        assert paired_delta("PSNR", ref, cand, higher_is_better=True, seed=3) == first
        other = paired_delta("PSNR", ref, cand, higher_is_better=True, seed=4)
        assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)

    def test_resamples_are_the_shared_bootstrap_indices(self):
        ref, cand = _paired(25, seed=10, shift=0.0)
        result = paired_delta("PSNR", ref, cand, higher_is_better=True, n_resamples=300, seed=7)
        means = (cand - ref)[bootstrap_indices(25, 300, seed=7)].mean(axis=1)
        assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))

    def test_confidence_level(self):
        ref, cand = _paired(100, seed=11, shift=0.0)
        narrow = paired_delta("PSNR", ref, cand, higher_is_better=True, confidence=0.5)
        wide = paired_delta("PSNR", ref, cand, higher_is_better=True, confidence=0.99)
        assert wide.ci_low < narrow.ci_low < narrow.ci_high < wide.ci_high
        assert "99% CI" in wide.sentence("a", "b")

    @pytest.mark.parametrize(
        ("ref", "cand", "kwargs"),
        [
            ([1.0, np.nan], [1.0, 2.0], {}),
            ([1.0, -np.inf], [1.0, 2.0], {}),
            ([1.0, 2.0], [1.0], {}),
            ([], [], {}),
            ([[1.0, 2.0]], [[1.0, 2.0]], {}),
            ([1.0, 2.0], [1.0, 2.0], {"n_resamples": -1}),
            ([1.0, 2.0], [1.0, 2.0], {"confidence": 1.0}),
        ],
    )
    def test_rejects_bad_input(self, ref, cand, kwargs):
        with pytest.raises(ValueError, match="paired_delta"):
            paired_delta("PSNR", ref, cand, higher_is_better=True, **kwargs)

    @settings(max_examples=40, deadline=None)
    @given(
        values=st.lists(
            st.tuples(
                st.floats(-50, 50, allow_nan=False, allow_infinity=False),
                st.floats(-50, 50, allow_nan=False, allow_infinity=False),
            ),
            min_size=2,
            max_size=40,
        ),
        seed=st.integers(0, 2**32 - 1),
    )
    def test_swapping_models_negates_and_mirrors(self, values, seed):
        ref = np.array([v[0] for v in values])
        cand = np.array([v[1] for v in values])
        forward = paired_delta("PSNR", ref, cand, higher_is_better=True, seed=seed, n_resamples=50)
        backward = paired_delta("PSNR", cand, ref, higher_is_better=True, seed=seed, n_resamples=50)
        assert backward.mean_delta == -forward.mean_delta
        scale = 1e-12 * (1.0 + np.abs(cand - ref).max())
        assert backward.ci_low == pytest.approx(-forward.ci_high, abs=scale)
        assert backward.ci_high == pytest.approx(-forward.ci_low, abs=scale)
        assert backward.p_value == forward.p_value


# --- sentences -----------------------------------------------------------------------------------------


class TestSentences:
    def test_within_noise_example(self):
        delta = PairedDelta("PSNR", -0.012, -0.03, 0.01, 0.21, 2000, True)
        assert delta.sentence("converted", "original") == (
            "converted is within noise of original on PSNR "
            "(Δ -0.01200 dB, 95% CI [-0.03000, +0.01000], Wilcoxon p = 0.21)."
        )

    def test_worse_example(self):
        delta = SetDelta("FID", 0.41, 0.12, 0.70, 200, False)
        assert delta.sentence("converted", "original") == (
            "converted is worse than original on FID by 0.4100, 95% CI [0.1200, 0.7000]."
        )

    def test_better_uses_magnitudes(self):
        assert SetDelta("FID", -0.41, -0.70, -0.12, 200, False).sentence("new", "old") == (
            "new is better than old on FID by 0.4100, 95% CI [0.1200, 0.7000]."
        )
        assert PairedDelta("PSNR", -0.5, -0.7, -0.3, 1e-5, 100, True).sentence("new", "old") == (
            "new is worse than old on PSNR by 0.5000 dB, 95% CI [0.3000, 0.7000] (Wilcoxon p = 1e-05)."
        )

    def test_four_significant_digits(self):
        text = SetDelta("IS", 0.0123456, 0.00234567, 0.0234567, 200, True).sentence("new", "old")
        assert text == "new is better than old on IS by 0.01235, 95% CI [0.002346, 0.02346]."

    def test_no_interval(self):
        text = SetDelta("KID", 0.002, math.nan, math.nan, 0, False).sentence("new", "old")
        assert text.startswith(
            "new differs from old on KID by Δ +0.002000 (no confidence interval was computed"
        )

    def test_estimate_outside_interval_is_flagged(self):
        text = SetDelta("IS", 0.5, 0.1, 0.4, 200, True).sentence("new", "old")
        assert text.startswith("new is better than old on IS by 0.5")
        assert "outside its interval" in text


# --- set_deltas: exact fast bootstrap ------------------------------------------------------------------


class TestSetDeltaSamples:
    @pytest.mark.parametrize(
        ("n", "d"),
        [(30, 64), (30, 16), (3, 4)],
        ids=["pairs-side (N <= d)", "feature-side (N > d)", "tiny"],
    )
    def test_each_resample_equals_metrics_on_resampled_arrays(self, n, d):
        gt, ref, cand, ref_probs, cand_probs = _triple(n, d)
        samples = set_delta_samples(gt, ref, cand, ref_probs, cand_probs, n_resamples=12, seed=5)
        np.testing.assert_array_equal(samples.indices, bootstrap_indices(n, 12, seed=5))
        for b, rows in enumerate(samples.indices):
            for values, features, probs in (
                (samples.reference, ref, ref_probs),
                (samples.candidate, cand, cand_probs),
            ):
                # The pivoted-Cholesky route of fid is exact on duplicated rows; see the module notes.
                assert values["fid"][b] == pytest.approx(
                    fid(gt[rows], features[rows], method="eigh"), rel=1e-8
                )
                assert values["is"][b] == pytest.approx(inception_score(probs[rows])[0], rel=1e-12)
                full_kid = kid(gt[rows], features[rows], subsets=1, subset_size=n)[0]
                assert values["kid"][b] == pytest.approx(full_kid, rel=1e-8, abs=1e-12)

    def test_kid_subsets_mode_equals_kid_on_resampled_arrays(self):
        gt, ref, cand, ref_probs, cand_probs = _triple(25, 8)
        samples = set_delta_samples(
            gt,
            ref,
            cand,
            ref_probs,
            cand_probs,
            n_resamples=6,
            seed=1,
            kid_subsets=4,
            kid_subset_size=10,
            kid_seed=9,
        )
        for b, rows in enumerate(samples.indices):
            for values, features in ((samples.reference, ref), (samples.candidate, cand)):
                expected = kid(gt[rows], features[rows], subsets=4, subset_size=10, seed=9)[0]
                assert values["kid"][b] == pytest.approx(expected, rel=1e-8, abs=1e-12)

    def test_float32_features_are_used_in_float64(self):
        gt, ref, cand, ref_probs, cand_probs = _triple(20, 32)
        gt32, ref32, cand32 = (x.astype(np.float32) for x in (gt, ref, cand))
        samples = set_delta_samples(gt32, ref32, cand32, ref_probs, cand_probs, n_resamples=4)
        for b, rows in enumerate(samples.indices):
            exact = fid(gt32[rows].astype(np.float64), ref32[rows].astype(np.float64), method="eigh")
            assert samples.reference["fid"][b] == pytest.approx(exact, rel=1e-8)
            # fid() itself keeps float32 means for float32 features: a ~1e-7 relative difference.
            assert samples.reference["fid"][b] == pytest.approx(fid(gt32[rows], ref32[rows]), rel=1e-5)


class TestSetDeltas:
    def test_delta_is_metric_difference_on_all_pairs(self):
        gt, ref, cand, ref_probs, cand_probs = _triple(40, 24)
        results = set_deltas(gt, ref, cand, ref_probs, cand_probs, n_resamples=20)
        assert set(results) == {"is", "fid", "kid"}
        expected = {
            "is": (inception_score(ref_probs)[0], inception_score(cand_probs)[0]),
            "fid": (fid(gt, ref), fid(gt, cand)),
            "kid": (kid(gt, ref, subsets=1, subset_size=40)[0], kid(gt, cand, subsets=1, subset_size=40)[0]),
        }
        for key, (ref_value, cand_value) in expected.items():
            result = results[key]
            assert result.reference_value == pytest.approx(ref_value, rel=1e-10)
            assert result.candidate_value == pytest.approx(cand_value, rel=1e-10)
            assert result.delta == pytest.approx(cand_value - ref_value, rel=1e-8, abs=1e-12)
            assert result.n_resamples == 20
        assert [r.metric for r in results.values()] == ["IS", "FID", "KID"]
        assert [r.higher_is_better for r in results.values()] == [True, False, False]

    def test_kid_subsets_delta_is_kid_difference(self):
        gt, ref, cand, ref_probs, cand_probs = _triple(30, 8)
        result = set_deltas(
            gt, ref, cand, ref_probs, cand_probs, n_resamples=5, kid_subsets=7, kid_subset_size=12, kid_seed=3
        )["kid"]
        expected = (
            kid(gt, cand, subsets=7, subset_size=12, seed=3)[0]
            - kid(gt, ref, subsets=7, subset_size=12, seed=3)[0]
        )
        assert result.delta == pytest.approx(expected, rel=1e-8, abs=1e-12)

    def test_interval_is_percentile_of_sample_deltas(self):
        gt, ref, cand, ref_probs, cand_probs = _triple(30, 20)
        results = set_deltas(gt, ref, cand, ref_probs, cand_probs, n_resamples=50, seed=2, confidence=0.9)
        samples = set_delta_samples(gt, ref, cand, ref_probs, cand_probs, n_resamples=50, seed=2)
        for key, result in results.items():
            low, high = np.quantile(samples.deltas(key), [0.05, 0.95])
            assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-12, abs=1e-15)

    def test_deterministic_per_seed(self):
        data = _triple(24, 12)
        first = set_deltas(*data, n_resamples=15, seed=11)
        assert set_deltas(*data, n_resamples=15, seed=11) == first
        other = set_deltas(*data, n_resamples=15, seed=12)
        assert other["fid"].ci_low != first["fid"].ci_low

    def test_swapping_models_negates_and_mirrors(self):
        gt, ref, cand, ref_probs, cand_probs = _triple(28, 12)
        forward = set_deltas(gt, ref, cand, ref_probs, cand_probs, n_resamples=40, seed=4)
        backward = set_deltas(gt, cand, ref, cand_probs, ref_probs, n_resamples=40, seed=4)
        for key in forward:
            f, b = forward[key], backward[key]
            assert b.delta == -f.delta
            assert (b.ci_low, b.ci_high) == pytest.approx((-f.ci_high, -f.ci_low), rel=1e-10, abs=1e-14)

    def test_no_resamples(self):
        data = _triple(16, 8)
        results = set_deltas(*data, n_resamples=0)
        for result in results.values():
            assert math.isnan(result.ci_low) and math.isnan(result.ci_high)
            assert math.isfinite(result.delta)
            assert "no confidence interval was computed" in result.sentence("converted", "original")
        samples = set_delta_samples(*data, n_resamples=0)
        assert samples.indices.shape == (0, 16)
        assert all(values.shape == (0,) for values in samples.reference.values())

    def test_identical_models_are_within_noise(self):
        gt, ref, _, ref_probs, _ = _triple(32, 16)
        results = set_deltas(gt, ref, ref.copy(), ref_probs, ref_probs.copy(), n_resamples=20)
        for result in results.values():
            assert result.delta == 0.0
            assert result.ci_low == result.ci_high == 0.0
            assert "within noise" in result.sentence("converted", "original")

    def test_clearly_better_candidate(self):
        # The candidate reproduces the ground truth closely; the reference is shifted away from it.
        gt, _, _, ref_probs, cand_probs = _triple(60, 8)
        rng = np.random.default_rng(0)
        cand = gt + 0.01 * rng.normal(size=gt.shape)
        ref = gt + 1.0 + 0.01 * rng.normal(size=gt.shape)
        results = set_deltas(gt, ref, cand, ref_probs, cand_probs, n_resamples=50)
        for key in ("fid", "kid"):
            assert results[key].ci_high < 0
            assert (
                results[key]
                .sentence("converted", "original")
                .startswith(f"converted is better than original on {key.upper()} by ")
            )

    @pytest.mark.parametrize(
        ("change", "match"),
        [
            ({"gt_features": np.zeros((9, 4))}, "same shape"),
            ({"ref_features": np.full((10, 4), np.nan)}, "NaN"),
            ({"cand_features": np.zeros(10)}, "N x d"),
            ({"ref_probs": np.full((9, 3), 1 / 3)}, "N x C"),
            ({"cand_probs": np.full((10, 3), 0.5)}, "sum to 1"),
            ({"n_resamples": -1}, "n_resamples"),
            ({"kid_subsets": 0}, "kid_subsets"),
            ({"confidence": 0.0}, "confidence"),
        ],
    )
    def test_rejects_bad_input(self, change, match):
        gt, ref, cand, ref_probs, cand_probs = _triple(10, 4)
        args = {
            "gt_features": gt,
            "ref_features": ref,
            "cand_features": cand,
            "ref_probs": ref_probs,
            "cand_probs": cand_probs,
        }
        options = {key: change.pop(key) for key in list(change) if key not in args}
        args.update(change)
        with pytest.raises(ValueError, match=match):
            set_deltas(**args, **options)
