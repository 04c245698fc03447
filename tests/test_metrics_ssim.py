"""SSIM (evalkit.metrics.ssim): global reference variants and Wang et al.'s windowed SSIM."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.fft import dctn, idctn
from scipy.ndimage import gaussian_filter
from skimage.metrics import structural_similarity

from evalkit.metrics import ssim
from evalkit.metrics.ssim import C1_REFERENCE, C1_REFERENCE_2020, C2_REFERENCE, C2_REFERENCE_2020

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
    rng = np.random.default_rng(11)
    if kind == "noise":
        return _to_uint8(image + rng.normal(0.0, 15.0, image.shape))
    if kind == "blur":
        return _to_uint8(gaussian_filter(image.astype(np.float64), sigma=(2.0, 2.0, 0)))
    return _jpeg_like(image, step=40.0)


PHOTOS = {"astronaut": skimage.data.astronaut, "chelsea": skimage.data.chelsea, "coffee": skimage.data.coffee}
DEGRADATIONS = ("noise", "blur", "jpeg")


def _global_ssim_transcription(pred: np.ndarray, gt: np.ndarray, k1_l: float, k2_l: float) -> float:
    """Global SSIM written from the formula with sums over the flattened arrays (float64)."""
    x = pred.astype(np.float64).ravel()
    y = gt.astype(np.float64).ravel()
    n = x.size
    mx, my = x.sum() / n, y.sum() / n
    vx = ((x - mx) ** 2).sum() / n
    vy = ((y - my) ** 2).sum() / n
    sxy = np.dot(x - mx, y - my) / n
    c1, c2 = k1_l**2, k2_l**2
    return (2 * mx * my + c1) * (2 * sxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def _global_ssim_loops(pred: np.ndarray, gt: np.ndarray, c1: float, c2: float) -> float:
    """Global SSIM with explicit loops (tiny images only)."""
    xs = [float(v) for v in pred.ravel()]
    ys = [float(v) for v in gt.ravel()]
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    vx = sum((x - mx) ** 2 for x in xs) / n
    vy = sum((y - my) ** 2 for y in ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / n
    return (2 * mx * my + c1) * (2 * sxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2))


def _random_pair(seed: int, shape: tuple[int, int, int] = (19, 21, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, shape, dtype=np.uint8)
    pred = _to_uint8(0.6 * gt + 0.4 * rng.integers(0, 256, shape))
    return pred, gt


images = arrays(
    np.uint8,
    st.tuples(st.integers(1, 10), st.integers(1, 10), st.just(3)),
    elements=st.integers(0, 255),
)
REFERENCE_VARIANTS = ("reference", "reference-2020")


# --- fidelity vs oracles -------------------------------------------------------------------------------


class TestFidelity:
    def test_constants(self):
        assert C1_REFERENCE == pytest.approx(6.5025, rel=1e-15)
        assert C2_REFERENCE == pytest.approx(58.5225, rel=1e-15)
        assert C1_REFERENCE_2020 == pytest.approx(2.4336, rel=1e-14)
        assert C2_REFERENCE_2020 == pytest.approx(44.6224, rel=1e-14)

    def test_reference_matches_loop_transcription_on_tiny_image(self):
        pred, gt = _random_pair(0, (3, 4, 3))
        assert ssim(pred, gt) == pytest.approx(_global_ssim_loops(pred, gt, 6.5025, 58.5225), rel=1e-12)
        assert ssim(pred, gt, variant="reference-2020") == pytest.approx(
            _global_ssim_loops(pred, gt, 2.4336, 44.6224), rel=1e-12
        )

    @pytest.mark.parametrize("seed", range(5))
    def test_reference_matches_transcription_on_random_data(self, seed):
        pred, gt = _random_pair(seed)
        expected = _global_ssim_transcription(pred, gt, 0.01 * 255, 0.03 * 255)
        assert ssim(pred, gt) == pytest.approx(expected, rel=1e-12)

    @pytest.mark.parametrize("photo", PHOTOS)
    @pytest.mark.parametrize("kind", DEGRADATIONS)
    def test_reference_variants_match_transcription_on_photos(self, photo, kind):
        gt = PHOTOS[photo]()
        pred = _degrade(gt, kind)
        assert ssim(pred, gt) == pytest.approx(_global_ssim_transcription(pred, gt, 2.55, 7.65), rel=1e-12)
        # The 2020 slip: 0.01 * 2**8 - 1 = 1.56 and 0.03 * 2**8 - 1 = 6.68.
        assert ssim(pred, gt, variant="reference-2020") == pytest.approx(
            _global_ssim_transcription(pred, gt, 1.56, 6.68), rel=1e-12
        )

    @pytest.mark.parametrize("photo", PHOTOS)
    def test_2020_constants_give_a_different_value(self, photo):
        gt = PHOTOS[photo]()
        pred = _degrade(gt, "noise")
        assert ssim(pred, gt, variant="reference-2020") != pytest.approx(ssim(pred, gt), rel=1e-6)

    @pytest.mark.parametrize("photo", PHOTOS)
    @pytest.mark.parametrize("kind", DEGRADATIONS)
    def test_wang_matches_scikit_image_on_photos(self, photo, kind):
        gt = PHOTOS[photo]()
        pred = _degrade(gt, kind)
        expected = structural_similarity(
            gt,
            pred,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1,
        )
        assert ssim(pred, gt, variant="wang") == pytest.approx(expected, rel=1e-12)

    def test_wang_differs_from_global(self):
        gt = skimage.data.astronaut()
        pred = _degrade(gt, "blur")
        assert ssim(pred, gt, variant="wang") != pytest.approx(ssim(pred, gt), abs=1e-3)

    def test_more_degradation_lowers_reference_ssim(self):
        gt = skimage.data.coffee()
        rng = np.random.default_rng(0)
        mild = _to_uint8(gt + rng.normal(0.0, 5.0, gt.shape))
        strong = _to_uint8(gt + rng.normal(0.0, 40.0, gt.shape))
        assert ssim(mild, gt) > ssim(strong, gt)


# --- properties ----------------------------------------------------------------------------------------


class TestProperties:
    @settings(max_examples=50, deadline=None)
    @given(image=images)
    def test_identity_gives_one(self, image):
        for variant in REFERENCE_VARIANTS:
            assert ssim(image, image.copy(), variant=variant) == pytest.approx(1.0, abs=1e-12)

    def test_identity_gives_one_for_wang(self):
        gt = skimage.data.chelsea()
        assert ssim(gt, gt.copy(), variant="wang") == pytest.approx(1.0, abs=1e-12)

    @settings(max_examples=50, deadline=None)
    @given(data=st.data(), image=images)
    def test_reference_variants_symmetric(self, data, image):
        other = data.draw(arrays(np.uint8, image.shape, elements=st.integers(0, 255)))
        for variant in REFERENCE_VARIANTS:
            assert ssim(image, other, variant=variant) == ssim(other, image, variant=variant)

    @settings(max_examples=50, deadline=None)
    @given(data=st.data(), image=images)
    def test_bounds(self, data, image):
        other = data.draw(arrays(np.uint8, image.shape, elements=st.integers(0, 255)))
        for variant in REFERENCE_VARIANTS:
            value = ssim(image, other, variant=variant)
            assert -1.0 - 1e-12 <= value <= 1.0 + 1e-12

    @settings(max_examples=15, deadline=None)
    @given(data=st.data())
    def test_wang_bounded_and_symmetric(self, data):
        shape = (data.draw(st.integers(11, 16)), data.draw(st.integers(11, 16)), 3)
        a = data.draw(arrays(np.uint8, shape, elements=st.integers(0, 255)))
        b = data.draw(arrays(np.uint8, shape, elements=st.integers(0, 255)))
        value = ssim(a, b, variant="wang")
        assert value <= 1.0 + 1e-12
        assert value == pytest.approx(ssim(b, a, variant="wang"), abs=1e-12)


# --- validation errors ---------------------------------------------------------------------------------


class TestValidation:
    def test_float_input_rejected_with_fix(self):
        _, gt = _random_pair(0)
        with pytest.raises(ValueError, match=r"ssim: pred must be a uint8 RGB image.*float32.*convert"):
            ssim(gt.astype(np.float32), gt)

    def test_shape_mismatch_message(self):
        pred, gt = _random_pair(0)
        message = r"ssim: pred and gt must have the same shape.*resize the prediction"
        with pytest.raises(ValueError, match=message):
            ssim(pred[:, :-1], gt)

    def test_grayscale_rejected(self):
        gray = np.zeros((12, 12), np.uint8)
        with pytest.raises(ValueError, match=r"ssim: gt must be an H x W x 3 RGB image.*grayscale to RGB"):
            ssim(np.zeros((12, 12, 3), np.uint8), gray)

    def test_wang_too_small(self):
        pred, gt = _random_pair(0, (10, 40, 3))
        with pytest.raises(ValueError, match=r"at least 11x11 pixels.*got 10x40.*variant='reference'"):
            ssim(pred, gt, variant="wang")
        assert np.isfinite(ssim(pred, gt))  # the global variants have no size limit

    def test_unknown_variant(self):
        pred, gt = _random_pair(0)
        with pytest.raises(ValueError, match=r"ssim: unknown variant 'gaussian'.*'reference-2020', 'wang'"):
            ssim(pred, gt, variant="gaussian")


# --- determinism ---------------------------------------------------------------------------------------


class TestDeterminism:
    @pytest.mark.parametrize("variant", ["reference", "reference-2020", "wang"])
    def test_repeated_calls_identical(self, variant):
        gt = skimage.data.astronaut()
        pred = _degrade(gt, "jpeg")
        assert ssim(pred, gt, variant=variant) == ssim(pred, gt, variant=variant)
