"""Resizes, one-hot, colour conventions, truncation and upscale, each against an independent transcription."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evalkit.config import InputConvention
from evalkit.data.postprocess import output_to_image, upscale
from evalkit.data.preprocess import image_tensor, one_hot, resize_exemplar, resize_label_map, verifier_image


def test_nearest_resize_is_opencv_floor_rule_not_pillow() -> None:
    # OpenCV's INTER_NEAREST takes source index floor(dst * src/dst); Pillow's NEAREST samples pixel
    # centres. The reference uses OpenCV: transcribe its rule and check Pillow would differ.
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 151, size=(37, 53), dtype=np.uint8)
    got = resize_label_map(labels, size=256)
    rows = np.minimum(np.floor(np.arange(256) * (37 / 256)).astype(int), 36)
    cols = np.minimum(np.floor(np.arange(256) * (53 / 256)).astype(int), 52)
    np.testing.assert_array_equal(got, labels[rows][:, cols])
    pillow = np.asarray(Image.fromarray(labels).resize((256, 256), Image.NEAREST))
    assert not np.array_equal(got, pillow)


def test_one_hot_matches_eye_transcription() -> None:
    labels = np.array([[0, 150, 3], [3, 7, 0]], dtype=np.uint8)
    got = one_hot(labels)
    assert got.shape == (151, 2, 3) and got.dtype == np.float32
    expected = np.eye(151, dtype=np.float32)[labels].transpose(2, 0, 1)
    np.testing.assert_array_equal(got, expected)
    assert got[150, 0, 1] == 1.0 and got[0, 0, 0] == 1.0  # value v -> channel v, no shift
    np.testing.assert_array_equal(got.sum(axis=0), np.ones((2, 3), np.float32))


def test_bicubic_exemplar_saturates_instead_of_wrapping() -> None:
    img = np.zeros((20, 20, 3), np.uint8)
    img[:, 10:] = 255  # a hard edge makes bicubic overshoot below 0 and above 255
    got = resize_exemplar(img, size=256)
    assert got.dtype == np.uint8 and got.shape == (256, 256, 3)
    import cv2

    as_float = cv2.resize(img.astype(np.float32), (256, 256), interpolation=cv2.INTER_CUBIC)
    assert as_float.min() < 0 and as_float.max() > 255  # the overshoot is real
    assert np.abs(got.astype(float) - np.clip(np.round(as_float), 0, 255)).max() <= 1
    assert got[:, :100].max() < 10  # no wrap-around to 255 on the dark side


def test_image_tensor_conventions() -> None:
    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, size=(4, 5, 3), dtype=np.uint8)
    raw = image_tensor(bgr, InputConvention("BGR", 0.0, 1.0))
    assert raw.shape == (1, 3, 4, 5) and raw.dtype == np.float32
    np.testing.assert_array_equal(raw[0, 0], bgr[..., 0].astype(np.float32))
    norm = image_tensor(bgr, InputConvention("RGB", 127.5, 127.5))
    expected_r = (bgr[..., 2].astype(np.float64) - 127.5) / 127.5
    np.testing.assert_allclose(norm[0, 0], expected_r, rtol=0, atol=1e-7)
    assert norm.min() >= -1 and norm.max() <= 1
    nhwc = image_tensor(bgr, InputConvention("RGB", 127.5, 127.5), layout="NHWC")
    np.testing.assert_array_equal(nhwc[0], norm[0].transpose(1, 2, 0))


def test_output_to_image_truncates_in_float32() -> None:
    out = np.zeros((1, 3, 2, 2), np.float32)
    out[0, 0, 0, 0] = (200.7 - 127.5) / 127.5  # -> 200.7 -> 200 (truncation, not rounding)
    out[0, 1, 0, 0] = -1.5  # clipped to 0
    out[0, 2, 0, 0] = 1.2  # clipped to 255
    img = output_to_image(out)
    assert img.shape == (2, 2, 3) and img.dtype == np.uint8
    assert img[0, 0, 0] == 200 and img[0, 0, 1] == 0 and img[0, 0, 2] == 255
    # float32 vs float64 arithmetic disagree on some values near integer boundaries: find some and check
    # evalkit follows float32 (x * 127.5 then + 127.5, each rounded to float32), as the reference does.
    xs = np.linspace(-1, 1, 200001, dtype=np.float32)
    f32 = xs * np.float32(127.5) + np.float32(127.5)
    f64 = xs.astype(np.float64) * 127.5 + 127.5
    differ = xs[np.floor(f32) != np.floor(f64)]
    assert differ.size > 0
    probe = np.zeros((3, 1, differ.size), np.float32)
    probe[0, 0] = differ
    got = output_to_image(probe)[0, :, 0]
    expected = np.floor(differ * np.float32(127.5) + np.float32(127.5)).astype(np.uint8)
    np.testing.assert_array_equal(got, expected)


def test_upscale_is_pillow_bicubic_to_width_height() -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
    got = upscale(img, width=300, height=170)
    assert got.shape == (170, 300, 3) and got.dtype == np.uint8
    expected = np.asarray(Image.fromarray(img, "RGB").resize((300, 170), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("shape", [(120, 80), (299, 299), (500, 700)])
def test_verifier_image_is_bgr_299_bilinear(shape: tuple[int, int]) -> None:
    rgb = np.zeros((*shape, 3), np.uint8)
    rgb[..., 0] = 255  # red
    got = verifier_image(rgb)
    assert got.shape == (299, 299, 3)
    assert np.all(got[..., 2] == 255) and np.all(got[..., 0] == 0)
