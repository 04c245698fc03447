"""Tests of the stand-in models, the synthetic ADE20k tree, and the committed fixture + golden figures."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
import pytest
from PIL import Image

from evalkit.demo.dataset import PAIRS_FILE, ROOT_NAME, SyntheticDataset, build_synthetic_ade20k
from evalkit.demo.models import (
    AVGPOOL_NAME,
    SOFTMAX_NAME,
    TRANSLATION_INPUTS,
    TRANSLATION_OUTPUT,
    StandinPaths,
    save_standins,
)
from evalkit.fileio import sha256_file

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "ade20k_tiny"
GOLDEN = FIXTURES / "golden_reference.json"
F32 = {"INFERENCE_PRECISION_HINT": "f32"}  # the CPU plugin may default to bf16, which moves the numbers
SMALL_SIZES = ((80, 64), (64, 96), (120, 90))


@pytest.fixture(scope="module")
def core() -> ov.Core:
    return ov.Core()


def _compile(core: ov.Core, model: ov.Model | Path) -> ov.CompiledModel:
    return core.compile_model(model, "CPU", F32)


def _one_hot(label_path: Path) -> np.ndarray:
    """The reference's mask preprocessing: BGR read, to gray, nearest resize to 256, 151-channel one-hot."""
    gray = cv2.cvtColor(cv2.imread(str(label_path)), cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(gray, (256, 256), interpolation=cv2.INTER_NEAREST)
    return (np.arange(151)[:, None, None] == gray[None]).astype(np.float32)[None]


def _fixture_pair(index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Input mask one-hot, exemplar BGR uint8 [256,256,3] (cubic resize), exemplar mask one-hot of a pair."""
    line = (FIXTURE / PAIRS_FILE).read_text(encoding="utf-8").splitlines()[index]
    val, train = line.split(",")[:2]
    root = FIXTURE / ROOT_NAME
    exemplar = cv2.resize(cv2.imread(str(root / "images" / "training" / train)), (256, 256),
                          interpolation=cv2.INTER_CUBIC)
    return (_one_hot(root / "annotations" / "validation" / val.replace(".jpg", ".png")), exemplar,
            _one_hot(root / "annotations" / "training" / train.replace(".jpg", ".png")))


def _translate(
    compiled: ov.CompiledModel, seg: np.ndarray, ref: np.ndarray, ref_seg: np.ndarray
) -> np.ndarray:
    """Run a translation model, feeding by name."""
    inputs = {"input_seg_map": seg, "ref_image": ref, "ref_seg_map": ref_seg}
    return compiled(inputs)[compiled.output(TRANSLATION_OUTPUT)]


def _rgb_normalised(bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 HWC -> RGB (x - 127.5) / 127.5 NCHW float32 (the original model's convention)."""
    return ((bgr[:, :, ::-1].astype(np.float32) - 127.5) / 127.5).transpose(2, 0, 1)[None].copy()


def _bgr_255(bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 HWC -> BGR 0..255 NCHW float32 (the baked models' convention)."""
    return bgr.astype(np.float32).transpose(2, 0, 1)[None].copy()


# ----------------------------------------------------------------------------------------------------------
# Translation stand-in
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["original", "original_baked", "converted"])
def test_translation_interface(standins: StandinPaths, core: ov.Core, which: str) -> None:
    model = core.read_model(getattr(standins, which))
    # Order matters: the reference tool feeds inputs by position.
    assert [p.get_friendly_name() for p in model.get_parameters()] == list(TRANSLATION_INPUTS)
    assert [i.get_names() for i in model.inputs] == [{name} for name in TRANSLATION_INPUTS]
    assert [tuple(i.get_shape()) for i in model.inputs] == [(1, 151, 256, 256), (1, 3, 256, 256),
                                                             (1, 151, 256, 256)]
    assert all(i.get_element_type() == ov.Type.f32 for i in model.inputs)
    assert len(model.outputs) == 1
    output = model.outputs[0]
    assert output.get_names() == {TRANSLATION_OUTPUT}
    assert tuple(output.get_shape()) == (1, 3, 256, 256)
    assert output.get_element_type() == ov.Type.f32


def test_converted_has_fp16_weights_and_baked_has_none(standins: StandinPaths, core: ov.Core) -> None:
    def constant_types(path: Path) -> set[str]:
        return {op.get_output_element_type(0).get_type_name()
                for op in core.read_model(path).get_ops() if op.get_type_name() == "Constant"}

    assert "f16" in constant_types(standins.converted)
    assert "f16" not in constant_types(standins.original_baked)
    assert "f16" not in constant_types(standins.original)


@pytest.mark.parametrize("which", ["original", "original_baked", "converted", "verifier"])
def test_ir_uses_only_opsets_that_openvino_2023_3_reads(standins: StandinPaths, which: str) -> None:
    versions = {layer.get("version") for layer in ET.parse(getattr(standins, which)).getroot().iter("layer")}
    assert versions, "no layers parsed"
    assert all(re.fullmatch(r"opset([1-9]|1[0-3])", v or "") for v in versions), versions


def test_original_equals_baked_and_converted_is_close(standins: StandinPaths, core: ov.Core) -> None:
    seg, exemplar, ref_seg = _fixture_pair(0)
    original = _translate(_compile(core, standins.original), seg, _rgb_normalised(exemplar), ref_seg)
    baked = _translate(_compile(core, standins.original_baked), seg, _bgr_255(exemplar), ref_seg)
    converted = _translate(_compile(core, standins.converted), seg, _bgr_255(exemplar), ref_seg)

    assert np.abs(original - baked).max() < 1e-5
    difference = np.abs(converted - baked).max()
    assert 0.0 < difference < 0.02, difference  # FP16 weights: visible in the bits, not in the picture
    # tanh range, and a good part of it used: a real image, not a grey field.
    assert -1.0 <= original.min() and original.max() <= 1.0
    assert original.max() - original.min() > 0.6


def test_translation_paints_classes_with_exemplar_colours(standins: StandinPaths, core: ov.Core) -> None:
    labels = np.zeros((256, 256), dtype=np.int64)
    labels[:, 128:] = 7
    labels[:64, :64] = 9  # class 9 is not in the exemplar: it gets the exemplar's mean colour
    seg = (np.arange(151)[:, None, None] == labels[None]).astype(np.float32)[None]
    ref_labels = np.zeros((256, 256), dtype=np.int64)
    ref_labels[128:] = 7
    ref_seg = (np.arange(151)[:, None, None] == ref_labels[None]).astype(np.float32)[None]
    exemplar = np.zeros((256, 256, 3), dtype=np.uint8)  # BGR
    exemplar[:128] = (0, 0, 255)  # class 0 is red
    exemplar[128:] = (255, 0, 0)  # class 7 is blue

    out = _translate(_compile(core, standins.original), seg, _rgb_normalised(exemplar), ref_seg)[0]
    red, blue, grey = out[:, 100:250, 10:110], out[:, 10:250, 150:250], out[:, 5:55, 5:55]
    assert red[0].min() > 0.6 and red[2].max() < -0.6 and red[1].max() < -0.6
    assert blue[2].min() > 0.6 and blue[0].max() < -0.6 and blue[1].max() < -0.6
    # Exemplar mean colour: half red, half blue = (0, -1, 0) normalised.
    assert np.abs(grey[0]).max() < 0.15 and np.abs(grey[2]).max() < 0.15 and grey[1].max() < -0.6


# ----------------------------------------------------------------------------------------------------------
# Verifier stand-in
# ----------------------------------------------------------------------------------------------------------


def test_verifier_interface(standins: StandinPaths, core: ov.Core) -> None:
    model = core.read_model(standins.verifier)
    assert [i.get_names() for i in model.inputs] == [{"input"}]
    assert model.inputs[0].get_node().get_friendly_name() == "input"
    assert tuple(model.inputs[0].get_shape()) == (1, 3, 299, 299)
    assert model.inputs[0].get_element_type() == ov.Type.f32
    assert [o.get_names() for o in model.outputs] == [{SOFTMAX_NAME}]
    assert tuple(model.outputs[0].get_shape()) == (1, 1001)
    assert model.outputs[0].get_node().input_value(0).get_node().get_friendly_name() == SOFTMAX_NAME
    assert model.outputs[0].get_node().input_value(0).get_node().get_type_name() == "Softmax"
    pools = [op for op in model.get_ops() if op.get_friendly_name() == AVGPOOL_NAME]
    assert len(pools) == 1 and pools[0].get_type_name() == "AvgPool"
    assert all(AVGPOOL_NAME not in o.get_names() for o in model.outputs)

    model.add_outputs(AVGPOOL_NAME)
    assert len(model.outputs) == 2
    assert tuple(model.output(AVGPOOL_NAME).get_shape()) == (1, 2048, 1, 1)


def test_verifier_features_and_probabilities_are_informative(standins: StandinPaths, core: ov.Core) -> None:
    model = core.read_model(standins.verifier)
    model.add_outputs(AVGPOOL_NAME)
    compiled = _compile(core, model)
    probabilities, features = [], []
    for path in sorted((FIXTURE / ROOT_NAME / "images").rglob("*.jpg")):
        rgb = np.asarray(Image.open(path).convert("RGB"))
        bgr = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (299, 299))  # the reference's verifier input
        result = compiled(bgr.astype(np.float32).transpose(2, 0, 1)[None])
        probabilities.append(result[compiled.output(SOFTMAX_NAME)][0])
        features.append(result[compiled.output(AVGPOOL_NAME)].ravel())
    p = np.array(probabilities, dtype=np.float64)
    f = np.array(features, dtype=np.float64)

    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)
    assert p.max(axis=1).min() > 10.0 / 1001  # not uniform
    assert p.max(axis=1).max() < 0.95  # not one-hot
    assert (f >= 0).all() and (f.max(axis=0) > 0).all()  # ReLU features, no dead channel
    assert (f.std(axis=0) > 0).mean() > 0.99  # features vary between images
    marginal = p.mean(axis=0)
    inception_score = np.exp(np.mean(np.sum(p * (np.log(p + 1e-16) - np.log(marginal + 1e-16)), axis=1)))
    assert 2.0 < inception_score <= len(p)


# ----------------------------------------------------------------------------------------------------------
# Saving: idempotent, deterministic, tied to the golden figures
# ----------------------------------------------------------------------------------------------------------


def _standin_hashes(paths: StandinPaths) -> dict[str, str]:
    files = [f for xml in vars(paths).values() for f in (xml, xml.with_suffix(".bin"))]
    return {f.name: sha256_file(f) for f in files}


def test_save_standins_is_deterministic_and_idempotent(standins: StandinPaths, tmp_path: Path) -> None:
    again = save_standins(tmp_path / "again", seed=0)
    assert _standin_hashes(again) == _standin_hashes(standins)
    stamp_mtime = (tmp_path / "again" / "standins.json").stat().st_mtime_ns
    bin_mtime = again.verifier.with_suffix(".bin").stat().st_mtime_ns
    assert save_standins(tmp_path / "again", seed=0) == again
    assert (tmp_path / "again" / "standins.json").stat().st_mtime_ns == stamp_mtime  # reused, not rebuilt
    assert again.verifier.with_suffix(".bin").stat().st_mtime_ns == bin_mtime
    assert not list((tmp_path / "again").glob(".build-*"))

    other = save_standins(tmp_path / "again", seed=1)  # a stamp that does not match: rebuilt in place
    assert json.loads((tmp_path / "again" / "standins.json").read_text())["seed"] == 1
    weights = [sha256_file(p.verifier.with_suffix(".bin")) for p in (other, standins)]
    assert weights[0] != weights[1]


def test_standins_are_the_ones_the_golden_figures_were_made_with(standins: StandinPaths) -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))["standins"]
    assert golden["seed"] == 0
    recorded, current = golden["sha256"], _standin_hashes(standins)
    # Weights must match always; the .xml text may change with the serializer of another OpenVINO release.
    names = [n for n in recorded if n.endswith(".bin") or golden["openvino"] == ov.get_version()]
    mismatched = [n for n in names if recorded[n] != current[n]]
    assert not mismatched, f"stand-ins changed ({mismatched}): rerun tools/make_golden.py, review the figures"


def test_golden_figures_are_sane() -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert "accuracy checker" in golden["produced_by"].lower() and "f32" in golden["produced_by"]
    for figures in golden["models"].values():
        assert 8.0 < figures["psnr"] < 25.0
        assert 0.0 < figures["ssim"] < 1.0
        assert figures["inception_score"] > 1.0
        assert figures["fid"] > 0.0
    original, converted = golden["models"]["original"], golden["models"]["converted"]
    assert original != converted  # FP16 weights move the last digits...
    for name, value in original.items():  # ...and no more
        assert converted[name] == pytest.approx(value, rel=1e-4), name


# ----------------------------------------------------------------------------------------------------------
# Synthetic ADE20k tree
# ----------------------------------------------------------------------------------------------------------


def _tree_hashes(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in sorted(directory.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> SyntheticDataset:
    return build_synthetic_ade20k(tmp_path_factory.mktemp("ade"), n_pairs=6, seed=3, sizes=SMALL_SIZES)


def test_dataset_layout_and_pairs_file(small_dataset: SyntheticDataset) -> None:
    root = small_dataset.root
    assert root.name == ROOT_NAME and small_dataset.pairs.name == PAIRS_FILE
    assert small_dataset.n_pairs == 6
    lines = small_dataset.pairs.read_bytes().decode("utf-8").split("\n")
    assert lines[-1] == "" and "" not in lines[:-1]  # one pair a line, newline-terminated
    pairs = [line.split(",") for line in lines[:-1]]
    assert len(pairs) == 6
    assert [p[0] for p in pairs] == [f"ADE_val_{i:08d}.jpg" for i in range(1, 7)]
    assert all(len(p) == 3 and all(re.fullmatch(r"ADE_train_\d{8}\.jpg", f) for f in p[1:]) for p in pairs)
    exemplars = [p[1] for p in pairs]
    assert len(set(exemplars)) == len(exemplars)
    for val, train, missing in pairs:
        assert not (root / "images" / "training" / missing).exists()  # only field 2 is used
        for split, name in (("validation", val), ("training", train)):
            image = Image.open(root / "images" / split / name)
            labels = Image.open(root / "annotations" / split / name.replace(".jpg", ".png"))
            assert image.format == "JPEG" and labels.format == "PNG" and labels.mode == "L"
            assert image.size == labels.size and image.size in SMALL_SIZES
            assert np.asarray(labels).max() <= 150
    expected = {f"{k}/{s}" for k in ("images", "annotations") for s in ("training", "validation")}
    assert {p.relative_to(root).as_posix() for p in root.glob("*/*")} == expected
    assert len(list(root.rglob("*.*"))) == 4 * 6


def test_dataset_labels_cover_extremes_and_shared_classes(small_dataset: SyntheticDataset) -> None:
    def classes(split: str, image_name: str) -> set[int]:
        path = small_dataset.root / "annotations" / split / image_name.replace(".jpg", ".png")
        return {int(c) for c in np.unique(np.asarray(Image.open(path)))}

    shared = []
    for line in small_dataset.pairs.read_text(encoding="utf-8").splitlines():
        val, train = line.split(",")[:2]
        shared.append((classes("validation", val), classes("training", train)))
    assert sum(0 in v and 0 in t for v, t in shared) >= 2
    assert sum(150 in v and 150 in t for v, t in shared) >= 2
    assert all(len(v & t) >= 2 for v, t in shared)  # exemplars are relevant...
    assert any(v - t for v, t in shared)  # ...not perfect: some input classes are absent from the exemplar


def test_dataset_has_a_grayscale_ground_truth_and_rgb_exemplars(small_dataset: SyntheticDataset) -> None:
    modes = [Image.open(p).mode for p in sorted((small_dataset.root / "images" / "validation").glob("*.jpg"))]
    assert modes.count("L") >= 1 and set(modes) <= {"L", "RGB"}
    assert {Image.open(p).mode for p in (small_dataset.root / "images" / "training").glob("*.jpg")} == {"RGB"}


def test_dataset_is_deterministic_and_idempotent(small_dataset: SyntheticDataset, tmp_path: Path) -> None:
    again = build_synthetic_ade20k(tmp_path, n_pairs=6, seed=3, sizes=SMALL_SIZES)
    assert _tree_hashes(again.root.parent) == _tree_hashes(small_dataset.root.parent)
    stamp = tmp_path / ".evalkit-synthetic.json"
    mtime = stamp.stat().st_mtime_ns
    assert build_synthetic_ade20k(tmp_path, n_pairs=6, seed=3, sizes=SMALL_SIZES) == again
    assert stamp.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob(".build-*"))
    # Other arguments replace our own earlier build.
    build_synthetic_ade20k(tmp_path, n_pairs=2, seed=4, sizes=SMALL_SIZES)
    assert len((tmp_path / PAIRS_FILE).read_text(encoding="utf-8").splitlines()) == 2
    assert len(list((tmp_path / ROOT_NAME / "images" / "validation").iterdir())) == 2


def test_dataset_never_overwrites_a_tree_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / ROOT_NAME / "images").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        build_synthetic_ade20k(tmp_path, n_pairs=1, sizes=SMALL_SIZES)


# ----------------------------------------------------------------------------------------------------------
# The committed fixture
# ----------------------------------------------------------------------------------------------------------


def test_fixture_is_small_and_unchanged() -> None:
    stamp = json.loads((FIXTURE / ".evalkit-synthetic.json").read_text(encoding="utf-8"))
    files = _tree_hashes(FIXTURE)
    files.pop(".evalkit-synthetic.json")
    assert files == stamp["sha256"], "fixture files differ from their stamp: regenerate the golden figures"
    assert sum(p.stat().st_size for p in FIXTURES.rglob("*") if p.is_file()) < 300_000
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))["fixture"]
    assert golden["n_pairs"] == stamp["n_pairs"] == len(files) // 4 == 8
    grayscale = [p for p in (FIXTURE / ROOT_NAME / "images" / "validation").glob("*.jpg")
                 if Image.open(p).mode == "L"]
    assert grayscale


def test_fixture_regenerates_from_its_recorded_parameters(tmp_path: Path) -> None:
    stamp = json.loads((FIXTURE / ".evalkit-synthetic.json").read_text(encoding="utf-8"))
    rebuilt = build_synthetic_ade20k(tmp_path, n_pairs=stamp["n_pairs"], seed=stamp["seed"],
                                     sizes=[tuple(s) for s in stamp["sizes"]])
    assert rebuilt.pairs.read_bytes() == (FIXTURE / PAIRS_FILE).read_bytes()
    for committed in sorted((FIXTURE / ROOT_NAME).rglob("*.*")):
        fresh = rebuilt.root / committed.relative_to(FIXTURE / ROOT_NAME)
        a = np.asarray(Image.open(committed), dtype=np.int16)
        b = np.asarray(Image.open(fresh), dtype=np.int16)
        if committed.suffix == ".png":
            np.testing.assert_array_equal(a, b)  # label maps: lossless, exact
        else:  # JPEG: another libjpeg may move a level here and there, no more
            assert a.shape == b.shape and np.abs(a - b).mean() < 0.5, committed.name
