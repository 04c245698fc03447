"""The typed run record and results.json: one serialisation pair, a schema version, keys that never move."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import records

from evalkit.errors import InputError
from evalkit.metrics.registry import METRICS, result_keys
from evalkit.results import SCHEMA_VERSION, RunResult, load_results, save_results

#: The keys users' scripts and gates read (issue 11: every existing key keeps its name and place).
TOP_KEYS = ["schema_version", "evalkit_version", "config", "dataset", "skipped", "models", "verifier",
            "environment", "timings", "comparison"]  # fmt: skip
MODEL_KEYS = ["label", "path", "sha256", "metrics", "n", "samples"]
REFERENCE_METRIC_KEYS = ["psnr", "ssim", "is", "fid", "psnr_std", "ssim_std", "psnr_identical"]
EXTENDED_METRIC_KEYS = ["ssim_wang", "psnr_rgb", "is_10", "is_10_std", "kid", "kid_std"]


def a_run() -> RunResult:
    models = {
        "original": records.metrics(psnr_identical=2, **{"is": 9.0}),
        "converted": records.metrics(fid=math.nan, kid_std=math.nan),
    }
    entries = {
        "psnr": records.paired_entry("PSNR", -0.2, -0.1),
        "fid": records.set_entry("FID", 1.0, None, None),
    }
    comparison = records.comparison("original", {"converted": entries})
    per_pair = records.samples(10, psnr=[math.inf] + [20.0] * 9, ssim=0.5, ssim_wang=0.7, psnr_rgb=18.0)
    return records.run(
        models, comparison=comparison, model_samples={"original": per_pair}, skipped=("ADE_val_x",)
    )


def test_layout_of_results_json(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    save_results(a_run(), path)
    data = json.loads(path.read_text())
    assert list(data) == TOP_KEYS
    assert data["schema_version"] == SCHEMA_VERSION == 1
    model = data["models"]["original"]
    assert list(model) == MODEL_KEYS
    known = REFERENCE_METRIC_KEYS + EXTENDED_METRIC_KEYS  # a metric added later appends its keys
    assert list(model["metrics"])[: len(REFERENCE_METRIC_KEYS)] == REFERENCE_METRIC_KEYS
    assert [k for k in model["metrics"] if k in known] == known
    assert model["metrics"]["psnr_identical"] == 2 and isinstance(model["metrics"]["psnr_identical"], int)
    assert model["metrics"]["is"] == 9.0 and model["n"] == 10
    assert data["models"]["converted"]["metrics"]["fid"] is None  # strict JSON: NaN is null
    assert model["samples"][0] == {"pair_id": "ADE_val_00000001", "psnr": None, "ssim": 0.5, "ssim_wang": 0.7,
                                   "psnr_rgb": 18.0}  # fmt: skip  (the per-pair values the test gave)
    entry = data["comparison"]["models"]["converted"]
    assert entry["psnr"]["mean_delta"] == pytest.approx(-0.15) and entry["psnr"]["ci_low"] == -0.2
    assert entry["fid"]["delta"] == 1.0 and entry["fid"]["ci_low"] is None
    assert data["config"]["metrics"]["reference_model"] == "original"
    assert data["skipped"] == [{"pair_id": "ADE_val_x", "line": 1, "reason": "unreadable image"}]


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    run = a_run()
    path = tmp_path / "results.json"
    save_results(run, path)
    again = load_results(path)
    assert again.to_dict() == run.to_dict()
    assert again.models["original"].samples[0].psnr == math.inf  # null per-image PSNR reads back as +inf
    assert math.isnan(again.models["converted"].metrics.fid)
    assert again.comparison is not None
    assert again.comparison.entry("converted", "psnr").interval == (-0.2, -0.1)
    assert again.comparison.entry("converted", "fid").interval is None
    assert again.reference_model == "original"
    save_results(again, tmp_path / "again.json")
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_metrics_read_as_attributes_through_the_registry() -> None:
    run = a_run()
    m = run.models["original"].metrics
    assert m.inception_score == 9.0 == m.get("is")
    for metric in METRICS:
        assert getattr(m, metric.identifier) == m.values[metric.key] or math.isnan(m.values[metric.key])
    with pytest.raises(AttributeError, match="no metric 'lpips'"):
        _ = m.lpips


@pytest.mark.parametrize("version", [0, 2, "1", True, 1.0])
def test_unknown_schema_version_is_refused_with_one_line(tmp_path: Path, version: object) -> None:
    path = tmp_path / "results.json"
    save_results(a_run(), path)
    data = json.loads(path.read_text())
    data["schema_version"] = version
    path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"results.json: results schema_version .* is not the one") as info:
        load_results(path)
    assert "\n" not in str(info.value)


def test_reference_profile_run_has_only_reference_keys(tmp_path: Path) -> None:
    run = records.run({"a": records.metrics(False), "b": records.metrics(False)})
    save_results(run, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    assert list(data["models"]["a"]["metrics"]) == list(result_keys(extended=False)) == REFERENCE_METRIC_KEYS
    assert "comparison" not in data
    assert not load_results(tmp_path / "r.json").has_extended


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "not an evalkit results file"),
        ('{"schema_version": 1}', "not an evalkit results file"),
    ],
)
def test_bad_results_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_results(path)
