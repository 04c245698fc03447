"""End to end on stand-ins: the whole pipeline, its outputs, and its contract with the reports."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import standin_config

import evalkit
from evalkit.config import bundled_config
from evalkit.metrics.registry import per_image_metrics
from evalkit.report import render_markdown, write_reports
from evalkit.results import RunResult, load_results

SIZES = [(96, 128), (128, 96), (80, 80), (120, 200), (200, 120), (64, 100)]


@pytest.fixture(scope="module")
def small_data(synthetic_data):
    return synthetic_data(6, SIZES)


@pytest.fixture(scope="module")
def result(standins, small_data) -> RunResult:
    return evalkit.evaluate(
        bundled_config("demo.yaml"),
        data_root=small_data.root,
        pairs=small_data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
    )


def test_every_model_every_pair_in_file_order(result: RunResult, small_data) -> None:
    assert list(result.models) == ["original", "converted"]
    ids = [line.split(",")[0].removesuffix(".jpg") for line in small_data.pairs.read_text().splitlines()]
    for model in result.models.values():
        assert model.n == 6 == len(model.samples)
        assert [s.pair_id for s in model.samples] == ids
    assert result.dataset.n_pairs == 6


def test_metrics_are_sane_and_consistent_with_samples(result: RunResult) -> None:
    for model in result.models.values():
        m = model.metrics
        psnrs = np.array([s.psnr for s in model.samples])
        ssims = np.array([s.ssim for s in model.samples])
        assert m.psnr == pytest.approx(psnrs.mean(), rel=1e-12)
        assert m.psnr_std == pytest.approx(psnrs.std(), rel=1e-12)
        assert m.ssim == pytest.approx(ssims.mean(), rel=1e-12)
        assert m.ssim_std == pytest.approx(ssims.std(), rel=1e-12)
        assert 5 < m.psnr < 40 and 0 < m.ssim < 1 and m.inception_score >= 1 and m.fid > 0
        assert m.psnr_identical == 0


def test_fp16_converted_is_close_to_original(result: RunResult) -> None:
    a, b = result.models["original"].metrics, result.models["converted"].metrics
    assert abs(a.psnr - b.psnr) < 0.1
    assert abs(a.ssim - b.ssim) < 0.01


def test_same_inputs_same_numbers(result: RunResult, standins, small_data) -> None:
    again = evalkit.evaluate(
        bundled_config("demo.yaml"),
        data_root=small_data.root,
        pairs=small_data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
    )
    for name in result.models:
        assert again.models[name].metrics.to_dict() == result.models[name].metrics.to_dict()
        assert again.models[name].samples == result.models[name].samples


def test_limit_takes_the_first_pairs(result: RunResult, standins, small_data) -> None:
    head = evalkit.evaluate(
        bundled_config("demo.yaml"),
        data_root=small_data.root,
        pairs=small_data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
        limit=3,
    )
    assert head.dataset.n_pairs == 3
    assert head.models["original"].samples == result.models["original"].samples[:3]


def test_reports_written_with_the_contract_keys(result: RunResult, tmp_path: Path) -> None:
    paths = write_reports(result, tmp_path)
    data = json.loads(paths["json"].read_text())
    assert set(data) >= {"evalkit_version", "config", "dataset", "models", "verifier", "environment"}
    assert set(data["dataset"]) >= {"root", "pairs", "n_pairs", "pairs_sha256"}
    for name in ("original", "converted"):
        model = data["models"][name]
        assert set(model) >= {"label", "path", "sha256", "metrics", "n"}
        assert set(model["metrics"]) >= {
            "psnr",
            "ssim",
            "is",
            "fid",
            "psnr_std",
            "ssim_std",
            "psnr_identical",
        }
        reference_keys = ("psnr", "ssim", "is", "fid", "psnr_std", "ssim_std", "psnr_identical")
        assert all(isinstance(model["metrics"][k], int | float) for k in reference_keys)
        extended = {k: model["metrics"][k] for k in ("ssim_wang", "psnr_rgb", "kid", "kid_std")}
        assert all(isinstance(v, float) for v in extended.values())
        # IS over 10 splits is undefined for 6 images: null, never NaN
        assert model["metrics"]["is_10"] is None and model["metrics"]["is_10_std"] is None
        assert len(model["sha256"]) == 64
    assert set(data["verifier"]) >= {"path", "sha256"}
    assert {"openvino", "numpy", "opencv", "pillow", "cpu"} <= set(data["environment"])
    assert data["config"]["runtime"]["inference_precision"] == "f32"
    # the JSON round-trips to the same record
    loaded = load_results(paths["json"]).models["converted"]
    assert loaded.metrics.to_dict() == result.models["converted"].metrics.to_dict()
    assert loaded.samples == result.models["converted"].samples

    with open(paths["summary"], newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["metric", "original", "converted"]
    assert [r[0] for r in rows[1:5]] == ["psnr", "ssim", "is", "fid"]
    assert float(rows[1][1]) == result.models["original"].metrics.psnr

    with open(paths["per_sample"], newline="") as fh:
        per = list(csv.DictReader(fh))
    columns = ["pair_id", "model", *(m.key for m in per_image_metrics(extended=True))]
    assert list(per[0]) == columns  # a metric added to the registry appends its column
    assert columns[:6] == ["pair_id", "model", "psnr", "ssim", "ssim_wang", "psnr_rgb"]
    assert len(per) == 12 and per[0]["pair_id"] == result.models["original"].samples[0].pair_id
    assert float(per[1]["ssim"]) == result.models["converted"].samples[0].ssim

    md = paths["markdown"].read_text()
    assert "| Metric | Original model (stand-in, FP32) | Converted model (stand-in, FP16) |" in md
    assert "N = 6" in md and "inference precision f32" in md and f"evalkit {evalkit.__version__}" in md
    for metric in ("| PSNR |", "| SSIM |", "| IS |", "| FID |"):
        assert metric in md


def test_identical_images_do_not_break_results(result: RunResult, tmp_path: Path) -> None:
    # An output identical to its ground truth has PSNR = inf: the mean is over the finite values, the
    # count is reported, and results.json stays strict JSON.
    from dataclasses import replace

    model = result.models["original"]
    first = model.samples[0]
    samples = (replace(first, values={**first.values, "psnr": math.inf}), *model.samples[1:])
    from evalkit.metrics import mean_std_finite

    mean, std, identical = mean_std_finite([s.psnr for s in samples])
    values = {**model.metrics.values, "psnr": mean, "psnr_std": std, "psnr_identical": identical}
    metrics = replace(model.metrics, values=values)
    patched = replace(
        result, models={**result.models, "original": replace(model, samples=samples, metrics=metrics)}
    )
    paths = write_reports(patched, tmp_path)
    text = paths["json"].read_text()
    assert "Infinity" not in text and "NaN" not in text
    data = json.loads(text)
    assert data["models"]["original"]["metrics"]["psnr_identical"] == 1
    assert data["models"]["original"]["samples"][0]["psnr"] is None
    assert "Original model (stand-in, FP32): 1 identical" in paths["markdown"].read_text()
    assert load_results(paths["json"]).models["original"].samples[0].psnr == math.inf


def test_published_table_shown_beside_measured_values(standins, small_data, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        bundled_config("demo.yaml").read_text()
        + '\npublished:\n  original: {psnr: "12.99", ssim: "0.34", is: "13.34", fid: "33.27"}\n'
    )
    result = evalkit.evaluate(
        config,
        data_root=small_data.root,
        pairs=small_data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
        metrics="reference",
    )
    paths = write_reports(result, tmp_path / "out", formats=("md", "html", "json"))
    assert json.loads(paths["json"].read_text())["config"]["published"] == {
        "original": {"psnr": "12.99", "ssim": "0.34", "is": "13.34", "fid": "33.27"}
    }
    md = paths["markdown"].read_text()
    psnr = result.models["original"].metrics.psnr
    assert "## Against the published table" in md
    assert f"| PSNR | {psnr:.4f} dB | 12.99 dB | {psnr - 12.99:+.4f} dB |" in md
    assert "Against the published table" in paths["html"].read_text()


def test_paired_comparison_in_results_and_report(
    result: RunResult, standins, small_data, tmp_path: Path
) -> None:
    comp = result.comparison
    assert comp is not None and comp.reference_model == "original" and comp.bootstrap == 200
    entries = {key: e.to_dict() for key, e in comp.models["converted"].items()}  # results.json's form
    assert set(entries) == {"psnr", "ssim", "is", "fid", "kid"}
    ref, cand = result.models["original"], result.models["converted"]
    deltas = [c.psnr - r.psnr for r, c in zip(ref.samples, cand.samples, strict=True)]
    assert entries["psnr"]["mean_delta"] == pytest.approx(np.mean(deltas), rel=1e-12, abs=1e-15)
    assert entries["fid"]["delta"] == pytest.approx(cand.metrics.fid - ref.metrics.fid, rel=1e-9, abs=1e-12)
    for entry in entries.values():
        assert entry["ci_low"] <= entry["ci_high"]
        assert entry["sentence"].startswith("converted is ")
        # The run config's gate spec (the built-in defaults here) gives every compared metric an allowance.
        assert "the gate's allowance of " in entry["sentence"]
    assert "allowance of 0.1000 dB" in entries["psnr"]["sentence"]
    md = render_markdown(result)
    assert "## Paired comparison with original" in md and entries["fid"]["sentence"] in md
    # seeded: the same run gives the same intervals
    again = evalkit.evaluate(
        bundled_config("demo.yaml"),
        data_root=small_data.root,
        pairs=small_data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
    )
    assert again.comparison is not None and again.comparison.to_dict() == comp.to_dict()


def test_bootstrap_off_and_reference_profile(standins, small_data) -> None:
    kwargs = {
        "data_root": small_data.root,
        "pairs": small_data.pairs,
        "models": {"original": standins.original, "converted": standins.converted},
        "verifier": standins.verifier,
    }
    off = evalkit.evaluate(bundled_config("demo.yaml"), bootstrap=0, **kwargs)
    fid_entry = off.comparison.models["converted"]["fid"].to_dict()
    assert fid_entry["ci_low"] is None and fid_entry["ci_high"] is None
    reference_only = evalkit.evaluate(bundled_config("demo.yaml"), metrics="reference", **kwargs)
    assert reference_only.comparison is None
    assert not any(m.metrics.has_extended for m in reference_only.models.values())
    assert "ssim_wang" not in reference_only.models["original"].metrics.to_dict()


def test_saved_images_are_what_was_scored(standins, small_data, tmp_path: Path) -> None:
    from PIL import Image

    from evalkit.data.ade20k import read_ground_truth
    from evalkit.execution.inprocess import InProcessExecutor
    from evalkit.metrics import psnr, ssim

    saved = tmp_path / "images"
    result = evalkit.evaluate(
        bundled_config("demo.yaml"),
        data_root=small_data.root,
        pairs=small_data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
        metrics="reference",
        executor=InProcessExecutor(save_images=saved),
    )
    for name, model in result.models.items():
        assert sorted(p.stem for p in (saved / name).glob("*.png")) == sorted(
            s.pair_id for s in model.samples
        )
        for sample in model.samples:
            image = np.asarray(Image.open(saved / name / f"{sample.pair_id}.png"))
            gt = read_ground_truth(small_data.root / "images" / "validation" / f"{sample.pair_id}.jpg")
            assert psnr(image, gt) == sample.psnr and ssim(image, gt) == sample.ssim


@pytest.mark.parametrize(
    ("streams", "requests", "reader_threads"), [(1, 1, 1), (2, 5, 3)], ids=["1-stream", "2-streams"]
)
def test_results_json_is_identical_apart_from_date_timings_and_speed_settings(
    result: RunResult, standins, small_data, tmp_path: Path, streams: int, requests: int, reader_threads: int
) -> None:
    # Same inputs, same numbers: the whole results.json of a run with other streams, requests and reader
    # threads equals the default run's, except the date, the timings and the speed settings themselves.
    from dataclasses import replace

    config = standin_config(standins, small_data.root, small_data.pairs)
    runtime = replace(config.runtime, streams=streams, requests=requests, reader_threads=reader_threads)
    # the same output as the default run's config (evaluate journals nowhere: no output argument)
    other = evalkit.evaluate(replace(config, runtime=runtime, output=result.config.output))

    def comparable(r: RunResult) -> dict:
        path = write_reports(r, tmp_path / str(id(r)), formats=("json",))["json"]
        d = json.loads(path.read_text())
        del d["timings"], d["environment"]["date"]
        for key in ("streams", "requests", "reader_threads"):
            del d["config"]["runtime"][key]
        return d

    assert other.config.runtime.streams == streams
    assert comparable(other) == comparable(result)


def test_library_evaluate_journals_only_where_asked(standins, small_data, tmp_path: Path) -> None:
    # The config names an output folder, the caller gives none: evaluate writes nothing there (a caller
    # that writes its reports elsewhere finds no stray .evalkit-journal); with output=, the journal stays
    # for a resume (run_and_report removes it once the reports are written).
    from dataclasses import replace

    from evalkit.execution.journal import JOURNAL_DIR

    config = replace(standin_config(standins, small_data.root, small_data.pairs), output=tmp_path / "cfg")
    evalkit.evaluate(config, metrics="reference", limit=2)
    assert not (tmp_path / "cfg").exists()
    evalkit.evaluate(config, metrics="reference", limit=2, output=tmp_path / "asked")
    assert len((tmp_path / "asked" / JOURNAL_DIR / "records.jsonl").read_text().splitlines()) == 2
    assert not (tmp_path / "cfg").exists()


def test_run_and_report_writes_every_file_and_removes_the_journal(
    result: RunResult, standins, small_data, tmp_path: Path
) -> None:
    from dataclasses import replace

    from evalkit.execution.journal import JOURNAL_DIR

    config = replace(standin_config(standins, small_data.root, small_data.pairs), output=tmp_path / "out")
    outcome = evalkit.run_and_report(config, gate=True, gallery_pairs=1)
    out = tmp_path / "out"
    assert outcome.output == out and outcome.gallery == out / "gallery"
    assert list(outcome.paths) == ["summary", "per_sample", "markdown", "html", "json", "gate"]
    assert all(p.parent == out and p.is_file() for p in outcome.paths.values())
    assert not (out / JOURNAL_DIR).exists()
    # the gallery: the worst pair and one random pair, with both models' images
    manifest = json.loads((out / "gallery" / "gallery.json").read_text())
    assert [p["reason"] for p in manifest["pairs"]] == ["worst", "random"]
    assert all((out / "gallery" / p["images"]["models"]["converted"]).is_file() for p in manifest["pairs"])
    # FP16 stand-in against FP32: the gate passes, its verdicts are in results.json and gate.md
    assert outcome.passed and outcome.gate is not None and outcome.gate.passed
    saved = load_results(outcome.paths["json"])
    assert saved.gate is not None and saved.gate.to_dict() == outcome.gate.to_dict()
    assert "PASS" in outcome.paths["gate"].read_text()
    # the same numbers as the library's evaluate of the same inputs
    for name, model in result.models.items():
        assert saved.models[name].metrics.to_dict() == model.metrics.to_dict()
