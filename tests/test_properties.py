"""Property-based tests (hypothesis) of the pairs parser and the preprocessing, on random inputs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from evalkit.config import InputConvention
from evalkit.data.ade20k import read_pairs
from evalkit.data.postprocess import output_to_image
from evalkit.data.preprocess import image_tensor, one_hot, resize_label_map
from evalkit.errors import InputError

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ids = st.lists(st.integers(1, 99_999_999), min_size=1, max_size=20, unique=True)


@SETTINGS
@given(
    val_ids=ids,
    extra=st.lists(st.integers(0, 3), min_size=20, max_size=20),
    blanks=st.lists(st.booleans(), min_size=20, max_size=20),
    bom=st.booleans(),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_valid_files_parse_to_their_pairs_in_order(val_ids, extra, blanks, bom, newline) -> None:
    lines, expected = [], []
    for k, v in enumerate(val_ids):
        if blanks[k]:
            lines.append("   ")
        fields = [f"ADE_val_{v:08d}.jpg", f"ADE_train_{v + 7:08d}.jpg"]
        fields += [f"ADE_train_{j:08d}.jpg" for j in range(extra[k])]
        lines.append(",".join(fields))
        expected.append((f"ADE_val_{v:08d}", f"ADE_train_{v + 7:08d}", len(lines)))
    text = ("\ufeff" if bom else "") + newline.join(lines) + newline
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.txt"
        path.write_bytes(text.encode("utf-8"))
        pairs = read_pairs(path)
    assert [(p.val_id, p.exemplar_id, p.line) for p in pairs] == expected
    assert [p.index for p in pairs] == list(range(len(expected)))


@SETTINGS
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=200))
def test_any_text_parses_or_fails_with_file_and_line(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pairs.txt"
        path.write_text(text, encoding="utf-8")
        try:
            pairs = read_pairs(path)
        except InputError as exc:
            message = str(exc)
            assert message.startswith(f"{path}") and "\n" not in message
        else:
            assert pairs and all(p.val_id and p.exemplar_id for p in pairs)


label_maps = arrays(np.uint8, st.tuples(st.integers(1, 40), st.integers(1, 40)), elements=st.integers(0, 150))


@SETTINGS
@given(label_maps)
def test_one_hot_after_nearest_resize_is_a_partition_of_the_labels(labels: np.ndarray) -> None:
    resized = resize_label_map(labels, size=32)
    assert set(np.unique(resized)) <= set(np.unique(labels))  # nearest never invents a label
    encoded = one_hot(resized)
    assert encoded.shape == (151, 32, 32)
    np.testing.assert_array_equal(encoded.sum(axis=0), 1.0)
    np.testing.assert_array_equal(encoded.argmax(axis=0), resized)


images = arrays(np.uint8, st.tuples(st.integers(1, 16), st.integers(1, 16), st.just(3)))


@SETTINGS
@given(images, st.sampled_from(["RGB", "BGR"]), st.sampled_from([(0.0, 1.0), (127.5, 127.5), (0.0, 255.0)]))
def test_image_tensor_inverts_back_to_the_pixels(bgr: np.ndarray, order: str, mean_scale) -> None:
    mean, scale = mean_scale
    x = image_tensor(bgr, InputConvention(order, mean, scale))
    back = np.rint(x[0].transpose(1, 2, 0).astype(np.float64) * scale + mean).astype(np.uint8)
    np.testing.assert_array_equal(back, bgr[..., ::-1] if order == "RGB" else bgr)


@SETTINGS
@given(arrays(np.float32, (3, 4, 5), elements=st.floats(-3, 3, width=32)))
def test_output_to_image_is_monotone_and_in_range(out: np.ndarray) -> None:
    img = output_to_image(out)
    assert img.dtype == np.uint8 and img.shape == (4, 5, 3)
    flat_in, flat_out = out.transpose(1, 2, 0).ravel(), img.ravel()
    order = np.argsort(flat_in, kind="stable")
    assert np.all(np.diff(flat_out[order].astype(int)) >= 0)
    assert np.all(flat_out[flat_in <= -1] == 0) and np.all(flat_out[flat_in >= 1] == 255)
