"""Per-pair records -> each model's summary metrics and the paired comparison, driven by the metric registry.

Pure functions on arrays and records; nothing here runs a model or touches a file. The pipeline
stacks its records into :class:`ModelOutputs`, then calls :func:`summarise` per model and
:func:`compare_models` once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from evalkit.config import DEFAULT_GATE_SPEC, GateSpec, MetricSpec
from evalkit.metrics import mean_std_finite
from evalkit.metrics.registry import (
    Metric,
    MetricSettings,
    SetInputs,
    metrics_of,
    per_image_metrics,
    set_metrics,
)
from evalkit.results import Comparison, ComparisonEntry, ModelMetrics, SampleScores
from evalkit.stats.comparison import DEFAULT_CONFIDENCE, paired_delta, set_deltas

__all__ = ["ModelOutputs", "allowance_limit", "compare_models", "metric_settings", "summarise"]


@dataclass(frozen=True)
class ModelOutputs:
    """One model's per-sample scores and verifier outputs over the evaluated pairs, in pair order."""

    samples: tuple[SampleScores, ...]
    probabilities: np.ndarray  #: N x classes float32
    features: np.ndarray  #: N x d float32


def metric_settings(spec: MetricSpec) -> MetricSettings:
    """The variant settings the metric functions read, from the config's ``metrics:`` section."""
    return MetricSettings(ssim_constants=spec.ssim_constants, fid_method=spec.fid_method, seed=spec.seed)


def _per_image_summary(metric: Metric, values: np.ndarray) -> dict[str, float]:
    # Finite-mean metrics (PSNR) leave out +inf (identical images) and count them; the others take the
    # plain mean, as the reference does. Spreads are population standard deviations (np.std's ddof=0).
    if metric.finite_mean:
        mean, std, n_inf = mean_std_finite(values)
    else:
        mean, std, n_inf = float(np.mean(values)), float(np.std(values)), 0
    out = {metric.key: mean}
    if metric.std_key is not None:
        out[metric.std_key] = std
    if metric.inf_count_key is not None:
        out[metric.inf_count_key] = n_inf
    return out


def summarise(out: ModelOutputs, gt_features: np.ndarray, spec: MetricSpec) -> ModelMetrics:
    """The model's summary metrics (every metric of the run's profile) from its records."""
    extended = spec.profile == "all"
    settings = metric_settings(spec)
    values: dict[str, float] = {}
    for metric in per_image_metrics(extended):
        per_pair = np.array([s.values[metric.key] for s in out.samples], dtype=np.float64)
        values.update(_per_image_summary(metric, per_pair))
    inputs = SetInputs(gt_features=gt_features, features=out.features, probabilities=out.probabilities)
    for metric in set_metrics(extended):
        value, spread = metric.compute(inputs, settings)  # type: ignore[call-arg, arg-type, misc]
        values[metric.key] = value
        if metric.std_key is not None:
            values[metric.std_key] = spread
    return ModelMetrics(values=values)


def allowance_limit(gate: GateSpec, metric: str, reference_metrics: ModelMetrics | None) -> float | None:
    """The gate's largest acceptable worsening of ``metric`` against the reference model's value.

    ``None`` when the gate spec gives the metric no allowance, or a relative allowance has no finite
    reference value to be relative to. The comparison's sentences and the report's "within allowance"
    column both judge with this limit (:func:`evalkit.stats.comparison.within_allowance`).
    """
    allowance = gate.allowances.get(metric)
    if allowance is None:
        return None
    baseline = None if reference_metrics is None else reference_metrics.get(metric)
    if baseline is None or not np.isfinite(baseline):
        if allowance.relative:
            return None
        baseline = float("nan")  # an absolute allowance alone does not need it
    return allowance.limit(float(baseline))


def compare_models(
    gt_features: np.ndarray,
    outputs: Mapping[str, ModelOutputs],
    spec: MetricSpec,
    reference: str,
    *,
    gate: GateSpec = DEFAULT_GATE_SPEC,
    reference_metrics: ModelMetrics | None = None,
) -> Comparison:
    """Paired comparison of every model with ``reference``: per-sample deltas with bootstrap intervals and
    Wilcoxon p-values for the registry's ``comparison="paired"`` metrics, and bootstrap intervals of the
    differences of its ``comparison="set"`` metrics (the ``comparison`` section of ``results.json``).

    Each sentence also says whether the difference is within ``gate``'s allowance for its metric (the run
    config's ``gate:`` spec), relative allowances taken of ``reference_metrics`` (the reference model's
    :func:`summarise`, the values the gate compares with); metrics without an allowance say nothing.
    """
    ref = outputs[reference]
    limits = {m.key: allowance_limit(gate, m.key, reference_metrics) for m in metrics_of()}
    paired = [m for m in metrics_of() if m.comparison == "paired"]
    set_keys = [m.key for m in metrics_of() if m.comparison == "set"]
    models: dict[str, dict[str, ComparisonEntry]] = {}
    for name, out in outputs.items():
        if name == reference:
            continue
        entries: dict[str, ComparisonEntry] = {}
        for metric in paired:
            delta = paired_delta(
                metric.name,
                np.array([s.values[metric.key] for s in ref.samples]),
                np.array([s.values[metric.key] for s in out.samples]),
                higher_is_better=metric.higher_is_better,
                n_resamples=spec.bootstrap,
                seed=spec.seed,
            )
            sentence = delta.sentence(name, reference, limits[metric.key])
            entries[metric.key] = ComparisonEntry(delta, sentence)
        set_results = set_deltas(
            gt_features,
            ref.features,
            out.features,
            ref.probabilities,
            out.probabilities,
            n_resamples=spec.bootstrap,
            seed=spec.seed,
            kid_seed=spec.seed,
            fid_method=spec.fid_method,
        )
        for key in set_keys:
            result = set_results[key]
            entries[key] = ComparisonEntry(result, result.sentence(name, reference, limits[key]))
        models[name] = entries
    return Comparison(
        reference_model=reference,
        bootstrap=spec.bootstrap,
        seed=spec.seed,
        confidence=DEFAULT_CONFIDENCE,
        models=models,
    )
