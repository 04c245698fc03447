"""``evalkit compress`` (issue 14): NNCF INT8 models made from the stand-ins, evaluated and gated in one run.

Tests of the feature need NNCF (the ``compress`` extra, installed in CI); without it they are skipped,
except the ones that check what evalkit says when NNCF is missing (its absence is simulated).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error_line, standin_config

from evalkit import cli, defaults
from evalkit.compress import draw_calibration_pairs, parse_max_drop, quantized_operations
from evalkit.data.ade20k import pair_files, read_pairs
from evalkit.errors import InputError
from evalkit.fileio import sha256_file
from evalkit.runtime.core import model_sha256

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")


def _args(standins, data, output: Path, *extra: str, original: Path | None = None) -> list[str]:
    return [
        "compress", CONFIG, "--source", "original",
        "--data-root", str(data.root), "--pairs", str(data.pairs),
        "--model", f"original={original or standins.original}",
        "--model", f"converted={standins.converted}",
        "--verifier", str(standins.verifier),
        "--output", str(output), "--quiet", "--gallery-pairs", "0", "--no-cache", *extra,
    ]  # fmt: skip


# ------------------------------------------------------------------------------------ no NNCF needed


def test_max_drop_units_are_part_of_the_syntax() -> None:
    psnr = parse_max_drop("psnr=0.1")
    assert (psnr.metric.name, psnr.value, psnr.relative) == ("PSNR", 0.1, False)
    assert psnr.drop(20.0, 19.85) == pytest.approx(0.15)  # dB lost
    fid = parse_max_drop("FID = 2%")
    assert (fid.metric.name, fid.value, fid.relative) == ("FID", 0.02, True)
    assert fid.drop(100.0, 103.0) == pytest.approx(0.03)  # FID rising is the drop
    assert fid.drop(100.0, 97.0) == pytest.approx(-0.03)
    assert parse_max_drop("is=1.5%").drop(10.0, 9.7) == pytest.approx(0.03)
    assert parse_max_drop("ssim=-0.01").value == -0.01  # well-formed; the check after evaluation fails it


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("kid=2%", "unknown metric 'kid' (one of psnr, ssim, is, fid)"),
        ("lpips=0.1", "unknown metric 'lpips'"),
        ("fid=2", "FID takes a percentage"),
        ("psnr=0.1%", "PSNR takes a value in its own unit"),
        ("psnr=abc", "'abc' is not a number"),
        ("psnr=", "'' is not a number"),
        ("psnr", "expected METRIC=VALUE"),
        ("psnr=nan", "is not a number"),
        ("psnr=\u0663", "is not a number"),  # an Arabic-Indic 3: not a number a user types for 3
    ],
)
def test_max_drop_bad_values_are_one_line_input_errors(text: str, says: str) -> None:
    with pytest.raises(InputError) as info:
        parse_max_drop(text)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_calibration_draw_is_seeded_sorted_and_never_empty(synthetic_data) -> None:
    pairs = read_pairs(synthetic_data(8).pairs)
    first = draw_calibration_pairs(pairs, 3, seed=0)
    assert first == draw_calibration_pairs(pairs, 3, seed=0)
    assert [p.index for p in first] == sorted(p.index for p in first) and len(set(first)) == 3
    assert first != draw_calibration_pairs(pairs, 3, seed=1)
    assert draw_calibration_pairs(pairs, 300, seed=0) == tuple(pairs)  # fewer pairs than asked: all
    with pytest.raises(InputError, match="expected a positive number of pairs, got 0"):
        draw_calibration_pairs(pairs, 0, seed=0)
    with pytest.raises(InputError, match="lists no pairs"):
        draw_calibration_pairs([], 3, seed=0)


def test_missing_nncf_says_how_to_install_it(
    standins, synthetic_data, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(sys.modules, "nncf", None)  # `import nncf` now raises ImportError
    code = cli.main(_args(standins, synthetic_data(4), tmp_path / "out"))
    assert code == 2
    assert "pip install 'evalkit[compress]'" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_calibration_feeds_what_evaluation_feeds(standins, synthetic_data) -> None:
    """The host one-hot feed of the model file (what NNCF calibrates on) gives the same output bits as the
    evaluation's graph one-hot: the calibration data is the evaluated model's input."""
    from evalkit.execution.pair import prepare_pair
    from evalkit.runtime.core import make_core
    from evalkit.runtime.translator import load_translator, model_inputs, read_translator_model

    data = synthetic_data(4)
    config = standin_config(standins, data.root, data.pairs)
    spec = config.model("original")
    core = make_core()
    evaluated = load_translator(core, spec, config.runtime)  # runtime.one_hot: graph
    assert evaluated.one_hot == "graph"
    model, out_index = read_translator_model(core, spec)
    settings = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 1}  # as evaluation compiles
    calibrated = core.compile_model(model, "CPU", settings)
    inputs = prepare_pair(data.root, read_pairs(data.pairs)[1])
    feed = model_inputs(spec, inputs.mask, inputs.exemplar, inputs.exemplar_mask, one_hot_placement="host")
    assert set(feed) == {i.get_any_name() for i in model.inputs}  # every input of the model covered
    ours = calibrated(feed)[out_index][0]
    theirs = evaluated.translate(inputs.mask, inputs.exemplar, inputs.exemplar_mask)
    np.testing.assert_array_equal(ours, theirs)


# ----------------------------------------------------------------------------------------- with NNCF


@pytest.fixture(scope="module")
def nncf_installed() -> None:
    pytest.importorskip("nncf")


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--source", "orignal"], "--source orignal: not a model of"),
        (["--max-drop", "kid=1%"], "unknown metric 'kid'"),
        (["--max-drop", "psnr=0.1dB"], "'0.1dB' is not a number"),
        (["--max-drop", "psnr=0.1", "--max-drop", "fid=2%"], "--max-drop: one metric"),
        (["--mode", "int8-weights", "--max-drop", "psnr=0.1"], "only with --mode int8"),
        (["--calibration-pairs", "0"], "expected a positive number of pairs, got 0"),
        (["--calibration-pairs", "3", "--exclude-calibration"], "leave 1 to evaluate; FID needs at least 2"),
        (["--model", "nosuch=x.xml"], "'nosuch' is not a model of"),
        (["--calibration-pairs", "1", "--max-drop", "fid=2%"], "validates FID on the calibration pairs"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    nncf_installed, standins, synthetic_data, tmp_path: Path, capsys, extra: list[str], says: str
) -> None:
    code = cli.main(_args(standins, synthetic_data(4), tmp_path / "out", *extra))
    assert code == 2
    assert says in one_error_line(capsys)
    assert not (tmp_path / "out" / "models").exists()  # refused before NNCF made anything


def test_int8_model_is_quantized_recorded_and_bit_identical_when_made_again(
    nncf_installed, standins, synthetic_data, tmp_path: Path
) -> None:
    import nncf
    import openvino as ov

    from evalkit.compress import compress_model

    data = synthetic_data(4)
    config = standin_config(standins, data.root, data.pairs)
    pairs = read_pairs(data.pairs)
    made = [
        compress_model(config, "original", "int8", tmp_path / name, pairs, calibration_pairs=2, quiet=True)
        for name in ("a", "b")
    ]
    first, second = made
    xml = first.spec.path
    assert xml == tmp_path / "a" / "original-int8.xml" and first.spec.name == "original-int8"
    for suffix in (".xml", ".bin"):  # same inputs and seed: the same bytes
        assert xml.with_suffix(suffix).read_bytes() == second.spec.path.with_suffix(suffix).read_bytes()
    model = ov.Core().read_model(str(xml))
    assert sum(op.get_type_name() == "FakeQuantize" for op in model.get_ops()) > 0
    assert "smooth/conv" in first.quantized  # the stand-in's convolution computes on INT8
    source = ov.Core().read_model(str(standins.original))
    assert [(i.get_any_name(), i.get_partial_shape()) for i in model.inputs] == [
        (i.get_any_name(), i.get_partial_shape()) for i in source.inputs
    ]

    record = json.loads(first.sidecar.read_text())
    assert record["source"] == {
        "name": "original", "path": str(standins.original), "sha256": model_sha256(standins.original)
    }  # fmt: skip
    assert record["compressed"]["sha256"] == model_sha256(xml)
    assert record["mode"] == "int8" and record["seed"] == config.metrics.seed == defaults.SEED
    assert record["nncf"] == nncf.__version__ and record["openvino"] == ov.get_version()
    assert record["settings"]["function"] == "nncf.quantize" and record["settings"]["subset_size"] == 2
    drawn = draw_calibration_pairs(pairs, 2, seed=defaults.SEED)
    assert [p["pair_id"] for p in record["calibration"]["pairs"]] == [p.val_id for p in drawn]
    for entry, pair in zip(record["calibration"]["pairs"], drawn, strict=True):
        files = pair_files(data.root, pair)
        expected = sha256_file(files.input_mask, files.exemplar, files.exemplar_mask, files.ground_truth)
        assert entry["sha256"] == expected
    assert record["int8_operations"] == list(first.quantized) and record["accuracy_control"] is None
    assert "2 calibration pairs, also evaluated" in first.spec.label


def test_int8_weights_compresses_the_weights_only(nncf_installed, standins, synthetic_data, tmp_path) -> None:
    import openvino as ov

    from evalkit.compress import compress_model

    data = synthetic_data(4)
    config = standin_config(standins, data.root, data.pairs)
    made = compress_model(config, "original", "int8-weights", tmp_path, read_pairs(data.pairs), quiet=True)
    model = ov.Core().read_model(str(made.spec.path))
    assert not any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    weights = [
        op for op in model.get_ops()
        if op.get_type_name() == "Constant" and op.get_output_element_type(0).get_type_name() in ("u8", "i8")
    ]  # fmt: skip
    assert weights and quantized_operations(model) == ["smooth/conv"]  # the one layer with weights
    assert made.calibration == () and json.loads(made.sidecar.read_text())["calibration"]["pairs"] == []
    assert made.spec.label == "Original model (stand-in, FP32) → INT8 weights (NNCF)"


def test_compress_evaluates_and_gates_the_int8_model_beside_its_source(
    nncf_installed, standins, synthetic_data, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "out"
    code = cli.main(_args(standins, synthetic_data(4), out, "--calibration-pairs", "2"))
    results = json.loads((out / "results.json").read_text())
    assert list(results["models"]) == ["original", "original-int8", "converted"]  # next to its source
    assert results["config"]["metrics"]["reference_model"] == "original"
    gate = results["gate"]
    assert code == (0 if gate["passed"] else 1)
    rows = [r for r in gate["rows"] if r["model"] == "original-int8"]
    assert {r["metric"] for r in rows} >= {m.key for m in _reference_metrics()} and all(
        r["baseline_model"] == "original" for r in rows
    )
    # the drop the report shows is the difference of the two models' results
    metrics = {n: m["metrics"] for n, m in results["models"].items()}
    report = (out / "report.md").read_text()
    label = results["models"]["original-int8"]["label"]
    assert label.startswith("Original model (stand-in, FP32) → INT8 (NNCF PTQ, 2 calibration pairs")
    assert f"| {label} |" in report and "Δ original-int8 − original" in report
    for row in rows:
        value, baseline = metrics["original-int8"][row["metric"]], metrics["original"][row["metric"]]
        assert math.isclose(row["value"] - row["baseline"], value - baseline, abs_tol=1e-12)
    assert (out / "gate.md").is_file() and (out / "models" / "original-int8.json").is_file()
    assert "Compressed model: " in capsys.readouterr().out


def _reference_metrics():
    from evalkit.metrics.registry import metrics_of

    return metrics_of("reference")


# --------------------------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_exclude_calibration_evaluates_the_other_pairs(
    nncf_installed, standins, synthetic_data, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cli.main(_args(standins, synthetic_data(6), out, "--calibration-pairs", "2", "--exclude-calibration"))
    results = json.loads((out / "results.json").read_text())
    calibration = json.loads((out / "models" / "original-int8.json").read_text())["calibration"]
    evaluated = {s["pair_id"] for s in results["models"]["original"]["samples"]}
    assert len(evaluated) == 4 and not evaluated & {p["pair_id"] for p in calibration["pairs"]}
    assert results["dataset"]["pairs"] == str(out / "models" / "original-int8.evaluation_pairs.txt")
    assert "not evaluated" in results["models"]["original-int8"]["label"]


@pytest.mark.slow
def test_accuracy_control_recovers_the_sensitive_standin(
    nncf_installed, standins, synthetic_data, tmp_path: Path, capsys
) -> None:
    """The INT8-sensitive stand-in fails the gate under default INT8; ``--max-drop fid=2%`` reverts
    operations to float until evalkit's FID allows it, and the full evaluation confirms it."""
    import openvino as ov

    data = synthetic_data(16)
    common = ("--calibration-pairs", "16")
    plain = tmp_path / "plain"
    assert cli.main(_args(standins, data, plain, *common, original=standins.int8_sensitive)) == 1
    failed = {r["metric"] for r in json.loads((plain / "results.json").read_text())["gate"]["rows"]
              if r["model"] == "original-int8" and r["verdict"] == "FAIL"}  # fmt: skip
    assert "fid" in failed

    controlled = tmp_path / "controlled"
    code = cli.main(_args(standins, data, controlled, *common, "--max-drop", "fid=2%",
                          original=standins.int8_sensitive))  # fmt: skip
    results = json.loads((controlled / "results.json").read_text())
    fid = {n: m["metrics"]["fid"] for n, m in results["models"].items()}
    assert (fid["original-int8"] - fid["original"]) / fid["original"] <= 0.02
    record = json.loads((controlled / "models" / "original-int8.json").read_text())
    reverted = record["accuracy_control"]["reverted_operations"]
    assert reverted and record["settings"]["function"] == "nncf.quantize_with_accuracy_control"
    model = ov.Core().read_model(str(controlled / "models" / "original-int8.xml"))
    left = quantized_operations(model)
    assert left and not set(reverted) & set(left)  # reverted ones compute in float, others still in INT8
    assert f"{len(reverted)} of {record['accuracy_control']['quantized_operations']} ops reverted" in (
        results["models"]["original-int8"]["label"]
    )
    assert code == (0 if results["gate"]["passed"] else 1)
    capsys.readouterr()

    impossible = tmp_path / "impossible"  # FID 50 % better than the source: accuracy control cannot
    assert cli.main(_args(standins, data, impossible, *common, "--max-drop", "fid=-50%",
                          original=standins.int8_sensitive)) == 1  # fmt: skip
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("evalkit: --max-drop fid=-50%: missed by ") and "over 16 pairs" in line


@pytest.mark.slow
def test_demo_compress_adds_an_int8_column(nncf_installed, tmp_path: Path) -> None:
    from evalkit.workflow import run_demo

    outcome = run_demo(tmp_path / "demo", cache_dir=tmp_path / "cache", n_pairs=8, compress=True)
    assert list(outcome.result.models) == ["original", "original-int8", "converted"]
    assert outcome.result.gate is not None and (tmp_path / "demo" / "models" / "original-int8.xml").is_file()


def test_install_hint_names_the_extras_pinned_range() -> None:
    """The range the error message suggests is the ``compress`` extra's (two spellings of one fact)."""
    import tomllib

    from evalkit.compress import NNCF_REQUIREMENT

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert pyproject["project"]["optional-dependencies"]["compress"] == [NNCF_REQUIREMENT]


def test_the_compressed_model_never_replaces_an_input_and_a_journal_is_refused_before_nncf(
    nncf_installed, standins, synthetic_data, tmp_path: Path, capsys
) -> None:
    import shutil

    out = tmp_path / "out"
    (out / "models").mkdir(parents=True)
    # the source itself sits where the compressed model would be written
    source = out / "models" / "original-int8.xml"
    shutil.copy(standins.original, source)
    shutil.copy(standins.original.with_suffix(".bin"), source.with_suffix(".bin"))
    before = source.read_bytes(), source.with_suffix(".bin").read_bytes()
    code = cli.main(_args(standins, synthetic_data(4), out, "--model", f"original={source}"))
    assert code == 2
    assert one_error_line(capsys).startswith(
        f"evalkit: error: {out / 'models'}: the compressed models' folder is the folder of model 'original'"
    )
    assert (source.read_bytes(), source.with_suffix(".bin").read_bytes()) == before

    other = tmp_path / "other"
    (other / ".evalkit-journal").mkdir(parents=True)
    (other / ".evalkit-journal" / "meta.json").write_text("{}")
    assert cli.main(_args(standins, synthetic_data(4), other)) == 2
    assert "compress cannot resume it" in one_error_line(capsys)
    assert not (other / "models").exists()  # refused before NNCF made anything
