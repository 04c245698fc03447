"""Reading images and label maps as the reference does, and the errors for files that are not there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evalkit.data.ade20k import check_root, read_exemplar, read_ground_truth, read_label_map
from evalkit.errors import InputError


def test_label_map_roundtrip_gray_png(tmp_path: Path) -> None:
    labels = (np.arange(64 * 48).reshape(48, 64) % 151).astype(np.uint8)
    Image.fromarray(labels, mode="L").save(tmp_path / "m.png")
    got = read_label_map(tmp_path / "m.png")
    assert got.dtype == np.uint8 and got.shape == (48, 64)
    np.testing.assert_array_equal(got, labels)


def test_label_value_above_150_is_refused(tmp_path: Path) -> None:
    labels = np.zeros((8, 8), np.uint8)
    labels[3, 3] = 151
    Image.fromarray(labels, mode="L").save(tmp_path / "m.png")
    with pytest.raises(InputError, match=r"m\.png: label value 151 is outside 0\.\.150"):
        read_label_map(tmp_path / "m.png")


def test_exemplar_is_bgr(tmp_path: Path) -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 250  # red
    Image.fromarray(rgb).save(tmp_path / "e.jpg", quality=95)
    bgr = read_exemplar(tmp_path / "e.jpg")
    assert bgr.shape == (16, 16, 3)
    assert bgr[..., 2].mean() > 240 and bgr[..., 0].mean() < 15


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGB"])
def test_ground_truth_any_jpeg_mode_becomes_rgb(tmp_path: Path, mode: str) -> None:
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[..., 1] = 200
    img = Image.fromarray(rgb).convert(mode)
    img.save(tmp_path / "gt.jpg", quality=95)
    got = read_ground_truth(tmp_path / "gt.jpg")
    assert got.shape == (10, 12, 3) and got.dtype == np.uint8
    expected = np.asarray(Image.open(tmp_path / "gt.jpg").convert("RGB"))
    np.testing.assert_array_equal(got, expected)
    if mode == "L":
        assert np.all(got[..., 0] == got[..., 1]) and np.all(got[..., 1] == got[..., 2])


@pytest.mark.parametrize("reader", [read_label_map, read_exemplar, read_ground_truth])
def test_missing_file_names_it(tmp_path: Path, reader) -> None:
    with pytest.raises(InputError, match=r"x\.(png|jpg): .* not found"):
        reader(tmp_path / ("x.png" if reader is read_label_map else "x.jpg"))


@pytest.mark.parametrize("reader", [read_label_map, read_exemplar, read_ground_truth])
def test_undecodable_file_names_it(tmp_path: Path, reader) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(InputError, match=r"bad\.jpg: cannot decode"):
        reader(bad)


def test_check_root_explains_layout(tmp_path: Path) -> None:
    (tmp_path / "images" / "validation").mkdir(parents=True)
    with pytest.raises(
        InputError, match="missing images/training, annotations/validation, annotations/training"
    ):
        check_root(tmp_path)
