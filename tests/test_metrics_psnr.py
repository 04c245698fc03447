"""PSNR (evalkit.metrics.psnr) and the per-image summary (evalkit.metrics.mean_std_finite)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.fft import dctn, idctn
from scipy.ndimage import gaussian_filter
from skimage.metrics import peak_signal_noise_ratio

from evalkit.metrics import mean_std_finite, psnr

# --- helpers -------------------------------------------------------------------------------------------


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _jpeg_like(image: np.ndarray, step: float) -> np.ndarray:
    """Quantise 8x8 block DCT coefficients, as JPEG does (the border outside whole blocks is kept)."""
    height, width = image.shape[0] // 8 * 8, image.shape[1] // 8 * 8
    out = image.astype(np.float64)
    blocks = out[:height, :width].reshape(height // 8, 8, width // 8, 8, 3)
    coefficients = np.round(dctn(blocks, axes=(1, 3), norm="ortho") / step) * step
    out[:height, :width] = idctn(coefficients, axes=(1, 3), norm="ortho").reshape(height, width, 3)
    return _to_uint8(out)


def _degrade(image: np.ndarray, kind: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    if kind == "noise":
        return _to_uint8(image + rng.normal(0.0, 12.0, image.shape))
    if kind == "blur":
        return _to_uint8(gaussian_filter(image.astype(np.float64), sigma=(1.5, 1.5, 0)))
    return _jpeg_like(image, step=40.0)


PHOTOS = {"astronaut": skimage.data.astronaut, "chelsea": skimage.data.chelsea, "coffee": skimage.data.coffee}
DEGRADATIONS = ("noise", "blur", "jpeg")


def _luma_psnr_transcription(pred: np.ndarray, gt: np.ndarray) -> float:
    """Reference PSNR, written differently: luma of each image first (linear, so same value), then MSE."""
    weights = np.array([65.738, 129.057, 25.064]) / 256.0 / 255.0
    luma_pred = np.tensordot(pred.astype(np.float64), weights, axes=([2], [0]))
    luma_gt = np.tensordot(gt.astype(np.float64), weights, axes=([2], [0]))
    mse = np.sum((luma_pred - luma_gt) ** 2) / luma_gt.size
    return 10.0 * math.log10(1.0 / mse)


def _luma_psnr_loops(pred: np.ndarray, gt: np.ndarray) -> float:
    """Reference PSNR with explicit loops over pixels (tiny images only)."""
    total = 0.0
    height, width, _ = gt.shape
    for row in range(height):
        for col in range(width):
            r, g, b = (float(pred[row, col, c]) - float(gt[row, col, c]) for c in range(3))
            d_y = (65.738 * r / 255.0 + 129.057 * g / 255.0 + 25.064 * b / 255.0) / 256.0
            total += d_y * d_y
    return -10.0 * math.log10(total / (height * width))


def _random_pair(seed: int, shape: tuple[int, int, int] = (17, 23, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, shape, dtype=np.uint8)
    pred = _to_uint8(gt + rng.normal(0.0, 20.0, shape))
    return pred, gt


images = arrays(
    np.uint8,
    st.tuples(st.integers(1, 12), st.integers(1, 12), st.just(3)),
    elements=st.integers(0, 255),
)


# --- fidelity vs oracles -------------------------------------------------------------------------------


class TestFidelity:
    def test_reference_matches_loop_transcription_on_tiny_image(self):
        pred, gt = _random_pair(0, (4, 5, 3))
        assert psnr(pred, gt) == pytest.approx(_luma_psnr_loops(pred, gt), rel=1e-12)

    @pytest.mark.parametrize("seed", range(5))
    def test_reference_matches_transcription_on_random_data(self, seed):
        pred, gt = _random_pair(seed)
        assert psnr(pred, gt) == pytest.approx(_luma_psnr_transcription(pred, gt), rel=1e-12)

    @pytest.mark.parametrize("photo", PHOTOS)
    @pytest.mark.parametrize("kind", DEGRADATIONS)
    def test_reference_matches_transcription_on_photos(self, photo, kind):
        gt = PHOTOS[photo]()
        pred = _degrade(gt, kind)
        assert psnr(pred, gt) == pytest.approx(_luma_psnr_transcription(pred, gt), rel=1e-12)

    @pytest.mark.parametrize("photo", PHOTOS)
    @pytest.mark.parametrize("kind", DEGRADATIONS)
    def test_rgb_matches_scikit_image_on_photos(self, photo, kind):
        gt = PHOTOS[photo]()
        pred = _degrade(gt, kind)
        expected = peak_signal_noise_ratio(gt, pred, data_range=255)
        assert psnr(pred, gt, variant="rgb") == pytest.approx(expected, rel=1e-12)

    @pytest.mark.parametrize("seed", range(3))
    def test_rgb_matches_scikit_image_on_random_data(self, seed):
        pred, gt = _random_pair(seed)
        expected = peak_signal_noise_ratio(gt, pred, data_range=255)
        assert psnr(pred, gt, variant="rgb") == pytest.approx(expected, rel=1e-12)

    def test_variants_differ(self):
        gt = skimage.data.astronaut()
        pred = _degrade(gt, "noise")
        assert psnr(pred, gt) != pytest.approx(psnr(pred, gt, variant="rgb"), rel=1e-3)

    def test_known_value_uniform_green_error(self):
        # Only G differs, by 1 level: dY = 129.057 / 256 / 255 everywhere.
        gt = np.zeros((3, 4, 3), np.uint8)
        pred = gt.copy()
        pred[..., 1] = 1
        expected = -20.0 * math.log10(129.057 / 256.0 / 255.0)
        assert psnr(pred, gt) == pytest.approx(expected, rel=1e-13)


# --- properties ----------------------------------------------------------------------------------------


class TestProperties:
    @settings(max_examples=50, deadline=None)
    @given(image=images)
    def test_identical_images_give_inf_without_warning(self, image):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert psnr(image, image.copy()) == math.inf
            assert psnr(image, image.copy(), variant="rgb") == math.inf

    @settings(max_examples=50, deadline=None)
    @given(data=st.data(), image=images)
    def test_symmetric(self, data, image):
        other = data.draw(arrays(np.uint8, image.shape, elements=st.integers(0, 255)))
        assert psnr(image, other) == psnr(other, image)
        assert psnr(image, other, variant="rgb") == psnr(other, image, variant="rgb")

    @settings(max_examples=50, deadline=None)
    @given(data=st.data(), image=images)
    def test_rgb_psnr_is_nonnegative(self, data, image):
        # The largest possible RGB error (255 everywhere) gives exactly 0 dB.
        other = data.draw(arrays(np.uint8, image.shape, elements=st.integers(0, 255)))
        assert psnr(image, other, variant="rgb") >= 0.0

    def test_accepts_non_contiguous_views(self):
        pred, gt = _random_pair(3, (20, 20, 3))
        assert psnr(pred[::2, ::-1], gt[::2, ::-1]) == pytest.approx(
            _luma_psnr_transcription(pred[::2, ::-1], gt[::2, ::-1]), rel=1e-12
        )


# --- validation errors ---------------------------------------------------------------------------------


class TestValidation:
    def test_float_pred_rejected_with_fix(self):
        _, gt = _random_pair(0)
        with pytest.raises(ValueError, match=r"psnr: pred must be a uint8 RGB image.*float64.*convert"):
            psnr(gt.astype(np.float64) / 255.0, gt)

    def test_float_gt_rejected(self):
        pred, gt = _random_pair(0)
        with pytest.raises(ValueError, match=r"psnr: gt must be a uint8"):
            psnr(pred, gt.astype(np.float32))

    def test_shape_mismatch_message(self):
        pred, gt = _random_pair(0, (8, 9, 3))
        with pytest.raises(ValueError) as info:
            psnr(pred[:7], gt)
        message = str(info.value)
        assert "pred and gt must have the same shape" in message
        assert "(7, 9, 3) and (8, 9, 3)" in message
        assert "resize the prediction to the ground truth first" in message

    @pytest.mark.parametrize("shape", [(8, 9), (8, 9, 4), (3, 8, 9), (8, 9, 3, 1)])
    def test_not_hwc_rgb(self, shape):
        image = np.zeros(shape, np.uint8)
        with pytest.raises(ValueError, match=r"psnr: pred must be an H x W x 3 RGB image.*channels last"):
            psnr(image, image)

    def test_empty_image(self):
        image = np.zeros((0, 5, 3), np.uint8)
        with pytest.raises(ValueError, match=r"psnr: pred is empty"):
            psnr(image, image)

    def test_unknown_variant(self):
        pred, gt = _random_pair(0)
        with pytest.raises(ValueError, match=r"unknown variant 'luma'.*'reference', 'rgb'"):
            psnr(pred, gt, variant="luma")


# --- determinism ---------------------------------------------------------------------------------------


class TestDeterminism:
    def test_repeated_calls_identical(self):
        gt = skimage.data.coffee()
        pred = _degrade(gt, "jpeg")
        assert psnr(pred, gt) == psnr(pred, gt)
        assert psnr(pred, gt, variant="rgb") == psnr(pred, gt, variant="rgb")


# --- summary: mean_std_finite --------------------------------------------------------------------------


class TestMeanStdFinite:
    def test_matches_numpy_on_finite_values(self):
        values = [12.5, 13.0, 11.25, 14.0]
        mean, std, n_inf = mean_std_finite(values)
        assert mean == pytest.approx(np.mean(values), rel=1e-15)
        assert std == pytest.approx(np.std(values), rel=1e-15)
        assert n_inf == 0

    def test_inf_values_left_out_and_counted(self):
        mean, std, n_inf = mean_std_finite([10.0, math.inf, 14.0, math.inf])
        assert (mean, std, n_inf) == (12.0, 2.0, 2)

    def test_population_std(self):
        _, std, _ = mean_std_finite([1.0, 3.0])
        assert std == 1.0  # ddof=0; ddof=1 would give sqrt(2)

    def test_all_inf_gives_nan(self):
        mean, std, n_inf = mean_std_finite([math.inf, math.inf])
        assert math.isnan(mean) and math.isnan(std) and n_inf == 2

    def test_empty_gives_nan(self):
        mean, std, n_inf = mean_std_finite([])
        assert math.isnan(mean) and math.isnan(std) and n_inf == 0

    def test_accepts_arrays_and_generators(self):
        values = np.array([1.0, 2.0, np.inf])
        assert mean_std_finite(values) == mean_std_finite(v for v in values) == (1.5, 0.5, 1)

    def test_psnr_values_end_to_end(self):
        gt = skimage.data.chelsea()
        values = [psnr(_degrade(gt, kind), gt) for kind in DEGRADATIONS] + [psnr(gt, gt)]
        mean, _, n_inf = mean_std_finite(values)
        assert n_inf == 1
        assert mean == pytest.approx(np.mean(values[:3]), rel=1e-15)

    @pytest.mark.parametrize("bad", [math.nan, -math.inf])
    def test_nan_and_negative_inf_rejected(self, bad):
        with pytest.raises(ValueError, match=r"mean_std_finite: values contain NaN or -inf.*upstream"):
            mean_std_finite([1.0, bad])

    def test_two_dimensional_rejected(self):
        with pytest.raises(ValueError, match=r"mean_std_finite: values must be one-dimensional.*flatten"):
            mean_std_finite(np.ones((2, 2)))
