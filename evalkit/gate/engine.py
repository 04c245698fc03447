"""The gate's comparisons: is a candidate worse than its baseline by more than the allowed margin?

Pure functions on :class:`~evalkit.results.RunResult` records; nothing here runs a model or renders.

Three comparisons, one outcome type (:class:`~evalkit.results.GateReport`):

- :func:`compare_within_run`: every model of one run against the run's reference model (``evalkit run
  --gate``): the FP16 IR against the original, say;
- :func:`compare_runs`: a candidate run against a baseline run (``evalkit gate BASELINE CANDIDATE``), model
  by model (same name), or every candidate model against one baseline model. It refuses runs that are not
  comparable: another data set, another verifier, other metric settings;
- :func:`compare_to_published`: a run against the published accuracy table (``published:`` in a config).

The rule, per metric (direction-aware: each metric's ``higher_is_better`` in the metric registry)::

    worse   = baseline - value      (higher is better)      value - baseline     (lower is better)
    allowed = max(abs, rel * |baseline|)                    (a missing abs or rel counts as 0)
    FAIL  if  worse > allowed

so an improvement never fails, and when both an absolute and a relative allowance are given the larger one
applies (either is enough to pass). Comparisons carry a relative tolerance of 1e-9 so that a change of
exactly the allowance, which floating point may represent a hair larger, passes.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from evalkit.config import DEFAULT_GATE_SPEC, GateSpec, PublishedTable
from evalkit.errors import InputError
from evalkit.metrics.registry import METRICS, METRICS_BY_KEY
from evalkit.results import GateReport, GateRow, Noise, RunResult, SequentialRun, Verdict

__all__ = [
    "apply_sequential", "compare_runs", "compare_to_published", "compare_within_run", "sequential_note"
]  # fmt: skip

#: Float slack on "worse > allowed" (see the module docstring).
_REL_TOLERANCE = 1e-9


# ------------------------------------------------------------------------------- reading the run records


def _metric_value(run: RunResult, model: str, metric: str) -> float:
    """``model``'s value of ``metric``; NaN when undefined or not computed by the run."""
    value = run.models[model].metrics.get(metric)
    return math.nan if value is None else float(value)


def _metric_settings(run: RunResult) -> dict[str, Any]:
    """The metric settings that decide whether two runs' numbers are comparable."""
    m = run.config.metrics
    return {
        "ssim_constants": m.ssim_constants,
        "fid_method": m.fid_method,
        "profile": m.profile,
        "seed": m.seed,
    }


def _paired_reference(run: RunResult) -> str | None:
    """The reference model of the run's paired comparison; None when the run has no comparison."""
    return None if run.comparison is None else run.comparison.reference_model


def _noise_from(run: RunResult, model: str, metric: str) -> Noise:
    """``yes`` when the run's bootstrap interval of (model - reference) on ``metric`` excludes 0."""
    entry = None if run.comparison is None else run.comparison.entry(model, metric)
    interval = None if entry is None else entry.interval
    if interval is None:
        return "unknown"
    low, high = interval
    return "yes" if low > 0 or high < 0 else "no"


def _label(run: RunResult, default: str) -> str:
    out = run.config.output
    return f"{default} ({out})" if out else default


# ------------------------------------------------------------------------------------------- the verdict


def _judge(
    model: str,
    baseline_model: str,
    metric: str,
    value: float,
    baseline: float,
    allowance: float,
    noise: Noise = "unknown",
) -> GateRow:
    hib = METRICS_BY_KEY[metric].higher_is_better
    v_ok, b_ok = math.isfinite(value), math.isfinite(baseline)
    verdict: Verdict
    if not v_ok and not b_ok:
        verdict, reason = "N/A", "undefined in both"
    elif not b_ok:
        verdict, reason = "N/A", "undefined in the baseline"
    elif not v_ok:
        # Conservative: a metric that became undefined is treated as a regression to look at.
        verdict, reason = "FAIL", "undefined in the candidate"
    else:
        worse = (baseline - value) if hib else (value - baseline)
        failed = worse > allowance + _REL_TOLERANCE * max(abs(baseline), abs(allowance), 1.0)
        verdict, reason = ("FAIL" if failed else "PASS"), ""
    delta = value - baseline if v_ok and b_ok else math.nan
    return GateRow(
        model=model,
        baseline_model=baseline_model,
        metric=metric,
        value=value,
        baseline=baseline,
        delta=delta,
        allowance=allowance,
        higher_is_better=hib,
        verdict=verdict,
        outside_noise=noise,
        reason=reason,
    )


# ----------------------------------------------------------------------- comparability, metric selection


def _select_metrics(
    spec: GateSpec, runs: Iterable[RunResult], notes: list[str], *, seeds_differ: bool = False
) -> list[str]:
    """The spec's metrics that every run has; a missing one is refused if required, else noted."""
    runs = list(runs)
    chosen = []
    for metric in spec.metrics():
        declared = METRICS_BY_KEY[metric]
        missing = declared.profile == "extended" and not all(r.has_extended for r in runs)
        if missing:
            why = "a run has no extended metrics (metrics.profile differs or is 'reference')"
        elif declared.seeded and seeds_differ:
            missing, why = True, "the runs used different metrics.seed (seeded splits/subsets)"
        if not missing:
            chosen.append(metric)
        elif metric in spec.required:
            raise InputError(f"{spec.source}: key 'gate.{metric}': cannot gate {metric}: {why}")
        else:
            notes.append(f"{metric} not gated: {why}")
    if not chosen:
        raise InputError(
            f"{spec.source}: none of the gated metrics ({', '.join(spec.metrics())}) is in the runs"
        )
    return chosen


def _check_comparable(baseline: RunResult, candidate: RunResult, notes: list[str]) -> bool:
    """Refuse runs that measured different things; note differences that may move numbers.

    Returns whether the metric seeds differ (seeded metrics are then left out).
    """

    def refuse(field_name: str, a: object, b: object, why: str) -> InputError:
        return InputError(
            f"runs not comparable: {field_name} differs (baseline {a!r}, candidate {b!r}); {why}"
        )

    bd, cd = baseline.dataset, candidate.dataset
    if bd.n_pairs != cd.n_pairs:
        raise refuse("dataset.n_pairs", bd.n_pairs, cd.n_pairs, "the runs evaluated different pairs")
    if bd.pairs_sha256 != cd.pairs_sha256:
        raise refuse(
            "dataset.pairs_sha256", bd.pairs_sha256[:12], cd.pairs_sha256[:12], "different pairs files"
        )
    # Same count, but a run stopped early (sequential) or limited evaluates its own subset: compare the ids.
    b_ids, c_ids = _evaluated_pairs(baseline), _evaluated_pairs(candidate)
    if b_ids is not None and c_ids is not None and b_ids != c_ids:
        only = sorted(b_ids - c_ids)[:3] or sorted(c_ids - b_ids)[:3]
        raise refuse(
            "the pairs evaluated", len(b_ids), len(c_ids),
            f"the runs evaluated different pairs of the same file (e.g. {', '.join(only)} in one only; "
            "a sequential run stops on a random subset)",
        )  # fmt: skip
    # Same file and count, but --on-error skip may have left out different pairs.
    b_skip = sorted(s.pair_id for s in baseline.skipped)
    c_skip = sorted(s.pair_id for s in candidate.skipped)
    if b_skip != c_skip:
        raise refuse("skipped", b_skip[:5], c_skip[:5], "the runs left out different pairs (--on-error skip)")
    if baseline.verifier.sha256 != candidate.verifier.sha256:
        raise refuse(
            "verifier.sha256",
            baseline.verifier.sha256[:12],
            candidate.verifier.sha256[:12],
            "IS, FID and KID depend on the verifier",
        )
    bs, cs = _metric_settings(baseline), _metric_settings(candidate)
    for key in ("ssim_constants", "fid_method"):
        if bs[key] != cs[key]:
            raise refuse(f"config.metrics.{key}", bs[key], cs[key], "the metrics were computed differently")
    if bs["profile"] != cs["profile"]:
        notes.append(
            f"config.metrics.profile differs (baseline {bs['profile']}, candidate {cs['profile']}): "
            "only the metrics both runs have are compared"
        )
    br, cr = baseline.config.runtime, candidate.config.runtime
    for key in ("inference_precision", "device"):
        if getattr(br, key) != getattr(cr, key):
            notes.append(f"runtime.{key} differs: baseline {getattr(br, key)}, candidate {getattr(cr, key)}")
    if baseline.evalkit_version != candidate.evalkit_version:
        notes.append(
            f"evalkit version differs: baseline {baseline.evalkit_version}, "
            f"candidate {candidate.evalkit_version}"
        )
    for lib in ("openvino", "opencv", "pillow", "numpy"):
        a, b = baseline.environment.get(lib), candidate.environment.get(lib)
        if a is not None and b is not None and a != b:
            # JPEG decoders and resize kernels change numbers a little between versions.
            notes.append(f"{lib} version differs: baseline {a}, candidate {b}")
    return bs["seed"] != cs["seed"]


def _evaluated_pairs(run: RunResult) -> set[str] | None:
    """The pair ids a run evaluated (those of its first model's samples), ``None`` when it kept no samples."""
    samples = next(iter(run.models.values())).samples if run.models else ()
    return {s.pair_id for s in samples} if samples else None


def _model_names(run: RunResult, names: Sequence[str] | None, what: str) -> list[str]:
    if names is None:
        return list(run.models)
    for name in names:
        if name not in run.models:
            raise _unknown_model(name, run, what)
    return list(dict.fromkeys(names))


def _unknown_model(name: str, run: RunResult, what: str) -> InputError:
    valid = list(run.models)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return InputError(f"model '{name}' is not in the {what} (models: {', '.join(valid)}){hint}")


# ----------------------------------------------------------------------------------- the three comparisons


def compare_runs(
    baseline: RunResult,
    candidate: RunResult,
    spec: GateSpec | None = None,
    *,
    models: Sequence[str] | None = None,
    baseline_model: str | None = None,
    baseline_label: str | None = None,
    candidate_label: str | None = None,
) -> GateReport:
    """Gate a candidate run against a baseline run.

    Parameters
    ----------
    baseline, candidate : RunResult
        The two runs. They must share the data set (``pairs_sha256``, ``n_pairs``, the pairs left out by
        ``--on-error skip``), the verifier
        (``sha256``) and the metric settings (``ssim_constants``, ``fid_method``; ``profile`` and ``seed``
        for the extended metrics that depend on them).
    spec : GateSpec, optional
        Thresholds; the built-in defaults when ``None``.
    models : sequence of str, optional
        Candidate models to gate; all of them by default (then those without a same-named baseline model
        are skipped with a note).
    baseline_model : str, optional
        Compare every candidate model with this one baseline model instead of the same-named one.
    baseline_label, candidate_label : str, optional
        How the reports name the two runs (e.g. the results files' paths).

    Returns
    -------
    GateReport
        ``kind="runs"``. "Outside noise" is known only where the candidate run's paired comparison has the
        baseline model as its reference (the same model by sha256, on the same data set).

    Raises
    ------
    InputError
        Runs not comparable (the message names the field that differs), unknown model names, or nothing
        to compare.
    """
    spec = spec or DEFAULT_GATE_SPEC
    notes: list[str] = []
    seeds_differ = _check_comparable(baseline, candidate, notes)
    metrics = _select_metrics(spec, (baseline, candidate), notes, seeds_differ=seeds_differ)
    if baseline_model is not None and baseline_model not in baseline.models:
        raise _unknown_model(baseline_model, baseline, "baseline run")
    names = _model_names(candidate, models, "candidate run")
    ref_c = _paired_reference(candidate)

    rows: list[GateRow] = []
    for name in names:
        base_name = baseline_model or name
        if base_name not in baseline.models:
            if models is not None:
                raise _unknown_model(base_name, baseline, "baseline run")
            notes.append(f"{name}: no model of that name in the baseline run; not gated")
            continue
        # The candidate's own paired intervals say something about this pair of models only if its
        # reference model is the very baseline model (same file; same data by the checks above).
        same_ref = (
            ref_c is not None
            and ref_c in candidate.models
            and ref_c != name
            and candidate.models[ref_c].sha256 == baseline.models[base_name].sha256
        )
        for metric in metrics:
            b = _metric_value(baseline, base_name, metric)
            noise = _noise_from(candidate, name, metric) if same_ref else "unknown"
            rows.append(
                _judge(
                    name,
                    base_name,
                    metric,
                    _metric_value(candidate, name, metric),
                    b,
                    spec.allowances[metric].limit(b),
                    noise,
                )
            )
    if not rows:
        raise InputError(
            f"no candidate model has a same-named baseline model (baseline: {', '.join(baseline.models)}; "
            f"candidate: {', '.join(candidate.models)}); name one with --baseline-model"
        )
    return GateReport(
        kind="runs",
        baseline=baseline_label or _label(baseline, "baseline run"),
        candidate=candidate_label or _label(candidate, "candidate run"),
        spec=spec,
        rows=tuple(rows),
        notes=tuple(notes),
    )


def compare_within_run(
    run: RunResult,
    spec: GateSpec | None = None,
    reference_model: str | None = None,
    *,
    label: str | None = None,
) -> GateReport:
    """Gate every model of a run against the run's reference model (``evalkit run --gate``).

    Parameters
    ----------
    run : RunResult
        A run with at least two models.
    spec : GateSpec, optional
        Thresholds; the built-in defaults when ``None``.
    reference_model : str, optional
        The baseline model; default the run's reference model (``metrics.reference_model``, else the
        first model).
    label : str, optional
        How the reports name the run.

    Returns
    -------
    GateReport
        ``kind="within-run"``; "outside noise" comes from the run's paired comparison when its reference
        model is the gate's.

    Raises
    ------
    InputError
        Fewer than two models, an unknown reference model, or a required metric the run lacks.
    """
    spec = spec or DEFAULT_GATE_SPEC
    if len(run.models) < 2:
        raise InputError(
            f"the gate compares models with a reference model; the run has only {list(run.models)}"
        )
    ref = reference_model or run.reference_model
    if ref not in run.models:
        raise _unknown_model(ref, run, "run")
    notes: list[str] = []
    metrics = _select_metrics(spec, (run,), notes)
    paired_ref = _paired_reference(run)
    if paired_ref is None:
        notes.append("no paired comparison in the results: noise unknown")
    elif paired_ref != ref:
        notes.append(f"the paired comparison's reference model is not {ref}: noise unknown")
    rows = []
    for name in run.models:
        if name == ref:
            continue
        for metric in metrics:
            b = _metric_value(run, ref, metric)
            noise = _noise_from(run, name, metric) if paired_ref == ref else "unknown"
            value = _metric_value(run, name, metric)
            rows.append(_judge(name, ref, metric, value, b, spec.allowances[metric].limit(b), noise))
    return GateReport(
        kind="within-run",
        baseline=f"{ref} ({run.models[ref].label})",
        candidate=label or _label(run, "run"),
        spec=spec,
        rows=tuple(rows),
        notes=tuple(notes),
    )


def compare_to_published(
    candidate: RunResult,
    published: PublishedTable,
    spec: GateSpec | None = None,
    *,
    models: Sequence[str] | None = None,
    candidate_label: str | None = None,
) -> GateReport:
    """Gate a run against a published accuracy table.

    Each published figure is matched to the run's same-named model. The allowance is the larger of half a
    unit in the figure's last printed decimal (0.005 for ``12.99``: the rounding the figure may hide) and
    the spec's allowance for that metric, if it has one. Direction-aware like the other gates: a run
    better than the published figure passes. Data set and verifier are not checked (a table has neither).

    Raises
    ------
    InputError
        No model of the run is in the table, or an unknown model in ``models``.
    """
    spec = spec or DEFAULT_GATE_SPEC
    names = _model_names(candidate, models, "run")
    notes: list[str] = []
    rows = []
    for name in names:
        if name not in published.models:
            if models is not None:
                raise InputError(
                    f"{published.source}: model '{name}' has no published figures "
                    f"(published: {', '.join(published.models)})"
                )
            notes.append(f"{name}: no published figures; not gated")
            continue
        for metric in (m.key for m in METRICS):
            if metric not in published.models[name]:
                continue
            fig = published.models[name][metric]
            allowance = fig.half_unit
            if metric in spec.allowances:
                allowance = max(allowance, spec.allowances[metric].limit(fig.value))
            value = _metric_value(candidate, name, metric)
            rows.append(_judge(name, "published", metric, value, fig.value, allowance))
    if not rows:
        raise InputError(
            f"{published.source}: no model of the run ({', '.join(candidate.models)}) is in the published "
            f"table ({', '.join(published.models)})"
        )
    settings = _metric_settings(candidate)
    by_constants = any(METRICS_BY_KEY[r.metric].variant_setting == "ssim_constants" for r in rows)
    if by_constants and settings["ssim_constants"] != "reference-2020":
        notes.append(
            f"the published SSIM comes from the 2020 code (metrics.ssim_constants: reference-2020); this run "
            f"used '{settings['ssim_constants']}'"
        )
    if candidate.config.dataset.limit:
        notes.append(
            f"this run evaluated the first {candidate.dataset.n_pairs} pairs only (dataset.limit); "
            "the published figures are over the whole pairs file"
        )
    return GateReport(
        kind="published",
        baseline=published.source,
        candidate=candidate_label or _label(candidate, "run"),
        spec=spec,
        rows=tuple(rows),
        notes=tuple(notes),
    )


# ------------------------------------------------------------------------------------ sequential gating


def sequential_note(seq: SequentialRun) -> str:
    """One sentence on how a sequential run ended, for the gate's notes and the reports."""
    level = f"error level {seq.alpha * 100:.3g}% per gated metric"
    if seq.stopped_early:
        return (
            f"stopped early (sequential gate): {seq.n_done} of {seq.n_listed} listed pairs evaluated, at "
            f"look {seq.stop_look} of {len(seq.looks)}; {level}; {seq.method}"
        )
    return (
        f"sequential gate: no early stop, all {seq.n_listed} listed pairs evaluated "
        f"({len(seq.looks)} looks); {level}; {seq.method}"
    )


def apply_sequential(report: GateReport, seq: SequentialRun) -> GateReport:
    """The within-run gate of a sequential run: the verdicts its looks made replace the gate's.

    A (model, metric) decided at a look keeps that verdict (decisions are final: the error level counts
    each metric's first decision); one left to the full run keeps the ordinary gate's verdict on every
    pair; one still undecided when the run stopped at another metric's FAIL becomes ``N/A``. Each row's
    reason says which, and a note says that the run stopped early.
    """
    rows = []
    for row in report.rows:
        d = seq.decision(row.model, row.metric)
        if d is None:
            rows.append(row)
            continue
        verdict: Verdict = row.verdict
        if d.decided_by == "look":
            verdict = d.verdict
            reason = f"sequential: decided at look {d.look} ({d.n} pairs)"
        elif d.decided_by == "undecided":
            verdict = "N/A"
            reason = (
                f"sequential: undecided when the run stopped at look {seq.stop_look} ({seq.n_done} pairs)"
            )
        else:
            reason = "sequential: undecided at every interim look; gated on all pairs"
        rows.append(replace(row, verdict=verdict, reason=f"{row.reason}; {reason}" if row.reason else reason))
    return replace(report, rows=tuple(rows), notes=(sequential_note(seq), *report.notes))
