"""FID (evalkit.metrics.fid, frechet_distance, feature_statistics) and KID (evalkit.metrics.kid)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from evalkit.metrics import feature_statistics, fid, frechet_distance, kid

# --- helpers -------------------------------------------------------------------------------------------


def _features(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    """Non-negative, correlated float32 features, like pooled ReLU activations."""
    rng = np.random.default_rng(seed)
    mixing = np.random.default_rng(1234).normal(0.0, 1.0, (d, d)) / np.sqrt(d)
    pre = scale * (rng.normal(0.0, 1.0, (n, d)) @ mixing) + 0.3 + shift
    return np.maximum(pre, 0.0).astype(np.float32)


def _fid_oracle(a: np.ndarray, b: np.ndarray) -> float:
    """FID transcribed independently: float64 statistics, tr sqrt(S_a S_b) = tr sqrt(Sa^1/2 S_b Sa^1/2)."""
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    mu_x, mu_y = x.sum(axis=0) / len(x), y.sum(axis=0) / len(y)
    s_x = (x - mu_x).T @ (x - mu_x) / (len(x) - 1)
    s_y = (y - mu_y).T @ (y - mu_y) / (len(y) - 1)
    root_x = scipy.linalg.sqrtm(s_x).real
    middle = scipy.linalg.sqrtm(root_x @ s_y @ root_x).real
    return float(np.sum((mu_x - mu_y) ** 2) + np.trace(s_x) + np.trace(s_y) - 2.0 * np.trace(middle))


def _reference_transcription(mu1, sigma1, mu2, sigma2) -> float:
    """The reference's sqrtm formula, line by line (product sqrtm, eps retry, real part)."""
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    diff = mu1.astype(np.float64) - mu2.astype(np.float64)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean.real))


def _kid_loops(a: np.ndarray, b: np.ndarray, subsets: int, size: int, seed: int) -> list[float]:
    """Per-subset unbiased MMD^2 with the cubic kernel, with explicit loops (the sampling protocol of kid)."""
    rng = np.random.default_rng(seed)
    d = a.shape[1]

    def k(u, v):
        return (sum(float(p) * float(q) for p, q in zip(u, v, strict=True)) / d + 1.0) ** 3

    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        xx = sum(k(x[i], x[j]) for i in range(size) for j in range(size) if i != j)
        yy = sum(k(y[i], y[j]) for i in range(size) for j in range(size) if i != j)
        xy = sum(k(x[i], y[j]) for i in range(size) for j in range(size))
        values.append((xx + yy) / (size * (size - 1)) - 2.0 * xy / (size * size))
    return values


SINGULAR = {"n_a": 20, "n_b": 27, "d": 48}  # both covariances singular (N <= d): auto takes the Gram route
NON_SINGULAR = {"n_a": 300, "n_b": 250, "d": 12}
ROUTES = ("auto", "gram", "eigh", "sqrtm")


def _pair(case: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    a = _features(case["n_a"], case["d"], seed=1)
    return a, _features(case["n_b"], case["d"], seed=2, shift=0.2, scale=1.3)


# --- FID: fidelity vs oracles --------------------------------------------------------------------------


class TestFidFidelity:
    def test_feature_statistics_match_reference_calls(self):
        x = _features(30, 5, seed=0)
        mu, sigma = feature_statistics(x)
        assert mu.dtype == np.float32  # the reference keeps the float32 mean
        np.testing.assert_array_equal(mu, x.mean(axis=0))
        assert sigma.dtype == np.float64
        np.testing.assert_array_equal(sigma, np.cov(x, rowvar=False))

    def test_feature_statistics_single_dimension_is_matrix(self):
        mu, sigma = feature_statistics(np.arange(6.0).reshape(6, 1))
        assert mu.shape == (1,) and sigma.shape == (1, 1)
        assert sigma[0, 0] == pytest.approx(3.5)

    @pytest.mark.parametrize("case", [NON_SINGULAR, {"n_a": 200, "n_b": 200, "d": 30}])
    @pytest.mark.parametrize("route", ROUTES)
    def test_matches_sqrtm_oracle_non_singular(self, case, route):
        # float64 features: the oracle's float64 mean is then also the reference's mean.
        a, b = (x.astype(np.float64) for x in _pair(case))
        assert fid(a, b, method=route) == pytest.approx(_fid_oracle(a, b), rel=1e-9)

    @pytest.mark.parametrize("method", ["eigh", "sqrtm"])
    def test_frechet_distance_matches_reference_transcription(self, method):
        a, b = _pair(NON_SINGULAR)
        stats = (*feature_statistics(a), *feature_statistics(b))
        expected = _reference_transcription(*stats)
        assert frechet_distance(*stats, method=method) == pytest.approx(expected, rel=1e-10)

    def test_sqrtm_method_is_the_reference_on_singular_input(self):
        a, b = _pair(SINGULAR)
        stats = (*feature_statistics(a), *feature_statistics(b))
        assert frechet_distance(*stats, method="sqrtm") == pytest.approx(
            _reference_transcription(*stats), rel=1e-12
        )

    @pytest.mark.parametrize("case", [SINGULAR, NON_SINGULAR, {"n_a": 9, "n_b": 40, "d": 16}])
    def test_all_routes_agree(self, case):
        a, b = _pair(case)
        values = {route: fid(a, b, method=route) for route in ROUTES}
        exact = values["eigh"]
        assert values["gram"] == pytest.approx(exact, rel=1e-10)
        assert values["auto"] == pytest.approx(exact, rel=1e-10)
        # sqrtm of a singular product carries round-off of order sqrt(eps); still far below 1e-4.
        assert values["sqrtm"] == pytest.approx(exact, rel=1e-6)

    def test_auto_picks_gram_when_both_covariances_singular(self):
        a, b = _pair(SINGULAR)
        assert fid(a, b) == fid(a, b, method="gram")
        a, b = _pair(NON_SINGULAR)
        assert fid(a, b) == fid(a, b, method="eigh")

    def test_mean_term_uses_float32_mean_in_every_route(self):
        # A large offset makes the float32 mean differ visibly from the float64 mean.
        a = _features(64, 8, seed=3) + np.float32(3000.0)
        b = _features(64, 8, seed=4, shift=0.5) + np.float32(3000.0)
        diff32 = a.mean(axis=0).astype(np.float64) - b.mean(axis=0).astype(np.float64)
        diff64 = a.astype(np.float64).mean(axis=0) - b.astype(np.float64).mean(axis=0)
        assert abs(diff32 @ diff32 - diff64 @ diff64) > 1e-8
        values = [fid(a, b, method=route) for route in ROUTES]
        stats = (*feature_statistics(a), *feature_statistics(b))
        assert values == pytest.approx([_reference_transcription(*stats)] * 4, rel=1e-9, abs=1e-10)

    def test_moderate_singular_case_against_sqrtm(self):
        # 2 x 400 images of 640-d features: the shape class of the real evaluation (N < d), scaled down.
        a = _features(400, 640, seed=5)
        b = _features(400, 640, seed=6, shift=0.1, scale=1.2)
        fast = fid(a, b)
        reference = fid(a, b, method="sqrtm")
        assert fast == pytest.approx(reference, rel=1e-6)
        assert fid(a, b, method="eigh") == pytest.approx(fast, rel=1e-9)


# --- FID: properties -----------------------------------------------------------------------------------


class TestFidProperties:
    @pytest.mark.parametrize("case", [SINGULAR, NON_SINGULAR])
    @pytest.mark.parametrize("route", ["auto", "gram", "eigh"])
    def test_self_distance_is_zero(self, case, route):
        a, _ = _pair(case)
        assert fid(a, a, method=route) == pytest.approx(0.0, abs=1e-9)

    def test_self_distance_is_zero_for_sqrtm_when_non_singular(self):
        a, _ = _pair(NON_SINGULAR)
        assert fid(a, a, method="sqrtm") == pytest.approx(0.0, abs=1e-9)

    @pytest.mark.parametrize("case", [SINGULAR, NON_SINGULAR])
    @pytest.mark.parametrize("route", ROUTES)
    def test_symmetric(self, case, route):
        a, b = _pair(case)
        assert fid(a, b, method=route) == pytest.approx(fid(b, a, method=route), rel=1e-9)

    @pytest.mark.parametrize("case", [SINGULAR, NON_SINGULAR])
    @pytest.mark.parametrize("route", ROUTES)
    def test_mean_shift_only_gives_squared_mean_difference(self, case, route):
        a = _features(case["n_a"], case["d"], seed=7).astype(np.float64)
        shift = np.linspace(-1.0, 2.0, case["d"])
        expected = float(shift @ shift)
        # sqrtm of the singular S @ S returns round-off of order sqrt(eps) in its null space.
        rel = 1e-7 if route == "sqrtm" and case is SINGULAR else 1e-9
        assert fid(a, a + shift, method=route) == pytest.approx(expected, rel=rel, abs=1e-9)

    @pytest.mark.parametrize("method", ["eigh", "sqrtm"])
    def test_frechet_mean_shift_with_shared_covariance(self, method):
        mu, sigma = feature_statistics(_features(100, 10, seed=8).astype(np.float64))
        shift = np.arange(10.0) / 7
        value = frechet_distance(mu, sigma, mu + shift, sigma, method=method)
        assert value == pytest.approx(float(shift @ shift), rel=1e-9, abs=1e-9)

    def test_frechet_eigh_handles_zero_covariance(self):
        zeros = np.zeros((3, 3))
        assert frechet_distance(np.zeros(3), zeros, np.ones(3), zeros) == 3.0

    def test_frechet_eigh_exact_on_diagonal_matrices(self):
        s1, s2 = np.diag([4.0, 9.0, 0.0]), np.diag([1.0, 4.0, 5.0])
        # tr sqrt(S1 S2) = 2 + 6 + 0 = 8; FID = 13 + 10 - 16 = 7.
        assert frechet_distance(np.zeros(3), s1, np.zeros(3), s2) == pytest.approx(7.0, rel=1e-14)

    def test_integer_features_accepted(self):
        a = np.random.default_rng(0).integers(0, 5, (30, 4))
        b = np.random.default_rng(1).integers(0, 6, (30, 4))
        assert fid(a, b) == pytest.approx(_fid_oracle(a, b), rel=1e-9)


# --- FID: validation errors ----------------------------------------------------------------------------


class TestFidValidation:
    def test_one_dimensional_features(self):
        with pytest.raises(ValueError, match=r"fid: features_a must be a 2-D N x d array.*reshape"):
            fid(np.ones(10), np.ones((3, 10)))

    def test_pooled_4d_features(self):
        with pytest.raises(ValueError, match=r"fid: features_b must be a 2-D.*got shape \(3, 10, 1, 1\)"):
            fid(np.ones((3, 10)), np.ones((3, 10, 1, 1)))

    def test_too_few_rows(self):
        with pytest.raises(ValueError, match=r"fid: features_a needs at least 2 rows.*got 1"):
            fid(np.ones((1, 4)), np.ones((3, 4)))

    def test_nan(self):
        b = _features(5, 4, seed=0).astype(np.float64)
        b[2, 1] = np.nan
        with pytest.raises(ValueError, match=r"fid: features_b contains NaN or inf"):
            fid(_features(5, 4, seed=1), b)

    def test_dimension_mismatch(self):
        with pytest.raises(ValueError, match=r"same feature dimension, got 4 and 5.*same verifier layer"):
            fid(np.ones((3, 4)), np.ones((3, 5)))

    @pytest.mark.parametrize("dtype", [bool, complex, object])
    def test_non_real_dtype(self, dtype):
        with pytest.raises(ValueError, match=r"fid: features_a must be a real numeric array"):
            fid(np.ones((3, 4), dtype=dtype), np.ones((3, 4)))

    def test_unknown_method(self):
        with pytest.raises(ValueError, match=r"fid: unknown method 'svd'.*'auto', 'gram', 'eigh', 'sqrtm'"):
            fid(np.ones((3, 4)), np.ones((3, 4)), method="svd")

    def test_feature_statistics_validates(self):
        with pytest.raises(ValueError, match=r"feature_statistics: features needs at least 2 rows"):
            feature_statistics(np.ones((1, 4)))

    def test_frechet_shape_mismatch(self):
        message = r"frechet_distance: shapes must be mu \(d,\) and sigma \(d, d\)"
        with pytest.raises(ValueError, match=message):
            frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))

    def test_frechet_sigma_not_matrix(self):
        message = r"frechet_distance: sigma1 must be a real 2-D array.*feature_statistics"
        with pytest.raises(ValueError, match=message):
            frechet_distance(np.zeros(3), np.ones(3), np.zeros(3), np.eye(3))

    def test_frechet_nan(self):
        sigma = np.eye(3)
        sigma[0, 0] = np.inf
        with pytest.raises(ValueError, match=r"frechet_distance: sigma2 contains NaN or inf"):
            frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), sigma)

    def test_frechet_unknown_method(self):
        with pytest.raises(ValueError, match=r"frechet_distance: unknown method 'gram'.*'eigh', 'sqrtm'"):
            frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(3), method="gram")


# --- FID: determinism ----------------------------------------------------------------------------------


class TestFidDeterminism:
    @pytest.mark.parametrize("route", ROUTES)
    def test_repeated_calls_identical(self, route):
        a, b = _pair(SINGULAR)
        assert fid(a, b, method=route) == fid(a, b, method=route)

    def test_inputs_not_modified(self):
        a, b = _pair(SINGULAR)
        a_copy, b_copy = a.copy(), b.copy()
        for route in ROUTES:
            fid(a, b, method=route)
        np.testing.assert_array_equal(a, a_copy)
        np.testing.assert_array_equal(b, b_copy)


# --- KID -----------------------------------------------------------------------------------------------


class TestKidFidelity:
    def test_matches_loop_transcription(self):
        a = _features(9, 3, seed=10).astype(np.float64)
        b = _features(11, 3, seed=11, shift=0.3)
        expected = _kid_loops(a, b.astype(np.float64), subsets=4, size=6, seed=3)
        mean, std = kid(a, b, subsets=4, subset_size=6, seed=3)
        assert mean == pytest.approx(np.mean(expected), rel=1e-10)
        assert std == pytest.approx(np.std(expected), rel=1e-8)

    def test_subset_size_capped_at_smaller_set(self):
        a, b = _features(12, 4, seed=12), _features(15, 4, seed=13)
        assert kid(a, b, subsets=5, subset_size=1000) == kid(a, b, subsets=5, subset_size=12)

    def test_whole_sets_give_zero_std(self):
        a, b = _features(10, 4, seed=14), _features(10, 4, seed=15)
        mean, std = kid(a, b, subsets=3, subset_size=10)
        assert std == pytest.approx(0.0, abs=1e-12 * abs(mean) + 1e-15)


class TestKidProperties:
    @pytest.mark.parametrize("seed", [21, 25, 26])
    def test_unbiased_near_zero_for_same_distribution(self, seed):
        a = _features(600, 16, seed=20)
        b = _features(600, 16, seed=seed)
        mean, std = kid(a, b, subsets=50, subset_size=100, seed=0)
        assert abs(mean) < 0.5 * std

    def test_positive_for_different_distributions(self):
        a = _features(600, 16, seed=20)
        same_mean, _ = kid(a, _features(600, 16, seed=21), subsets=50, subset_size=100, seed=0)
        mean, std = kid(a, _features(600, 16, seed=22, shift=0.3, scale=1.2), subsets=50, subset_size=100)
        assert mean > 2 * std > 0
        assert mean > 20 * abs(same_mean)


class TestKidValidation:
    def test_dimension_mismatch(self):
        message = r"kid: features_a and features_b must have the same feature dimension"
        with pytest.raises(ValueError, match=message):
            kid(np.ones((3, 4)), np.ones((3, 5)))

    def test_too_few_rows(self):
        with pytest.raises(ValueError, match=r"kid: features_b needs at least 2 rows"):
            kid(np.ones((3, 4)), np.ones((1, 4)))

    def test_nan(self):
        a = np.ones((3, 4))
        a[0, 0] = np.nan
        with pytest.raises(ValueError, match=r"kid: features_a contains NaN or inf"):
            kid(a, np.ones((3, 4)))

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"subsets": 0}, r"kid: subsets must be an integer >= 1, got 0"),
            ({"subset_size": 1}, r"kid: subset_size must be an integer >= 2, got 1"),
            ({"subset_size": 10.5}, r"kid: subset_size must be an integer >= 2, got 10.5"),
        ],
    )
    def test_bad_subset_arguments(self, kwargs, message):
        with pytest.raises(ValueError, match=message):
            kid(np.ones((3, 4)), np.ones((3, 4)), **kwargs)


class TestKidDeterminism:
    def test_same_seed_same_result(self):
        a, b = _features(50, 6, seed=30), _features(50, 6, seed=31)
        assert kid(a, b, subsets=10, subset_size=20, seed=5) == kid(a, b, subsets=10, subset_size=20, seed=5)

    def test_different_seed_different_result(self):
        a, b = _features(50, 6, seed=30), _features(50, 6, seed=31)
        assert kid(a, b, subsets=10, subset_size=20, seed=5) != kid(a, b, subsets=10, subset_size=20, seed=6)


def test_gram_route_close_with_repeated_rows() -> None:
    # Repeated rows (a bootstrap resample) add null directions to the Gram matrix whose round-off
    # eigenvalues get square-rooted: ~1e-8 relative here, up to ~4e-6 on 2000 x 2048 resamples. A
    # relative cut-off on the eigenvalues removes that but also drops real small eigenvalues of singular
    # covariances (it moved benchmarks/fid.py's FID by 5e-5), so the route keeps them; this bounds the error.
    rng = np.random.default_rng(7)
    base = rng.standard_normal((400, 16)) @ rng.standard_normal((16, 512)) * 0.1
    a = np.maximum(base + rng.standard_normal((400, 512)), 0).astype(np.float32)
    b = np.maximum(base + rng.standard_normal((400, 512)) + 0.05, 0).astype(np.float32)
    idx = rng.integers(0, 400, 400)
    gram = fid(a[idx], b[idx], method="gram")
    eigh = fid(a[idx], b[idx], method="eigh")
    assert gram == pytest.approx(eigh, rel=1e-6)
