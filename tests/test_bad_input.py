"""The bad-input matrix: each case gives one line naming the file (and pairs line or key) and the problem."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest
from PIL import Image

import evalkit
from evalkit.config import bundled_config, load_config
from evalkit.errors import InputError

SIZES = [(96, 128), (128, 96), (80, 80)]


@pytest.fixture
def data(synthetic_data, tmp_path: Path):
    """A fresh copy of a small data set per test, so each test may break it."""
    built = synthetic_data(4, SIZES)
    copy = tmp_path / "data"
    shutil.copytree(built.root.parent, copy)
    return copy / "ADEChallengeData2016", copy / built.pairs.name


def run(standins, data, tmp_path: Path, **overrides):
    root, pairs = data
    kwargs = {
        "data_root": root,
        "pairs": pairs,
        "models": {"original": standins.original, "converted": standins.converted},
        "verifier": standins.verifier,
        "output": tmp_path / "out",
    }
    kwargs["models"] = {**kwargs["models"], **overrides.pop("models", {})}
    kwargs.update(overrides)
    return evalkit.evaluate(bundled_config("demo.yaml"), **kwargs)


def error_of(standins, data, tmp_path: Path, **overrides) -> str:
    with pytest.raises(InputError) as info:
        run(standins, data, tmp_path, **overrides)
    message = str(info.value)
    assert "\n" not in message
    assert not (tmp_path / "out" / "results.json").exists()  # nothing half-written
    return message


def exemplar_of_line(pairs: Path, line: int) -> str:
    return pairs.read_text().splitlines()[line - 1].split(",")[1]


def test_truncated_exemplar_jpeg(standins, data, tmp_path: Path) -> None:
    root, pairs = data
    path = root / "images" / "training" / exemplar_of_line(pairs, 2)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    message = error_of(standins, data, tmp_path)
    assert message.startswith(f"{path}: cannot decode exemplar image") and "truncated" in message
    assert message.endswith("(pairs line 2)")


def test_truncated_label_map_png(standins, data, tmp_path: Path) -> None:
    root, _ = data
    path = root / "annotations" / "validation" / "ADE_val_00000003.png"
    path.write_bytes(path.read_bytes()[:100])
    assert (
        error_of(standins, data, tmp_path)
        == f"{path}: cannot decode label map (corrupt, truncated or not an image) (pairs line 3)"
    )


def test_corrupt_ground_truth(standins, data, tmp_path: Path) -> None:
    root, _ = data
    path = root / "images" / "validation" / "ADE_val_00000001.jpg"
    path.write_bytes(b"\xff\xd8 not really a jpeg")
    assert error_of(standins, data, tmp_path).startswith(f"{path}: cannot decode ground-truth image")


def test_rgb_mask_with_differing_channels(standins, data, tmp_path: Path) -> None:
    root, _ = data
    path = root / "annotations" / "validation" / "ADE_val_00000002.png"
    labels = np.asarray(Image.open(path))
    colour = np.stack([labels, labels, (labels + 1) % 151], axis=-1).astype(np.uint8)
    Image.fromarray(colour).save(path)
    message = error_of(standins, data, tmp_path)
    assert message.startswith(f"{path}: label map is a colour image with differing channels")


def test_rgb_mask_with_equal_channels_is_read_as_gray(tmp_path: Path) -> None:
    from evalkit.data.ade20k import read_label_map

    labels = (np.arange(30 * 20).reshape(20, 30) % 151).astype(np.uint8)
    Image.fromarray(np.stack([labels] * 3, axis=-1)).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_label_map(tmp_path / "m.png"), labels)


def test_label_value_above_150(standins, data, tmp_path: Path) -> None:
    root, _ = data
    path = root / "annotations" / "validation" / "ADE_val_00000004.png"
    labels = np.asarray(Image.open(path)).copy()
    labels[0, 0] = 200
    Image.fromarray(labels).save(path)
    assert error_of(standins, data, tmp_path).startswith(f"{path}: label value 200 is outside 0..150")


def test_ground_truth_and_label_map_sizes_differ(standins, data, tmp_path: Path) -> None:
    root, _ = data
    path = root / "images" / "validation" / "ADE_val_00000001.jpg"
    Image.open(path).convert("RGB").resize((50, 40)).save(path)
    message = error_of(standins, data, tmp_path)
    assert (
        "ADE_val_00000001.png: label map is 96x128 but its ground truth ADE_val_00000001.jpg is 50x40"
        in message
    )


def test_symlink_leading_out_of_the_data_root(standins, data, tmp_path: Path) -> None:
    root, pairs = data
    path = root / "images" / "training" / exemplar_of_line(pairs, 1)
    outside = tmp_path / "outside.jpg"
    shutil.move(path, outside)
    path.symlink_to(outside)
    message = error_of(standins, data, tmp_path)
    assert message.startswith(f"{path}: resolves to {outside}, outside the data root")


@pytest.mark.parametrize("part", [".xml", ".bin"])
def test_missing_model_files(standins, data, tmp_path: Path, part: str) -> None:
    model = tmp_path / "m.xml"
    shutil.copy(standins.converted, model)
    if part == ".bin":
        message = error_of(standins, data, tmp_path, models={"converted": model})
        assert (
            message
            == f"{tmp_path / 'm.bin'}: translation (converted) weights (.bin beside the .xml) not found"
        )
    else:
        message = error_of(standins, data, tmp_path, models={"converted": tmp_path / "none.xml"})
        assert message == f"{tmp_path / 'none.xml'}: translation (converted) model file not found"


def test_corrupt_model_xml(standins, data, tmp_path: Path) -> None:
    model = tmp_path / "m.xml"
    model.write_text("<net><layers>")
    shutil.copy(standins.converted.with_suffix(".bin"), tmp_path / "m.bin")
    assert error_of(standins, data, tmp_path, models={"converted": model}).startswith(
        f"{model}: cannot read translation (converted) model:"
    )


def small_model(
    path: Path,
    *,
    names: tuple[str, str, str] = ("input_seg_map", "ref_image", "ref_seg_map"),
    image_shape: tuple[int, ...] = (1, 3, 256, 256),
    nan: bool = False,
) -> Path:
    params = [
        ops.parameter([1, 151, 256, 256], np.float32, name=names[0]),
        ops.parameter(list(image_shape), np.float32, name=names[1]),
        ops.parameter([1, 151, 256, 256], np.float32, name=names[2]),
    ]
    for p, n in zip(params, names, strict=True):
        p.output(0).get_tensor().set_names({n})
    scale = ops.constant(np.float32(np.nan if nan else 0.0))
    out = ops.multiply(params[1], scale)
    out.output(0).get_tensor().set_names({"exemplar_based_output"})
    ov.save_model(ov.Model([out], params, "small"), path)
    return path


def test_wrong_input_name(standins, data, tmp_path: Path) -> None:
    model = small_model(tmp_path / "m.xml", names=("input_seg_map", "image", "ref_seg_map"))
    message = error_of(standins, data, tmp_path, models={"converted": model})
    assert message.startswith(f"{model}: no input named 'ref_image' (models.converted.tensors)")
    assert "input_seg_map; image; ref_seg_map" in message


def test_wrong_input_shape(standins, data, tmp_path: Path) -> None:
    model = small_model(tmp_path / "m.xml", image_shape=(1, 3, 512, 512))
    assert error_of(standins, data, tmp_path, models={"converted": model}) == (
        f"{model}: input 'ref_image' has shape [1,3,512,512], expected [1, 3, 256, 256]"
    )


def test_nan_in_model_output(standins, data, tmp_path: Path) -> None:
    model = small_model(tmp_path / "m.xml", nan=True)
    message = error_of(standins, data, tmp_path, models={"converted": model})
    assert message == f"{model}: output 'exemplar_based_output' contains NaN or Inf"


def test_verifier_without_features_node(standins, data, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    text = bundled_config("demo.yaml").read_text().replace("AvgPool_1a_8x8/AvgPool", "AvgPool_1a_8x8/Missing")
    config.write_text(text)
    root, pairs = data
    with pytest.raises(InputError) as info:
        evalkit.evaluate(config, data_root=root, pairs=pairs, verifier=standins.verifier,
                         models={"original": standins.original, "converted": standins.converted})  # fmt: skip
    assert str(info.value).startswith(
        f"{standins.verifier}: 'InceptionV3/Logits/AvgPool_1a_8x8/Missing' "
        "(verifier.features_output) is neither"
    )


def test_unwritable_output(standins, data, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    message = error_of(standins, data, tmp_path, output=blocker / "out")
    assert message.startswith(f"{blocker / 'out'}: output directory is not writable")


def test_check_lists_every_problem_and_exits_2(standins, data, tmp_path: Path) -> None:
    root, pairs = data
    (root / "annotations" / "validation" / "ADE_val_00000002.png").unlink()
    gt = root / "images" / "validation" / "ADE_val_00000004.jpg"
    gt.write_bytes(gt.read_bytes()[:200])
    args = [
        sys.executable, "-m", "evalkit", "check", str(bundled_config("demo.yaml")), "--data-root", str(root),
        "--pairs", str(pairs), "--model", f"original={standins.original}",
        "--model", f"converted={tmp_path / 'none.xml'}", "--verifier", str(standins.verifier),
        "--output", str(tmp_path / "out"),
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1] == "evalkit check: 3 problem(s)"
    assert f"evalkit: error: {tmp_path / 'none.xml'}: translation (converted) model file not found" in lines
    assert any("ADE_val_00000002.png: label map not found (pairs line 2)" in line for line in lines)
    assert any(line.startswith(f"evalkit: error: {gt}: cannot decode ground-truth image") for line in lines)


def test_check_passes_on_good_input(standins, data, tmp_path: Path) -> None:
    from evalkit.config import Overrides, apply_overrides
    from evalkit.execution.check import check

    root, pairs = data
    config = apply_overrides(
        load_config(bundled_config("demo.yaml")),
        Overrides(data_root=root, pairs=pairs, verifier=standins.verifier, output=tmp_path / "out",
                  models={"original": standins.original, "converted": standins.converted}),
    )  # fmt: skip
    report = check(config)
    assert report.ok and report.n_pairs == 4 and report.n_models == 2


@pytest.mark.parametrize("kind", ["directory", "FIFO"])
@pytest.mark.parametrize("which", ["exemplar image", "label map"])
def test_directory_or_fifo_where_an_image_should_be(standins, data, tmp_path: Path, kind, which) -> None:
    import os

    root, pairs = data
    if which == "exemplar image":
        path, line = root / "images" / "training" / exemplar_of_line(pairs, 2), 2
    else:
        path, line = root / "annotations" / "validation" / "ADE_val_00000001.png", 1
    path.unlink()
    path.mkdir() if kind == "directory" else os.mkfifo(path)  # a FIFO opened for reading would hang
    article = "an" if which[0] == "e" else "a"
    assert error_of(standins, data, tmp_path) == (
        f"{path}: is a {kind}, not {article} {which} file (pairs line {line})"
    )


def test_file_where_the_output_folder_should_be(standins, data, tmp_path: Path) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("")
    with pytest.raises(InputError) as info:
        run(standins, data, tmp_path)
    assert str(info.value) == f"{blocker}: output directory is a file, not a folder"


def test_truncated_model_weights_keep_openvinos_line(standins, data, tmp_path: Path) -> None:
    model = tmp_path / "m.xml"
    shutil.copy(standins.original, model)
    (tmp_path / "m.bin").write_bytes(standins.original.with_suffix(".bin").read_bytes()[:10])
    assert error_of(standins, data, tmp_path, models={"original": model}) == (
        f"{model}: cannot read translation (original) model: Incorrect weights in bin file!"
    )


def test_non_utf8_pairs_file_names_its_line(standins, data, tmp_path: Path) -> None:
    _, pairs = data
    lines = pairs.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b"ADE_train_", b"ADE_train_\xe9")
    pairs.write_bytes(b"".join(lines))
    message = error_of(standins, data, tmp_path)
    assert message.startswith(f"{pairs}:3: pairs file is not UTF-8 (invalid continuation byte at byte ")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_number_in_config(tmp_path: Path, value: str) -> None:
    config = tmp_path / "c.yaml"
    text = bundled_config("demo.yaml").read_text()
    config.write_text(text.replace("mean: 127.5, scale: 127.5", f"mean: {value}, scale: 127.5"))
    with pytest.raises(InputError) as info:
        load_config(config)
    shown = {".nan": "nan", ".inf": "inf", "-.inf": "-inf"}[value]
    assert str(info.value) == (
        f"{config}: key 'models.original.ref_image.mean': expected a finite number, got {shown}"
    )



def results_of_two_models(tmp_path: Path, name: str, psnr: str = "20.0") -> Path:
    """A results.json of two models whose original PSNR is written as ``psnr`` (raw JSON text)."""
    import json

    import records

    run = records.run({"original": records.metrics(psnr=12345.5), "converted": records.metrics()})
    path = tmp_path / name
    path.write_text(json.dumps(run.to_dict(), indent=2).replace("12345.5", psnr, 1))
    return path


def gate_error_line(argv: list[str], capsys) -> str:
    from evalkit import cli

    assert cli.main(["gate", *argv]) == cli.EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_gate_given_a_folder(tmp_path: Path, capsys) -> None:
    good = results_of_two_models(tmp_path, "good.json")
    for argv in ([str(tmp_path), str(good)], [str(good), str(tmp_path)]):
        line = gate_error_line(argv, capsys)
        assert line == f"evalkit: error: {tmp_path}: is a folder; give a results.json"


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_gate_refuses_a_non_finite_metric_even_in_the_baseline(tmp_path: Path, capsys, constant) -> None:
    good = results_of_two_models(tmp_path, "good.json")
    bad = results_of_two_models(tmp_path, "bad.json", constant)
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if constant in text)
    expected = (
        f"evalkit: error: {bad}:{line}: not strict JSON: {constant} is not a number "
        "(evalkit writes null for an undefined value)"
    )
    assert gate_error_line([str(bad), str(good)], capsys) == expected  # a NaN baseline is no pass
    assert gate_error_line([str(good), str(bad)], capsys) == expected


def test_gate_refuses_a_string_metric(tmp_path: Path, capsys) -> None:
    good = results_of_two_models(tmp_path, "good.json")
    bad = results_of_two_models(tmp_path, "bad.json", '"20.0"')
    assert gate_error_line([str(bad), str(good)], capsys) == (
        f"evalkit: error: {bad}: not an evalkit results file "
        "(metrics.psnr: expected a number or null, got '20.0')"
    )


@pytest.mark.parametrize("kind", ["directory", "FIFO"])
def test_directory_or_fifo_given_as_a_model(standins, data, tmp_path: Path, kind: str) -> None:
    import os

    model = tmp_path / "m.xml"
    model.mkdir() if kind == "directory" else os.mkfifo(model)
    shown = "a directory" if kind == "directory" else "a special file (FIFO, socket or device)"
    assert error_of(standins, data, tmp_path, models={"converted": model}) == (
        f"{model}: is {shown}, not a translation (converted) model file"
    )
