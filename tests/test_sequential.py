"""Sequential gating (issue 15): the look schedule, the interval's error rate, the stopping rule, the record,
bad input, the sample-size hint, and runs on the stand-ins (stopping early; resuming in the middle)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pytest
import scipy.stats
from conftest import one_error_line, standin_config

from evalkit import config as cfg
from evalkit.cli import main
from evalkit.config import Allowance, GateSpec, MetricSpec, SequentialSpec
from evalkit.errors import InputError
from evalkit.gate.engine import apply_sequential
from evalkit.metrics.registry import METRICS_BY_KEY
from evalkit.results import GateReport, GateRow, RunResult, SequentialRun, load_results
from evalkit.stats.comparison import PairedDelta, SetDelta
from evalkit.stats.sequential import (
    LookData,
    SequentialGate,
    critical_value,
    decide,
    look_schedule,
    pair_order,
    paired_interval,
    plan_pairs,
    sample_size,
)

PSNR = METRICS_BY_KEY["psnr"]
SSIM = METRICS_BY_KEY["ssim"]


def spec_of(**allowances: Allowance) -> GateSpec:
    return GateSpec(allowances=MappingProxyType(allowances), source="test")


# ------------------------------------------------------------------------------------------- the plan


def test_looks_come_every_k_pairs_the_first_after_at_most_a_quarter() -> None:
    assert look_schedule(2000, 50)[:3] == (50, 100, 150)
    assert look_schedule(2000, 50)[-2:] == (1950, 2000)
    assert look_schedule(200, 50) == (50, 100, 150, 200)
    assert look_schedule(32, 50) == (8, 16, 24, 32)  # a quarter of 32 before the configured 50
    assert look_schedule(30, 7) == (7, 14, 21, 28, 30)  # the last look is every pair
    for n, k in [(5, 50), (40, 3), (1001, 100)]:
        looks = look_schedule(n, k)
        assert looks[0] <= max(2, min(k, n // 4)) and looks[-1] == n and list(looks) == sorted(set(looks))


def test_the_order_is_a_seeded_permutation() -> None:
    order = pair_order(100, 3)
    assert sorted(order.tolist()) == list(range(100))
    assert np.array_equal(order, pair_order(100, 3))
    assert not np.array_equal(order, pair_order(100, 4))


def test_critical_value_is_the_bonferroni_t_quantile() -> None:
    # independent: the one-sided t quantile at alpha / K, from scipy's inverse survival function
    assert critical_value(0.05, 39, 50) == pytest.approx(scipy.stats.t.isf(0.05 / 39, 49), rel=1e-12)
    with pytest.raises(ValueError):
        critical_value(0.5, 3, 50)


# -------------------------------------------------------------------------------- the interval's errors


def _wrong_side_rates(
    population: np.ndarray, alpha: float, orders: int, adjusted: bool
) -> tuple[float, float]:
    """How often some interim look's interval lies wholly above / below the full population's mean."""
    n_listed = population.size
    looks = look_schedule(n_listed, 40)[:-1]
    truth = population.mean()
    zeros = np.zeros(n_listed)
    above = below = 0
    for seed in range(orders):
        order = pair_order(n_listed, seed)
        hit_above = hit_below = False
        for n in looks:
            critical = (
                critical_value(alpha, len(looks), n) if adjusted else scipy.stats.t.isf(alpha, n - 1)
            )
            d = paired_interval(
                PSNR, zeros[order[:n]], population[order[:n]], n_listed=n_listed, critical=critical,
                confidence=1 - 2 * alpha,
            )  # fmt: skip
            hit_above |= d.ci_low > truth
            hit_below |= d.ci_high < truth
        above += hit_above
        below += hit_below
    return above / orders, below / orders


def test_each_end_of_the_interval_errs_at_most_alpha_over_all_looks() -> None:
    # A skewed finite population (PSNR-like differences: mostly small losses, a few large ones); the
    # truth is its mean, which the full run measures. 400 orders of 400 pairs, 9 interim looks.
    rng = np.random.default_rng(7)
    population = -rng.gamma(0.6, 0.15, 400) + 0.05 * rng.standard_normal(400)
    alpha, orders = 0.05, 400
    slack = 2.5 * math.sqrt(alpha * (1 - alpha) / orders)  # Monte-Carlo error of a rate near alpha
    above, below = _wrong_side_rates(population, alpha, orders, adjusted=True)
    assert above <= alpha + slack and below <= alpha + slack, (above, below)
    # the check has teeth: the same looks with unadjusted one-sided 95 % bounds err far more often
    naive_above, naive_below = _wrong_side_rates(population, alpha, orders, adjusted=False)
    assert max(naive_above, naive_below) > alpha + slack, (naive_above, naive_below)


def test_the_interval_shrinks_to_the_full_run_value_at_the_last_pair() -> None:
    rng = np.random.default_rng(1)
    ref, cand = rng.normal(20, 3, 50), rng.normal(19.9, 3, 50)
    d = paired_interval(PSNR, ref, cand, n_listed=50, critical=3.0, confidence=0.9)
    assert d.ci_low == d.ci_high == pytest.approx(np.mean(cand - ref), abs=1e-12)
    half = paired_interval(PSNR, ref[:20], cand[:20], n_listed=50, critical=3.0, confidence=0.9)
    expected = 3.0 * np.std(cand[:20] - ref[:20], ddof=1) / math.sqrt(20) * math.sqrt(1 - 20 / 50)
    assert (half.ci_high - half.ci_low) / 2 == pytest.approx(expected, rel=1e-12)


def test_decisions_are_one_sided_like_the_gate() -> None:
    def psnr(low: float, high: float) -> PairedDelta:
        return PairedDelta("PSNR", (low + high) / 2, low, high, None, 10, True)

    def fid(low: float, high: float) -> SetDelta:
        return SetDelta("FID", (low + high) / 2, low, high, 200, False)

    assert decide(psnr(-0.05, 0.02), 0.1) == "PASS"  # worse end -0.05 within 0.1
    assert decide(psnr(0.5, 0.9), 0.1) == "PASS"  # an improvement never fails
    assert decide(psnr(-0.3, -0.15), 0.1) == "FAIL"  # even the better end is 0.15 worse
    assert decide(psnr(-0.2, 0.0), 0.1) is None  # straddles the allowance: undecided
    assert decide(fid(0.5, 1.5), 2.0) == "PASS"  # lower is better: the upper end is the worse one
    assert decide(fid(2.5, 3.0), 2.0) == "FAIL"
    assert decide(fid(-3.0, -2.5), 2.0) == "PASS"
    assert decide(fid(1.0, 2.5), 2.0) is None


# ------------------------------------------------------------------------------- stopping, hand-built


def _stream(shifts: dict[str, float], n_listed: int = 200, spread: float = 0.05, seed: int = 0):
    """Per-pair PSNR and SSIM records of a reference and candidates shifted by ``shifts`` (candidate's
    mean difference per model name), with a known per-pair spread."""
    rng = np.random.default_rng(seed)
    ref = {"psnr": rng.normal(20, 3, n_listed), "ssim": rng.uniform(0.3, 0.8, n_listed)}
    per_image = {"ref": ref}
    for name, shift in shifts.items():
        per_image[name] = {
            "psnr": ref["psnr"] + shift + spread * rng.standard_normal(n_listed),
            "ssim": ref["ssim"] + 0.001 * rng.standard_normal(n_listed),
        }
    return per_image


def _run_looks(gate: SequentialGate, per_image: dict) -> int:
    """Drive the gate over the stream in its order; the pairs done when it stopped (or all)."""
    for number, n in enumerate(gate.looks[:-1], start=1):
        idx = gate.order[:n]
        data = LookData(
            np.zeros((n, 2)), {m: {k: v[idx] for k, v in d.items()} for m, d in per_image.items()}, {}, {}
        )
        if gate.look(number, data):
            return n
    return gate.n_listed


def _gate(spec: GateSpec, candidates: list[str], n_listed: int = 200) -> SequentialGate:
    return SequentialGate(
        SequentialSpec(alpha=0.05, look_every=50), spec, MetricSpec(profile="reference", bootstrap=0), "ref",
        candidates, n_listed,
    )  # fmt: skip


def test_a_clearly_equal_candidate_passes_at_the_first_look() -> None:
    gate = _gate(spec_of(psnr=Allowance(0.1), ssim=Allowance(0.01)), ["same"])
    n = _run_looks(gate, _stream({"same": 0.0}))
    out = gate.outcome(n)
    assert n == 50 and out.stopped_early and out.stop_look == 1
    assert [(d.metric, d.verdict, d.decided_by, d.look, d.n) for d in out.decisions] == [
        ("psnr", "PASS", "look", 1, 50),
        ("ssim", "PASS", "look", 1, 50),
    ]
    # the recorded interval is the one that decided: its worse end within the allowance
    psnr = out.decisions[0]
    assert -psnr.ci_low <= psnr.allowance == 0.1


def test_a_fail_stops_at_once_and_leaves_the_rest_undecided() -> None:
    # "worse" fails PSNR at look 1; "edge" sits on PSNR's allowance and is not decided by then
    gate = _gate(spec_of(psnr=Allowance(0.1)), ["edge", "worse"])
    n = _run_looks(gate, _stream({"edge": -0.1, "worse": -0.5}, spread=0.3))
    out = gate.outcome(n)
    assert n == 50 and out.stop_look == 1 and out.stopped_early
    by_model = {d.model: d for d in out.decisions}
    assert (by_model["worse"].verdict, by_model["worse"].decided_by) == ("FAIL", "look")
    assert by_model["worse"].ci_high < -0.1  # even the better end beyond the allowance
    assert (by_model["edge"].verdict, by_model["edge"].decided_by) == ("N/A", "undecided")
    assert by_model["edge"].ci_low < -0.1 < by_model["edge"].ci_high  # straddled when the run stopped


def test_an_undecidable_candidate_runs_to_the_end_and_falls_back_to_the_gate() -> None:
    gate = _gate(spec_of(psnr=Allowance(0.1)), ["edge"])
    n = _run_looks(gate, _stream({"edge": -0.1}, spread=0.3))
    out = gate.outcome(n)
    assert n == 200 and not out.stopped_early and out.stop_look is None
    assert [(d.verdict, d.decided_by, d.look) for d in out.decisions] == [("N/A", "full run", 4)]


def test_a_much_better_candidate_passes_and_looks_must_come_in_order() -> None:
    gate = _gate(spec_of(psnr=Allowance(0.1)), ["better"])
    assert _run_looks(gate, _stream({"better": +1.0})) == 50
    assert gate.outcome(50).decisions[0].verdict == "PASS"
    with pytest.raises(ValueError, match="look 3 after 1"):
        gate.look(3, LookData(np.zeros((2, 2)), {}, {}, {}))


def test_apply_sequential_replaces_the_gate_verdicts_and_says_the_run_stopped_early() -> None:
    gate = _gate(spec_of(psnr=Allowance(0.1)), ["edge", "worse"])
    out = gate.outcome(_run_looks(gate, _stream({"edge": -0.1, "worse": -0.5}, spread=0.3)))

    def row(model: str, verdict: str) -> GateRow:
        return GateRow(model, "ref", "psnr", 19.9, 20.0, -0.1, 0.1, True, verdict)  # type: ignore[arg-type]

    report = GateReport("within-run", "ref", "run", spec_of(psnr=Allowance(0.1)),
                        (row("edge", "PASS"), row("worse", "FAIL")))  # fmt: skip
    applied = apply_sequential(report, out)
    assert [(r.model, r.verdict) for r in applied.rows] == [("edge", "N/A"), ("worse", "FAIL")]
    assert "undecided when the run stopped at look 1" in applied.rows[0].reason
    assert "decided at look 1 (50 pairs)" in applied.rows[1].reason
    assert applied.notes[0].startswith("stopped early (sequential gate): 50 of 200 listed pairs evaluated")
    assert not applied.passed


def test_the_record_round_trips_and_ordinary_results_have_none() -> None:
    gate = _gate(spec_of(psnr=Allowance(0.1)), ["edge", "worse"])
    out = gate.outcome(_run_looks(gate, _stream({"edge": -0.1, "worse": -0.5}, spread=0.3)))
    again = SequentialRun.from_dict(json.loads(json.dumps(out.to_dict(), allow_nan=False)))
    assert again == out


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--sequential"], "--sequential: only with --gate"),
        (["--gate", "--sequential", "--look-every", "pocock"], "--look-every: unknown look schedule 'pocock"),
        (["--gate", "--sequential", "--look-every", "0"], "--look-every: unknown look schedule 0"),
        (["--gate", "--sequential", "--alpha", "0.5"], "--alpha: expected an error level in (0, 0.5)"),
        (["--gate", "--sequential", "--alpha", "0"], "--alpha: expected an error level in (0, 0.5)"),
        (["--gate", "--alpha", "0.1"], "--alpha: only with --sequential"),
    ],
)
def test_bad_sequential_flags_exit_2_with_one_line(argv: list[str], expected: str, capsys) -> None:
    code = main(["run", str(cfg.bundled_config("demo.yaml")), *argv])
    assert code == 2
    assert expected in one_error_line(capsys)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("{alpha: 0.7}", "key 'sequential.alpha': expected an error level in (0, 0.5)"),
        ("{look_every: fortnightly}", "key 'sequential.look_every': unknown look schedule 'fortnightly'"),
        ("{schedule: pocock}", "key 'sequential.schedule': unknown key"),
    ],
)
def test_a_bad_sequential_section_exits_2_naming_the_key(
    tmp_path: Path, section: str, expected: str, capsys
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(cfg.bundled_config("demo.yaml").read_text() + f"\nsequential: {section}\n")
    assert main(["run", str(config), "--gate"]) == 2
    line = one_error_line(capsys)
    assert f"{config}: {expected}" in line


def test_the_section_sets_sequential_gating_and_needs_the_gate(tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(cfg.bundled_config("demo.yaml").read_text() + "\nsequential: {alpha: 0.01}\n")
    loaded = cfg.load_config(config)
    assert loaded.sequential == SequentialSpec(alpha=0.01, look_every=50)
    assert cfg.config_from_dict(cfg.config_to_dict(loaded)).sequential == loaded.sequential
    overridden = cfg.apply_overrides(loaded, cfg.Overrides(look_every=25))
    assert overridden.sequential == SequentialSpec(alpha=0.01, look_every=25)
    assert cfg.load_config(cfg.bundled_config("demo.yaml")).sequential is None
    assert main(["run", str(config), "--output", str(tmp_path / "out")]) == 2
    assert "key 'sequential' (--sequential): sequential gating needs --gate" in one_error_line(capsys)


@pytest.mark.parametrize(("section", "expected"), [
    ("sequential: null", None),  # off, as `null` under gate: means off
    ("sequential: {}", SequentialSpec()),
    ("sequential: {alpha: 1e-3}", SequentialSpec(alpha=0.001)),  # YAML 1.1 reads 1e-3 as text
])  # fmt: skip
def test_null_is_off_and_a_dotless_exponent_is_a_number(tmp_path: Path, section: str, expected) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(cfg.bundled_config("demo.yaml").read_text() + f"\n{section}\n")
    assert cfg.load_config(config).sequential == expected


# ------------------------------------------------------------------------------------------ sample sizes


def test_sample_size_is_the_two_sided_normal_formula() -> None:
    z = scipy.stats.norm.ppf(0.975) + scipy.stats.norm.ppf(0.8)
    assert sample_size(1.0, 0.1, 0.05, 0.8) == math.ceil((z * 1.0 / 0.1) ** 2) == 785
    assert sample_size(0.5, 0.1, 0.05, 0.8) == math.ceil((z * 0.5 / 0.1) ** 2)
    assert sample_size(1.0, 0.0, 0.05) is None
    assert sample_size(0.0, 0.1, 0.05) == 2


# -------------------------------------------------------------------------------- runs on the stand-ins


def _sequential_config(standins, data, candidate: Path, **sequential) -> cfg.Config:
    config = standin_config(standins, data.root, data.pairs)
    # 50 resamples: the set metrics' standard errors at the looks, cheaply (the tests check the flow)
    config = cfg.apply_overrides(config, cfg.Overrides(models={"converted": candidate}, bootstrap=50))
    return replace(config, sequential=SequentialSpec(**sequential))


def test_a_run_stops_at_the_planned_look_with_the_first_pairs_of_its_order(
    standins, synthetic_data
) -> None:
    from evalkit.execution.pipeline import run
    from evalkit.gate.engine import compare_within_run
    from evalkit.report.markdown import render_markdown

    data = synthetic_data(32)
    config = _sequential_config(standins, data, standins.converted)
    config = replace(config, metrics=replace(config.metrics, profile="reference"))  # no KID: cheaper
    result = run(config, journal=False)
    seq = result.sequential
    assert seq is not None and seq.stopped_early and (seq.stop_look, seq.n_done) == (1, 8)
    expected = [(key, "PASS") for key in ("psnr", "ssim", "is", "fid")]
    assert [(d.metric, d.verdict) for d in seq.decisions] == expected
    assert {m.n for m in result.models.values()} == {8} and result.dataset.n_listed == 32
    pairs = [line.split(",")[0].removesuffix(".jpg") for line in data.pairs.read_text().splitlines()]
    assert [s.pair_id for s in result.models["converted"].samples] == [pairs[i] for i in seq_order(32)[:8]]
    gated = replace(result, gate=apply_sequential(compare_within_run(result, config.gate), seq))
    text = render_markdown(gated)
    assert "N = 8 evaluated / 32 listed (stopped early" in text
    assert "## Stopped early: sequential gate" in text
    # the sample-size hint from the run's per-pair spread (independent: numpy on the samples)
    rows = {r.metric: r for r in plan_pairs(result, 0.05)}
    ref, cand = ([s.values["psnr"] for s in result.models[m].samples] for m in ("original", "converted"))
    sd = float(np.std(np.subtract(cand, ref), ddof=1))
    assert rows["psnr"].sd == pytest.approx(sd, rel=1e-12)
    assert rows["psnr"].pairs == sample_size(sd, 0.1, 0.05)
    assert rows["fid"].pairs is None  # a --metrics reference run has no bootstrap interval to read


@pytest.mark.slow
def test_an_equal_candidate_stops_at_the_first_look_and_every_report_says_so(
    standins, synthetic_data, tmp_path: Path
) -> None:
    from evalkit.workflow import run_and_report

    data = synthetic_data(32)
    config = _sequential_config(standins, data, standins.converted)
    outcome = run_and_report(config, tmp_path / "out", gate=True, gallery_pairs=0)
    result = load_results(outcome.paths["json"])
    seq = result.sequential
    assert seq is not None and seq.stopped_early and seq.stop_look == 1 and seq.looks == (8, 16, 24, 32)
    assert result.dataset.n_pairs == 8 and result.dataset.n_listed == 32
    assert {m.n for m in result.models.values()} == {8}
    assert {d.verdict for d in seq.decisions} == {"PASS"} and outcome.passed
    # the samples are the first 8 pairs of the seeded order
    pairs = [line.split(",")[0].removesuffix(".jpg") for line in data.pairs.read_text().splitlines()]
    assert [s.pair_id for s in result.models["original"].samples] == [pairs[i] for i in seq_order(32)[:8]]
    for name in ("markdown", "gate"):
        assert "stopped early" in outcome.paths[name].read_text().lower()
    assert "Stopped early: sequential gate" in outcome.paths["html"].read_text()
    raw = json.loads(outcome.paths["json"].read_text())
    assert raw["sequential"]["n_done"] == 8 and raw["gate"]["notes"][0].startswith("stopped early")
    plain = replace(result, sequential=None, gate=None)  # an ordinary run's file has no section
    assert "sequential" not in plain.to_dict()
    assert RunResult.from_dict(plain.to_dict()).sequential is None


def seq_order(n: int) -> list[int]:
    return pair_order(n, MetricSpec().seed).tolist()


@pytest.mark.slow
def test_a_worse_candidate_fails_early_and_a_resumed_run_decides_the_same(
    standins, synthetic_data, tmp_path: Path
) -> None:
    import openvino as ov

    from evalkit.demo.models import build_degraded_translation_model
    from evalkit.execution.inprocess import SequentialExecutor
    from evalkit.workflow import run_and_report

    data = synthetic_data(32)
    worse = tmp_path / "worse.xml"
    ov.save_model(build_degraded_translation_model(0.0, 0.02), worse, compress_to_fp16=False)
    config = _sequential_config(standins, data, worse)
    whole = run_and_report(config, tmp_path / "whole", gate=True, gallery_pairs=0)
    seq = whole.result.sequential
    assert seq is not None and seq.stopped_early and not whole.passed
    assert any(d.verdict == "FAIL" and d.decided_by == "look" for d in seq.decisions)

    class Interrupted(Exception):
        pass

    class InterruptAfter(SequentialExecutor):
        def evaluate(self, config, pairs, deliver, *, on_error, on_step=None):
            count = [0]

            def counting(record):
                deliver(record)
                count[0] += 1
                if count[0] == 5:
                    raise Interrupted

            super().evaluate(config, pairs, counting, on_error=on_error, on_step=on_step)

    out = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        run_and_report(config, out, gate=True, gallery_pairs=0, executor=InterruptAfter())
    messages: list[str] = []
    resumed = run_and_report(config, out, gate=True, gallery_pairs=0, resume=True, log=messages.append)
    assert any(m.startswith("resuming: 5 of 32 pairs already done") for m in messages)
    assert resumed.result.sequential == seq
    for name in resumed.result.models:
        assert resumed.result.models[name].samples == whole.result.models[name].samples
    assert resumed.result.gate is not None and whole.result.gate is not None
    assert resumed.result.gate.rows == whole.result.gate.rows  # the label names the folder: not compared
    assert resumed.result.gate.notes == whole.result.gate.notes
    # the journal knows the order: a resume with another one (metrics.seed) is refused
    again = tmp_path / "again"
    with pytest.raises(Interrupted):
        run_and_report(config, again, gate=True, gallery_pairs=0, executor=InterruptAfter())
    other = replace(config, metrics=replace(config.metrics, seed=1))
    with pytest.raises(InputError, match=r"different run \(config\.metrics\.seed differs\)"):
        run_and_report(other, again, gate=True, gallery_pairs=0, resume=True)


def test_skipped_pairs_are_not_counted_as_evaluated(standins, synthetic_data, tmp_path: Path) -> None:
    import shutil

    from evalkit.data.ade20k import pair_files, read_pairs
    from evalkit.execution.pipeline import run

    data = synthetic_data(32)
    root = tmp_path / "root"
    shutil.copytree(data.root, root)
    pairs = read_pairs(data.pairs)
    first = seq_order(32)[:8]
    for i in first[:2]:  # two of the first look's pairs cannot be read
        pair_files(root, pairs[i]).input_mask.unlink()
    config = _sequential_config(standins, data, standins.converted)
    config = replace(
        config,
        dataset=replace(config.dataset, root=root),
        metrics=replace(config.metrics, profile="reference"),
    )
    result = run(config, journal=False, on_error="skip")
    seq = result.sequential
    assert seq is not None and len(result.skipped) >= 2
    assert seq.n_done == result.models["converted"].n == result.dataset.n_pairs


def test_plan_of_a_run_with_one_model_says_why_it_has_nothing_to_plan() -> None:
    import records

    from evalkit.report.plan import render_plan

    with pytest.raises(InputError, match=r"no candidate model with a gated metric to plan for \(models: o"):
        render_plan(records.run({"original": records.metrics()}))
