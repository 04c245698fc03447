"""The regression gate: thresholds, direction, refusals, noise, config parsing, published table, renderers.

Most tests build RunResult records in code (tests/records.py); one module fixture evaluates the stand-ins
together with a deliberately degraded one, which the gate must fail while it passes the FP16 "converted"
stand-in.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from records import BASE, comparison, metrics, paired_entry, set_entry
from records import run as make_run

from evalkit.config import (
    DEFAULT_ALLOWANCES,
    DEFAULT_GATE_SPEC,
    Allowance,
    GateSpec,
    load_gate_file,
    parse_gate_config,
    parse_published,
)
from evalkit.errors import InputError
from evalkit.gate import compare_runs, compare_to_published, compare_within_run
from evalkit.metrics.registry import METRICS
from evalkit.report.gate import render_gate_markdown, render_gate_text
from evalkit.results import GateReport, GateRow, RunResult


def row(report: GateReport, model: str, metric: str) -> GateRow:
    (found,) = [r for r in report.rows if r.model == model and r.metric == metric]
    return found


# ------------------------------------------------------------------------------------------ thresholds


def test_built_in_defaults_are_the_documented_ones() -> None:
    assert DEFAULT_ALLOWANCES == {
        "psnr": Allowance(absolute=0.1),
        "ssim": Allowance(absolute=0.01),
        "is": Allowance(relative=0.02),
        "fid": Allowance(relative=0.02),
        "kid": Allowance(absolute=0.001),
    }
    assert DEFAULT_GATE_SPEC.metrics() == ["psnr", "ssim", "is", "fid", "kid"]
    # ... and they are the registry's: one place declares a metric's built-in allowance.
    declared = {m.key: Allowance(*m.default_allowance) for m in METRICS if m.default_allowance is not None}
    assert DEFAULT_ALLOWANCES == declared


@pytest.mark.parametrize(
    ("metric", "candidate", "verdict"),
    [
        ("psnr", 19.9, "PASS"),  # exactly the allowance: passes despite 20.0 - 19.9 = 0.10000000000000142
        ("psnr", 19.899, "FAIL"),
        ("ssim", 0.49, "PASS"),
        ("ssim", 0.4899, "FAIL"),
        ("is", 9.8, "PASS"),  # 2 % of 10
        ("is", 9.79, "FAIL"),
        ("fid", 51.0, "PASS"),  # FID may rise 2 % of 50
        ("fid", 51.01, "FAIL"),
        ("kid", 0.021, "PASS"),
        ("kid", 0.0211, "FAIL"),
    ],
)
def test_direction_aware_thresholds(metric: str, candidate: float, verdict: str) -> None:
    run = make_run({"original": metrics(), "converted": metrics(**{metric: candidate})})
    report = compare_within_run(run)
    assert row(report, "converted", metric).verdict == verdict
    assert report.passed is (verdict == "PASS")
    others = [r for r in report.rows if r.metric != metric]
    assert all(r.verdict == "PASS" for r in others)


@settings(max_examples=60, deadline=None)
@given(
    metric=st.sampled_from(["psnr", "ssim", "is", "fid", "kid"]),
    gain=st.floats(min_value=0.0, max_value=1e3, allow_nan=False),
)
def test_an_improvement_never_fails(metric: str, gain: float) -> None:
    better = BASE[metric] + gain if metric in ("psnr", "ssim", "is") else BASE[metric] / (1.0 + gain)
    run = make_run({"original": metrics(), "converted": metrics(**{metric: better})})
    assert compare_within_run(run).passed


def test_abs_and_rel_together_allow_the_larger() -> None:
    spec = parse_gate_config({"psnr": {"abs": 0.1, "rel": 0.02}}, "gate.yaml")
    run = make_run({"original": metrics(psnr=20.0), "converted": metrics(psnr=19.7)})  # 0.3 < 2 % of 20
    r = row(compare_within_run(run, spec), "converted", "psnr")
    assert r.allowance == pytest.approx(0.4) and r.verdict == "PASS"
    run = make_run({"original": metrics(psnr=2.0), "converted": metrics(psnr=1.85)})  # rel 0.04 < abs 0.1
    r = row(compare_within_run(run, spec), "converted", "psnr")
    assert r.allowance == pytest.approx(0.1) and r.verdict == "FAIL"


def test_undefined_values() -> None:
    # IS over 10 splits is NaN below 10 images in both runs: not applicable, not a failure.
    spec = parse_gate_config({"is_10": {"rel": 0.02}}, "g.yaml")
    run = make_run({"original": metrics(), "converted": metrics()})
    report = compare_within_run(run, spec)
    assert row(report, "converted", "is_10").verdict == "N/A" and report.passed
    # A metric that became undefined in the candidate is treated as a regression.
    run = make_run({"original": metrics(), "converted": metrics(fid=math.nan)})
    report = compare_within_run(run)
    assert row(report, "converted", "fid").verdict == "FAIL" and not report.passed


# ---------------------------------------------------------------------------------------- within a run


def test_within_run_uses_the_configured_reference_model() -> None:
    run = make_run(
        {"a": metrics(psnr=20.0), "b": metrics(psnr=19.0), "c": metrics(psnr=19.05)}, reference_model="c"
    )
    report = compare_within_run(run)
    assert {r.model for r in report.rows} == {"a", "b"}
    assert row(report, "a", "psnr").verdict == "PASS"  # better than c
    assert row(report, "b", "psnr").verdict == "PASS"  # 0.05 below c
    assert not compare_within_run(run, reference_model="a").passed
    with pytest.raises(InputError, match="did you mean 'a'"):
        compare_within_run(run, reference_model="aa")
    with pytest.raises(InputError, match="only"):
        compare_within_run(make_run({"a": metrics()}))


def test_outside_noise_from_the_comparison_section() -> None:
    section = comparison(
        "original",
        {
            "converted": {
                "psnr": paired_entry("PSNR", -0.3, -0.1),  # excludes 0
                "ssim": paired_entry("SSIM", -0.01, 0.02),  # contains 0
                "is": set_entry("IS", 0.0, None, None, higher_is_better=True),  # no interval (bootstrap 0)
                "fid": set_entry("FID", 0.9, 0.5, 2.0),
            }
        },
    )
    run = make_run({"original": metrics(), "converted": metrics(psnr=19.8, fid=50.9)}, comparison=section)
    report = compare_within_run(run)
    assert row(report, "converted", "psnr").outside_noise == "yes"
    assert row(report, "converted", "psnr").verdict == "FAIL"
    assert row(report, "converted", "ssim").outside_noise == "no"
    assert row(report, "converted", "is").outside_noise == "unknown"
    assert row(report, "converted", "fid").outside_noise == "yes"
    assert row(report, "converted", "kid").outside_noise == "unknown"  # not in the section
    # The section's intervals are against 'original': against another reference they say nothing.
    other = compare_within_run(run, reference_model="converted")
    assert {r.outside_noise for r in other.rows} == {"unknown"}


def test_extended_metrics_missing_from_a_reference_profile_run() -> None:
    run = make_run({"original": metrics(extended=False), "converted": metrics(extended=False)})
    report = compare_within_run(run)  # defaults: kid is skipped, with a note
    assert {r.metric for r in report.rows} == {"psnr", "ssim", "is", "fid"}
    assert any("kid not gated" in n for n in report.notes)
    with pytest.raises(InputError, match=r"gate\.ssim_wang"):  # named explicitly: refused
        compare_within_run(run, parse_gate_config({"ssim_wang": {"abs": 0.01}}, "g.yaml"))


# ---------------------------------------------------------------------------------------- across runs


def test_runs_compared_model_by_model() -> None:
    baseline = make_run({"original": metrics(), "converted": metrics()})
    candidate = make_run({"original": metrics(), "converted": metrics(ssim=0.45)})
    report = compare_runs(baseline, candidate)
    assert report.kind == "runs" and not report.passed
    assert [r.model for r in report.failures] == ["converted"]
    assert row(report, "converted", "ssim").baseline_model == "converted"
    only = compare_runs(baseline, candidate, models=["original"])
    assert only.passed and {r.model for r in only.rows} == {"original"}
    # Every candidate model against one baseline model.
    against = compare_runs(baseline, candidate, baseline_model="original")
    assert {r.baseline_model for r in against.rows} == {"original"}
    with pytest.raises(InputError, match="did you mean 'converted'"):
        compare_runs(baseline, candidate, models=["convertd"])


def test_runs_without_common_models() -> None:
    baseline = make_run({"original": metrics(), "converted": metrics()})
    candidate = make_run({"int8": metrics()})
    with pytest.raises(InputError, match="--baseline-model"):
        compare_runs(baseline, candidate)
    report = compare_runs(baseline, candidate, baseline_model="converted")
    assert report.passed


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"pairs_sha256": "c" * 64}, "dataset.pairs_sha256"),
        ({"n": 12}, "dataset.n_pairs"),
        ({"skipped": ("ADE_val_00000005",)}, "skipped"),
        ({"verifier_sha256": "d" * 64}, "verifier.sha256"),
        ({"ssim_constants": "reference-2020"}, "config.metrics.ssim_constants"),
        ({"fid_method": "sqrtm"}, "config.metrics.fid_method"),
    ],
)
def test_refuses_runs_that_are_not_comparable(change: dict[str, Any], field: str) -> None:
    baseline = make_run({"original": metrics(), "converted": metrics()})
    candidate = make_run({"original": metrics(), "converted": metrics()}, **change)
    with pytest.raises(InputError, match=field.replace(".", r"\.")) as info:
        compare_runs(baseline, candidate)
    assert "\n" not in str(info.value)


def test_profile_and_seed_differences_affect_only_the_extended_metrics() -> None:
    baseline = make_run({"original": metrics(extended=False)})
    candidate = make_run({"original": metrics()})
    report = compare_runs(baseline, candidate)
    assert {r.metric for r in report.rows} == {"psnr", "ssim", "is", "fid"}
    assert any("profile differs" in n for n in report.notes)
    with pytest.raises(InputError, match=r"gate\.kid"):
        compare_runs(baseline, candidate, parse_gate_config({"kid": {"abs": 0.002}}, "g.yaml"))
    reseeded = make_run({"original": metrics()}, seed=1)
    report = compare_runs(make_run({"original": metrics()}), reseeded)
    assert "kid" not in {r.metric for r in report.rows}
    assert any("metrics.seed" in n for n in report.notes)


def test_noise_across_runs_only_when_the_reference_is_the_baseline_model() -> None:
    section = comparison("original", {"converted": {"psnr": paired_entry("PSNR", -0.2, -0.05)}})
    baseline = make_run({"original": metrics()}, sha256={"original": "f" * 64})
    same_file = make_run(
        {"original": metrics(), "converted": metrics(psnr=19.95)},
        comparison=section,
        sha256={"original": "f" * 64},
    )
    report = compare_runs(baseline, same_file, models=["converted"], baseline_model="original")
    assert row(report, "converted", "psnr").outside_noise == "yes"
    original = dataclasses.replace(same_file.models["original"], sha256="e" * 64)
    other_file = dataclasses.replace(same_file, models={**same_file.models, "original": original})
    report = compare_runs(baseline, other_file, models=["converted"], baseline_model="original")
    assert row(report, "converted", "psnr").outside_noise == "unknown"


# ----------------------------------------------------------------------------------------- config


def test_parse_gate_config_merges_over_the_defaults() -> None:
    spec = parse_gate_config(
        {"psnr": {"abs": 0.2}, "is": {"rel": 0.05}, "kid": None, "psnr_rgb": {"abs": 0.1, "rel": 0.01}},
        "gate.yaml",
    )
    assert spec.allowances["psnr"] == Allowance(absolute=0.2)
    assert spec.allowances["is"] == Allowance(relative=0.05)
    assert spec.allowances["ssim"] == DEFAULT_ALLOWANCES["ssim"]
    assert "kid" not in spec.allowances
    assert spec.metrics() == ["psnr", "ssim", "is", "fid", "psnr_rgb"]
    assert spec.required == {"psnr", "is", "psnr_rgb"}
    assert parse_gate_config(None, "x.yaml").allowances == DEFAULT_ALLOWANCES


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"pnsr": {"abs": 0.1}}, "key 'gate.pnsr': unknown metric; did you mean 'psnr'?"),
        ({"fid": {"relative": 0.02}}, "key 'gate.fid.relative': unknown allowance key; did you mean 'rel'?"),
        ({"psnr": {"abs": -0.1}}, "key 'gate.psnr.abs': expected a number >= 0"),
        ({"psnr": {"abs": "0.1"}}, "key 'gate.psnr.abs': expected a number >= 0"),
        ({"psnr": {"abs": True}}, "key 'gate.psnr.abs': expected a number >= 0"),
        ({"psnr": {}}, "key 'gate.psnr': give 'abs' and/or 'rel'"),
        ({"psnr": 0.1}, "key 'gate.psnr': expected a mapping"),
        ([1, 2], "key 'gate': expected a mapping"),
        ({m: None for m in ("psnr", "ssim", "is", "fid", "kid")}, "the gate would check nothing"),
    ],
)
def test_parse_gate_config_errors(raw: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_gate_config(raw, "gate.yaml")
    text = str(info.value)
    assert text.startswith("gate.yaml: ") and message in text and "\n" not in text


def test_load_gate_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "models: {original: {path: x}}\n"  # a run config's other keys are left alone
        "gate: {psnr: {abs: 0.05}}\n"
        "published: {original: {psnr: 12.99, ssim: '0.340'}}\n"
    )
    spec, published = load_gate_file(path)
    assert spec.allowances["psnr"] == Allowance(absolute=0.05) and spec.source == str(path)
    assert published is not None and published.models["original"]["ssim"].decimals == 3
    path.write_text("gaet: {psnr: {abs: 0.05}}\n")
    with pytest.raises(InputError, match="did you mean 'gate'"):
        load_gate_file(path)
    path.write_text("published: {original: {psnr: 12.99}}\n")  # a file holding only 'published:'
    spec, published = load_gate_file(path)
    assert spec == GateSpec(source=f"{path} (defaults)") and published is not None
    assert published.texts() == {"original": {"psnr": "12.99"}}
    path.write_text("")  # an empty file: the defaults, no table
    assert load_gate_file(path) == (GateSpec(source=f"{path} (defaults)"), None)
    path.write_text("gate: [\n")
    with pytest.raises(InputError, match="invalid YAML"):
        load_gate_file(path)
    with pytest.raises(InputError, match="not found"):
        load_gate_file(tmp_path / "missing.yaml")
    spec, published = load_gate_file(Path(__file__).parents[1] / "configs" / "cocosnet.yaml")
    assert spec.allowances == DEFAULT_ALLOWANCES


# -------------------------------------------------------------------------------------- published


PUBLISHED = yaml.safe_load(
    "{original: {psnr: 12.99, ssim: 0.34, is: 13.34, fid: 33.27}, "
    "converted: {psnr: 12.93, ssim: 0.34, is: 13.35, fid: 33.14}}"
)


def test_parse_published_keeps_the_printed_decimals() -> None:
    table = parse_published({"m": {"psnr": 12.99, "ssim": "0.340", "fid": 33, "is": 1.5e1}}, "c.yaml")
    figures = table.models["m"]
    assert (figures["psnr"].value, figures["psnr"].decimals) == (12.99, 2)
    assert figures["psnr"].half_unit == pytest.approx(0.005)
    assert figures["ssim"].decimals == 3 and figures["fid"].decimals == 0 and figures["is"].decimals == 1
    with pytest.raises(InputError, match=r"published\.m\.fdi': unknown metric; did you mean 'fid'"):
        parse_published({"m": {"fdi": 1.0}}, "c.yaml")
    with pytest.raises(InputError, match=r"published\.m\.psnr': expected a number"):
        parse_published({"m": {"psnr": "high"}}, "c.yaml")
    with pytest.raises(InputError, match="key 'published'"):
        parse_published([], "c.yaml")


def test_compare_to_published() -> None:
    published = parse_published(PUBLISHED, "cocosnet.yaml")
    close = make_run(
        {
            "original": metrics(psnr=12.95, ssim=0.335, fid=33.5, **{"is": 13.2}),
            "converted": metrics(psnr=12.93, ssim=0.34, fid=33.14, **{"is": 13.35}),
        },
        ssim_constants="reference-2020",
    )
    report = compare_to_published(close, published)
    assert report.kind == "published" and report.passed, render_gate_text(report)
    assert row(report, "original", "ssim").allowance == pytest.approx(0.01)  # the spec's, larger than 0.005
    assert not report.notes

    # Half a unit in the last decimal is the floor of the allowance: with no spec margin, 12.985 passes
    # (it prints as 12.99) and 12.984 does not.
    strict = parse_gate_config({m: {"abs": 0} for m in ("psnr", "ssim", "is", "fid")}, "strict.yaml")
    edge = make_run({"original": metrics(psnr=12.985, ssim=0.34, fid=33.27, **{"is": 13.34})})
    assert compare_to_published(edge, published, strict).passed
    below = make_run({"original": metrics(psnr=12.984, ssim=0.34, fid=33.27, **{"is": 13.34})})
    report = compare_to_published(below, published, strict)
    assert [(r.model, r.metric) for r in report.failures] == [("original", "psnr")]
    assert row(report, "original", "psnr").allowance == pytest.approx(0.005)
    assert any("reference-2020" in n for n in report.notes)  # this run used the 2023 SSIM constants

    worse = make_run({"original": metrics(psnr=13.5, ssim=0.3, fid=34.0, **{"is": 13.34})}, limit=100)
    report = compare_to_published(worse, published)
    assert {r.metric for r in report.failures} == {"ssim", "fid"}  # PSNR above the table is no failure
    assert any("dataset.limit" in n for n in report.notes)

    with pytest.raises(InputError, match="no model of the run"):
        compare_to_published(make_run({"int8": metrics()}), published)


# -------------------------------------------------------------------------------------- renderers


def test_renderers_and_round_trip() -> None:
    run = make_run({"original": metrics(), "converted": metrics(psnr=19.5, fid=49.0)}, output="reports/run")
    report = compare_within_run(run)
    text = render_gate_text(report)
    assert "FAIL: 1 of 5 check(s) failed: converted PSNR -0.5000 dB (allowed >= -0.1000 dB)" in text
    lines = text.splitlines()
    assert any(line.startswith("converted") and line.rstrip().endswith("FAIL") for line in lines)
    assert any("FID" in line and line.rstrip().endswith("PASS") for line in lines)
    assert text.isascii()
    md = render_gate_markdown(report)
    assert "**FAIL**" in md and "| converted | original | PSNR |" in md and "**FAIL** |" in md
    data = report.to_dict()
    json.dumps(data, allow_nan=False)
    assert data["passed"] is False and data["thresholds"]["metrics"]["psnr"] == {"abs": 0.1, "rel": None}
    assert GateReport.from_dict(json.loads(json.dumps(data))) == report
    ok = compare_within_run(make_run({"original": metrics(), "converted": metrics()}))
    assert "PASS: 5 check(s) passed" in render_gate_text(ok)
    with pytest.raises(InputError):
        GateReport.from_dict({"rows": []})


def test_undefined_values_are_null_in_json() -> None:
    spec = GateSpec(allowances={"is_10": Allowance(relative=0.02)}, source="t")
    report = compare_within_run(make_run({"a": metrics(), "b": metrics()}), spec)
    (r,) = report.to_dict()["rows"]
    assert r["value"] is None and r["baseline"] is None and r["delta"] is None and r["verdict"] == "N/A"
    json.dumps(report.to_dict(), allow_nan=False)


# ------------------------------------------------------------------------------ stand-ins end to end


def save_degraded_standin(path: Path) -> Path:
    """The original stand-in with a washed-out, blurred output: what a broken conversion might give.

    Output = (0.3 x + 0.7 blur15(x)) * 0.7 + 0.2 on the tanh output x: lower contrast, brighter, softer.
    The tensor names and shapes are CoCosNet's, so the harness runs it like any other model.
    """
    import openvino as ov
    import openvino.opset13 as ops

    from evalkit.demo.models import TRANSLATION_OUTPUT, build_translation_model

    model = build_translation_model(ref_image_convention="rgb-normalised")
    out = model.get_results()[0].input_value(0)
    out.get_tensor().set_names(set())  # the name moves to the new last node

    def const(value: float, name: str) -> Any:
        return ops.constant(np.float32(value), name=name)

    blur = ops.avg_pool(out, [1, 1], [7, 7], [7, 7], [15, 15], True, "floor", name="degrade/blur")
    soft = ops.add(
        ops.multiply(out, const(0.3, "degrade/keep/value"), name="degrade/keep"),
        ops.multiply(blur, const(0.7, "degrade/mix/value"), name="degrade/mix"),
        name="degrade/soft",
    )
    flat = ops.multiply(soft, const(0.7, "degrade/contrast/value"), name="degrade/contrast")
    shifted = ops.add(flat, const(0.2, "degrade/shift/value"), name=TRANSLATION_OUTPUT)
    shifted.output(0).get_tensor().set_names({TRANSLATION_OUTPUT})
    result = ops.result(shifted, name=f"{TRANSLATION_OUTPUT}/sink_port_0")
    degraded = ov.Model([result], model.get_parameters(), "cocosnet_standin_degraded")
    ov.save_model(degraded, path, compress_to_fp16=False)
    return path


@pytest.fixture(scope="module")
def standin_run(standins, synthetic_data, tmp_path_factory: pytest.TempPathFactory) -> RunResult:
    import evalkit
    from evalkit.config import bundled_config

    tmp = tmp_path_factory.mktemp("gate_standins")
    degraded = save_degraded_standin(tmp / "degraded.xml")  # beside, not into, the shared stand-ins
    data = synthetic_data(6, [(96, 128), (128, 96), (80, 80), (120, 200), (200, 120), (64, 100)])
    config = yaml.safe_load(bundled_config("demo.yaml").read_text())
    config["models"]["degraded"] = {
        "label": "Degraded stand-in",
        "ref_image": config["models"]["original"]["ref_image"],
    }
    path = tmp / "gate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return evalkit.evaluate(
        path,
        data_root=data.root,
        pairs=data.pairs,
        models={"original": standins.original, "converted": standins.converted, "degraded": degraded},
        verifier=standins.verifier,
    )


def test_standins_fp16_passes_and_degraded_fails(standin_run: RunResult) -> None:
    assert list(standin_run.models) == ["original", "converted", "degraded"]
    report = compare_within_run(standin_run)
    assert not report.passed
    assert {r.verdict for r in report.rows if r.model == "converted"} == {"PASS"}
    failed = {r.metric for r in report.failures if r.model == "degraded"}
    assert {"psnr", "ssim"} <= failed
    assert row(report, "degraded", "psnr").delta < -0.5
    summary = next(line for line in render_gate_text(report).splitlines() if line.startswith("FAIL:"))
    assert "degraded PSNR" in summary and "converted" not in summary


def test_standins_improvement_over_the_degraded_model_passes(standin_run: RunResult) -> None:
    report = compare_within_run(standin_run, reference_model="degraded")
    for model in ("original", "converted"):
        for metric in ("psnr", "ssim"):
            r = row(report, model, metric)
            assert r.delta > 0 and r.verdict == "PASS"


def test_standin_run_against_itself_as_baseline(standin_run: RunResult) -> None:
    same = compare_runs(standin_run, standin_run, models=["converted"], baseline_model="original")
    assert same.passed
    worse = compare_runs(standin_run, standin_run, models=["degraded"], baseline_model="original")
    assert not worse.passed
    reseeded = dataclasses.replace(
        standin_run, verifier=dataclasses.replace(standin_run.verifier, sha256="0")
    )
    with pytest.raises(InputError, match=r"verifier\.sha256"):
        compare_runs(standin_run, reseeded)


def test_runs_of_the_same_count_but_different_pairs_are_not_compared() -> None:
    # a sequential run stops on a random subset: 8 pairs of 32 are not "the first 8"
    ms = {"original": metrics(), "converted": metrics()}
    baseline = make_run(ms, n=8)
    moved = {
        name: tuple(dataclasses.replace(s, pair_id=f"ADE_val_{i + 20:08d}") for i, s in enumerate(m.samples))
        for name, m in baseline.models.items()
    }
    candidate = make_run(ms, n=8, model_samples=moved)
    with pytest.raises(InputError, match=r"runs not comparable: the pairs evaluated differs .*in one only"):
        compare_runs(baseline, candidate)
    assert compare_runs(baseline, make_run(ms, n=8)).passed  # the same pairs: compared
