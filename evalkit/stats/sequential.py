"""Sequential gating: decide a gated run on a fraction of its pairs, with a stated error level.

The pairs are evaluated in a seeded random order (:func:`pair_order`: a permutation of the pairs file, the
same for every model). At planned looks (:func:`look_schedule`) every gated (candidate, metric) gets an
interval of the candidate-minus-reference difference that is valid over all looks, and a one-sided decision
like the gate's (:func:`decide`): PASS when the interval's worse-side bound is within the allowance (an
improvement never fails), FAIL when even its better-side bound is beyond it. :class:`SequentialGate` keeps
the decisions: a run stops when every gated metric is decided, or at once on a FAIL; what is still
undecided at the last pair is left to the ordinary gate on every pair.

The interval (:data:`METHOD`, "Bonferroni over the planned interim looks, Student t, finite-population
corrected"): at a look with n of the N listed pairs,

    Δ_n ± t(1 - α / K; n - 1) · SE_n · sqrt(1 - n / N)

with K the number of interim looks (every look but the last, which sees all N pairs and is the ordinary
gate). ``SE_n``: for a per-image metric (PSNR, SSIM, the extended ones) the standard error of the mean of
the per-pair differences, ``sd / sqrt(n)``; for a set metric (IS, FID, KID) half the width of the central
68.27 % percentile interval of :func:`evalkit.stats.comparison.set_deltas`, the paired bootstrap of the
difference at the current n (a robust bootstrap standard error; far quantiles such as the 0.06 % one that
Bonferroni needs cannot be read off 200 resamples, a standard error can).

Why these choices:

* What the gate decides is the full run's difference: the first n pairs of a random order are a sample
  drawn without replacement from the N listed pairs, so the finite-population factor ``sqrt(1 - n/N)`` is
  exact for a mean and makes the interval shrink to the full run's value at n = N. An early decision is
  thus a prediction of the full-run gate, and the benchmark (``benchmarks/sequential.py``) checks exactly
  that.
* Bonferroni needs nothing about how the looks are correlated, so the same rule covers a mean and a
  bootstrap; with a few dozen looks it is only slightly wider than a Pocock boundary or a confidence
  sequence. Each end of the interval is a one-sided bound with error ``α / K`` per look, so over all looks
  the chance that the end that decides is ever on the wrong side of the full-run difference is at most
  ``α`` (a difference within the allowance can only be wrongly FAILed, one beyond it only wrongly PASSed):
  each decision differs from the full-run gate with probability at most ``α``. The interval as a whole is
  a simultaneous ``1 - 2α`` interval.
* Student t with n - 1 degrees of freedom rather than the normal: wider at the first looks, where the
  per-pair differences (PSNR of a few unusual images) are furthest from normal.

The error level is per gated (candidate, metric). A run stops at the first FAIL, so with m gated metrics
the chance of a wrong run verdict is at most ``m · α``.

Set metrics depend on N (FID and IS are biased in the number of images; KID's estimator is unbiased). An
early FID or IS decision is about the difference measured on the same n pairs, which can differ from the
difference on all N pairs by more than noise: prefer KID for early decisions on a set metric.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from evalkit.config import GateSpec, MetricSpec, SequentialSpec
from evalkit.metrics.registry import METRICS_BY_KEY, Metric
from evalkit.results import RunResult, SequentialDecision, SequentialRun
from evalkit.stats.aggregate import ModelOutputs
from evalkit.stats.comparison import (
    SET_METRICS,
    PairedDelta,
    SetDelta,
    beyond_allowance,
    set_deltas,
    within_allowance,
)

__all__ = [
    "METHOD",
    "LookData",
    "PlanRow",
    "SequentialGate",
    "critical_value",
    "decide",
    "look_data",
    "look_schedule",
    "pair_order",
    "paired_interval",
    "plan_pairs",
    "sample_size",
    "set_intervals",
]

#: The interval method, as results.json and the reports name it (see the module docstring).
METHOD = "Bonferroni over the planned interim looks (Student t, finite-population corrected)"
#: Fewest pairs at a look: FID's covariances and a standard deviation need two.
MIN_LOOK_PAIRS = 2
#: A second entropy word of the order's generator, so that the order and the bootstrap, both seeded with
#: ``metrics.seed``, draw from unrelated streams.
ORDER_STREAM = 15
#: Level of the central percentile interval whose half-width is the bootstrap standard error.
_ONE_SE_LEVEL = math.erf(1.0 / math.sqrt(2.0))  # 0.6827: +-1 standard deviation of a normal
#: Power of :func:`sample_size` unless told: the usual 80 %.
DEFAULT_POWER = 0.8

Decision = Literal["PASS", "FAIL"]


# ------------------------------------------------------------------------------------------ the plan


def look_schedule(n_listed: int, look_every: int) -> tuple[int, ...]:
    """The planned looks: the number of pairs done at each, the last being every listed pair.

    Looks come every ``min(look_every, n_listed // 4)`` pairs (at least :data:`MIN_LOOK_PAIRS`), so the
    first comes after at most a quarter of the pairs and a short pairs file still gets a few looks.

    Examples
    --------
    >>> look_schedule(200, 50)
    (50, 100, 150, 200)
    >>> look_schedule(32, 50)
    (8, 16, 24, 32)
    """
    if n_listed < 1 or look_every < 1:
        raise ValueError(f"look_schedule: n_listed and look_every must be >= 1, got {n_listed}, {look_every}")
    step = max(MIN_LOOK_PAIRS, min(look_every, n_listed // 4))
    return (*range(step, n_listed, step), n_listed)


def pair_order(n_listed: int, seed: int) -> np.ndarray:
    """The evaluation order: a seeded permutation of ``range(n_listed)`` (positions in the pairs file).

    Notes
    -----
    The order must be random for the intervals to mean anything: the first n pairs of a pairs file sorted
    by scene or difficulty are not a sample of the whole file.
    """
    return np.random.default_rng([ORDER_STREAM, int(seed)]).permutation(n_listed)


def order_sha256(order: np.ndarray) -> str:
    """SHA-256 of an order's int64 bytes (what a journal records, so a resume refuses another order)."""
    return hashlib.sha256(np.asarray(order, dtype=np.int64).tobytes()).hexdigest()


def critical_value(alpha: float, interim_looks: int, n: int) -> float:
    """``t(1 - alpha / interim_looks; n - 1)``: the multiple of the standard error at a look of n pairs.

    Raises
    ------
    ValueError
        ``alpha`` outside (0, 0.5), fewer than one interim look or fewer than two pairs.
    """
    if not 0.0 < alpha < 0.5 or interim_looks < 1 or n < MIN_LOOK_PAIRS:
        raise ValueError(
            f"critical_value: need 0 < alpha < 0.5, interim_looks >= 1, n >= 2; got {alpha}, "
            f"{interim_looks}, {n}"
        )
    import scipy.stats  # here: a second of start-up for every command otherwise

    return float(scipy.stats.t.ppf(1.0 - alpha / interim_looks, n - 1))


def _population_factor(n: int, n_listed: int) -> float:
    # sqrt(1 - n/N): the first n of a random order are drawn without replacement from the N listed pairs
    return math.sqrt(max(0.0, 1.0 - n / n_listed))


# ------------------------------------------------------------------------------------------ intervals


def paired_interval(
    metric: Metric,
    reference_values: np.ndarray,
    candidate_values: np.ndarray,
    *,
    n_listed: int,
    critical: float,
    confidence: float,
) -> PairedDelta:
    """The mean per-pair difference of a per-image metric with its interval valid over all looks.

    Parameters
    ----------
    metric : Metric
        The per-image metric (its name and direction).
    reference_values, candidate_values : numpy.ndarray
        Per-pair values of the first n pairs of the order, both models in the same order (+inf allowed:
        PSNR of an image identical to its ground truth; such pairs are left out, as by
        :func:`evalkit.stats.comparison.paired_delta`).
    n_listed : int
        N, the pairs of the whole run (the finite population).
    critical : float
        :func:`critical_value` for this look.
    confidence : float
        The simultaneous level recorded with the interval (``1 - 2 alpha``).

    Returns
    -------
    PairedDelta
        ``mean ± critical · sd / sqrt(n) · sqrt(1 - n / N)`` (no p-value); NaN interval below 2 pairs.
    """
    ref = np.asarray(reference_values, dtype=np.float64)
    cand = np.asarray(candidate_values, dtype=np.float64)
    used = np.isfinite(ref) & np.isfinite(cand)
    deltas = cand[used] - ref[used]
    n = int(deltas.size)
    mean = float(deltas.mean()) if n else math.nan
    low = high = math.nan
    if n >= MIN_LOOK_PAIRS:
        half = critical * float(deltas.std(ddof=1)) / math.sqrt(n) * _population_factor(n, n_listed)
        low, high = mean - half, mean + half
    return PairedDelta(
        metric=metric.name,
        mean_delta=mean,
        ci_low=low,
        ci_high=high,
        p_value=None,
        n=n,
        higher_is_better=metric.higher_is_better,
        n_excluded=int(ref.size - n),
        confidence=confidence,
    )


def set_intervals(
    gt_features: np.ndarray,
    ref_features: np.ndarray,
    cand_features: np.ndarray,
    ref_probs: np.ndarray,
    cand_probs: np.ndarray,
    *,
    n_listed: int,
    critical: float,
    confidence: float,
    n_resamples: int,
    seed: int,
    fid_method: str = "auto",
    metrics: Collection[str] | None = None,
) -> dict[str, SetDelta]:
    """IS, FID and KID differences at the current n with intervals valid over all looks.

    The paired bootstrap of :func:`evalkit.stats.comparison.set_deltas` (resampling pairs) gives the
    standard error: half its central 68.27 % percentile interval. The interval is the difference ± that
    times ``critical`` and ``sqrt(1 - n / N)``, centred on the difference measured on the n pairs.

    ``metrics``: the set metrics to compute (default all; see ``set_deltas``).

    Returns
    -------
    dict of str to SetDelta
        Set metric key -> difference (those of ``metrics``); NaN intervals when ``n_resamples`` is 0.

    Notes
    -----
    The bootstrap is the costly part of a look: about ``n_resamples`` symmetric eigenvalue problems of
    size ~0.63 n for FID. Its resamples hold ~63 % distinct pairs, which shifts FID and KID of a resample;
    only the spread of the differences is used, never their level.
    """
    one_se = set_deltas(
        gt_features,
        ref_features,
        cand_features,
        ref_probs,
        cand_probs,
        n_resamples=n_resamples,
        seed=seed,
        confidence=_ONE_SE_LEVEL,
        kid_seed=seed,
        fid_method=fid_method,  # type: ignore[arg-type]
        metrics=metrics,
    )
    factor = _population_factor(len(gt_features), n_listed)
    out = {}
    for key, d in one_se.items():
        half = critical * (d.ci_high - d.ci_low) / 2.0 * factor
        out[key] = replace(d, ci_low=d.delta - half, ci_high=d.delta + half, confidence=confidence)
    return out


def decide(delta: PairedDelta | SetDelta, allowance: float) -> Decision | None:
    """PASS when the interval's worse-side bound is within ``allowance``, FAIL when even its better-side
    bound is beyond it, else ``None`` (undecided). Uses the report's rules
    (:func:`~evalkit.stats.comparison.within_allowance`, :func:`~evalkit.stats.comparison.beyond_allowance`).
    """
    if not math.isfinite(allowance):
        return None
    if within_allowance(delta, allowance):
        return "PASS"
    if beyond_allowance(delta, allowance):
        return "FAIL"
    return None


# ------------------------------------------------------------------------------------------ the looks


@dataclass(frozen=True)
class LookData:
    """The evaluated pairs among the first n of the order: what a look judges.

    Attributes
    ----------
    gt_features : numpy.ndarray
        n x d verifier features of the ground truths.
    per_image : Mapping
        model -> per-image metric key -> n values.
    features, probabilities : Mapping
        model -> n x d features, n x C softmax rows.
    """

    gt_features: np.ndarray
    per_image: Mapping[str, Mapping[str, np.ndarray]]
    features: Mapping[str, np.ndarray]
    probabilities: Mapping[str, np.ndarray]

    @property
    def n(self) -> int:
        return int(self.gt_features.shape[0])


def look_data(gt_features: np.ndarray, outputs: Mapping[str, ModelOutputs]) -> LookData:
    """:class:`LookData` from the pipeline's stacked records (:func:`evalkit.execution.pipeline.collect`)."""
    per_image = {
        name: {
            key: np.array([s.values[key] for s in out.samples], dtype=np.float64)
            for key in (out.samples[0].values if out.samples else {})
        }
        for name, out in outputs.items()
    }
    return LookData(
        gt_features=gt_features,
        per_image=per_image,
        features={name: out.features for name, out in outputs.items()},
        probabilities={name: out.probabilities for name, out in outputs.items()},
    )


def _baseline(metric: Metric, values: np.ndarray) -> float:
    # The reference model's value that a relative allowance is taken of, as the summary computes it.
    finite = values[np.isfinite(values)] if metric.finite_mean else values
    return float(finite.mean()) if finite.size else math.nan


class SequentialGate:
    """The decisions of a sequential gate, look by look (the pipeline's and the benchmark's one rule).

    Parameters
    ----------
    settings : SequentialSpec
        ``alpha`` and ``look_every``.
    gate : GateSpec
        The allowances; its metrics that the run computes are gated.
    metrics : MetricSpec
        The run's metric settings: ``profile`` (the extended metrics are gated only with ``all``),
        ``bootstrap`` and ``seed`` (the set metrics' bootstrap; 0 resamples leave them to the full run),
        ``fid_method``; ``seed`` also draws the order.
    reference : str
        The reference model.
    candidates : sequence of str
        The models gated against it.
    n_listed : int
        Pairs listed (N).

    Notes
    -----
    Looks must be made in order (:meth:`look`); a resumed run replays them on the journaled records, which
    gives the same decisions since every step is deterministic.
    """

    def __init__(
        self,
        settings: SequentialSpec,
        gate: GateSpec,
        metrics: MetricSpec,
        reference: str,
        candidates: Sequence[str],
        n_listed: int,
    ) -> None:
        self.settings = settings
        self.gate = gate
        self.metric_spec = metrics
        self.reference = reference
        self.candidates = list(candidates)
        self.n_listed = n_listed
        self.looks = look_schedule(n_listed, settings.look_every)
        self.interim_looks = len(self.looks) - 1
        self.order = pair_order(n_listed, metrics.seed)
        extended = metrics.profile == "all"
        self.keys = [k for k in gate.metrics() if extended or METRICS_BY_KEY[k].profile == "reference"]
        self.confidence = 1.0 - 2.0 * settings.alpha
        self._decided: dict[tuple[str, str], SequentialDecision] = {}
        self._latest: dict[tuple[str, str], SequentialDecision] = {}
        self.looks_made = 0
        self.stop_look: int | None = None

    @property
    def stopped(self) -> bool:
        """True once every gated metric is decided or one has failed."""
        return self.stop_look is not None

    def fingerprint(self) -> dict[str, object]:
        """What a journal must match to be resumed: the order and the looks."""
        return {
            "order_seed": self.metric_spec.seed,
            "order_sha256": order_sha256(self.order),
            "n_listed": self.n_listed,
            "looks": list(self.looks),
            "alpha": self.settings.alpha,
        }

    def look(self, number: int, data: LookData) -> bool:
        """Judge interim look ``number`` (1-based) on ``data``; return whether the run should stop.

        Raises
        ------
        ValueError
            Looks out of order, or a look past the interim ones (the last look is the ordinary gate).
        """
        if number != self.looks_made + 1 or number > self.interim_looks:
            raise ValueError(
                f"SequentialGate.look: look {number} after {self.looks_made} (interim looks: "
                f"{self.interim_looks})"
            )
        self.looks_made = number
        if self.stopped:
            return True
        n = data.n
        if n >= MIN_LOOK_PAIRS:
            self._judge(number, data)
        pending = [(m, k) for m in self.candidates for k in self.keys if (m, k) not in self._decided]
        failed = any(d.verdict == "FAIL" for d in self._decided.values())
        if failed or not pending:
            self.stop_look = number
        return self.stopped

    def _judge(self, number: int, data: LookData) -> None:
        n = data.n
        critical = critical_value(self.settings.alpha, self.interim_looks, n)
        ref = self.reference
        set_keys = {m.key for m in SET_METRICS} & set(self.keys)
        for model in self.candidates:
            deltas: dict[str, PairedDelta | SetDelta] = {}
            baselines: dict[str, float] = {}
            pending = [k for k in self.keys if (model, k) not in self._decided]
            pending_sets = [k for k in pending if k in set_keys]
            if pending_sets and self.metric_spec.bootstrap > 0:
                sets = set_intervals(
                    data.gt_features,
                    data.features[ref],
                    data.features[model],
                    data.probabilities[ref],
                    data.probabilities[model],
                    n_listed=self.n_listed,
                    critical=critical,
                    confidence=self.confidence,
                    n_resamples=self.metric_spec.bootstrap,
                    seed=self.metric_spec.seed,
                    fid_method=self.metric_spec.fid_method,
                    metrics=pending_sets,  # a decided FID costs nothing more
                )
                for key in pending_sets:
                    deltas[key] = sets[key]
                    baselines[key] = sets[key].reference_value
            for key in pending:
                metric = METRICS_BY_KEY[key]
                if metric.kind == "per_image" and key in data.per_image.get(model, {}):
                    ref_values = data.per_image[ref][key]
                    deltas[key] = paired_interval(
                        metric,
                        ref_values,
                        data.per_image[model][key],
                        n_listed=self.n_listed,
                        critical=critical,
                        confidence=self.confidence,
                    )
                    baselines[key] = _baseline(metric, ref_values)
                if key not in deltas:
                    continue  # no sequential interval (e.g. IS over 10 splits): left to the full-run gate
                delta = deltas[key]
                allowance = self.gate.allowances[key].limit(baselines[key])
                verdict = decide(delta, allowance)
                point = delta.mean_delta if isinstance(delta, PairedDelta) else delta.delta
                record = SequentialDecision(
                    model=model,
                    metric=key,
                    verdict=verdict or "N/A",
                    decided_by="look" if verdict else "undecided",
                    look=number,
                    n=n,
                    delta=point,
                    ci_low=delta.ci_low,
                    ci_high=delta.ci_high,
                    allowance=allowance,
                    higher_is_better=metric.higher_is_better,
                )
                self._latest[(model, key)] = record
                if verdict is not None:
                    self._decided[(model, key)] = record

    @staticmethod
    def _blank(model: str, key: str, look: int | None, n: int) -> SequentialDecision:
        nan = math.nan
        hib = METRICS_BY_KEY[key].higher_is_better
        return SequentialDecision(model, key, "N/A", "undecided", look, n, nan, nan, nan, nan, hib)

    def outcome(self, n_done: int) -> SequentialRun:
        """The record of the run after ``n_done`` pairs of the order (results.json's ``sequential``)."""
        decisions = []
        for model in self.candidates:
            for key in self.keys:
                decided = self._decided.get((model, key))
                if decided is not None:
                    decisions.append(decided)
                    continue
                latest = self._latest.get((model, key))
                if self.stopped:  # stopped at another metric's FAIL: this one has no verdict
                    base = latest or self._blank(model, key, self.stop_look, 0)
                    decisions.append(replace(base, verdict="N/A", decided_by="undecided"))
                else:  # ran to the last pair: the ordinary gate's row holds the verdict
                    blank = self._blank(model, key, len(self.looks), n_done)
                    decisions.append(replace(blank, decided_by="full run"))
        return SequentialRun(
            method=METHOD,
            alpha=self.settings.alpha,
            look_every=self.settings.look_every,
            order_seed=self.metric_spec.seed,
            looks=self.looks,
            n_listed=self.n_listed,
            n_done=n_done,
            stopped_early=self.stopped and n_done < self.n_listed,
            stop_look=self.stop_look,
            decisions=tuple(decisions),
        )


# ------------------------------------------------------------------------------------- sample sizes


def sample_size(sd: float, difference: float, alpha: float, power: float = DEFAULT_POWER) -> int | None:
    """Pairs needed to tell a true difference of ``difference`` from zero: two-sided test at ``alpha``
    with ``power``, from the per-pair standard deviation ``sd`` of the difference.

    ``ceil(((z(1 - alpha/2) + z(power)) · sd / difference)^2)``; ``None`` when ``difference`` is not
    positive or ``sd`` is not finite. A ``sd`` of 0 needs 2 pairs.
    """
    if not (math.isfinite(sd) and math.isfinite(difference)) or difference <= 0:
        return None
    from statistics import NormalDist

    z = NormalDist().inv_cdf(1.0 - alpha / 2.0) + NormalDist().inv_cdf(power)
    return max(MIN_LOOK_PAIRS, math.ceil((z * sd / difference) ** 2))


@dataclass(frozen=True)
class PlanRow:
    """One gated metric of :func:`plan_pairs`.

    ``sd`` is the per-pair standard deviation of the difference (for a set metric: the bootstrap standard
    error of the run's comparison times sqrt(N)); ``pairs`` the pairs needed (None: no spread or no
    allowance); ``source`` says where ``sd`` came from.
    """

    model: str
    metric: str
    allowance: float
    sd: float
    pairs: int | None
    source: str


def plan_pairs(result: RunResult, alpha: float, power: float = DEFAULT_POWER) -> list[PlanRow]:
    """How many pairs each gated metric needs to tell a difference of its allowance from zero.

    Per-image metrics take the per-pair differences of ``result``'s samples; set metrics the bootstrap
    interval of its paired comparison (their spread per pair, ``SE · sqrt(N)``). Metrics with neither get a
    row with ``pairs=None``.

    Notes
    -----
    For FID and IS the spread measured at N is a guide only: both are biased in the number of images, so a
    smaller run measures a somewhat different difference.
    """
    from statistics import NormalDist

    ref = result.reference_model
    extended = result.has_extended
    keys = [k for k in result.config.gate.metrics() if extended or METRICS_BY_KEY[k].profile == "reference"]
    rows = []
    for model in result.models:
        if model == ref:
            continue
        for key in keys:
            metric = METRICS_BY_KEY[key]
            baseline = result.models[ref].metrics.get(key)
            allowance = result.config.gate.allowances[key].limit(math.nan if baseline is None else baseline)
            sd, source = math.nan, "no per-pair data or interval in the results"
            samples = (result.models[ref].samples, result.models[model].samples)
            if metric.kind == "per_image" and all(samples):
                ref_v = np.array([s.values[key] for s in samples[0]], dtype=np.float64)
                cand_v = np.array([s.values[key] for s in samples[1]], dtype=np.float64)
                used = np.isfinite(ref_v) & np.isfinite(cand_v)
                if used.sum() >= MIN_LOOK_PAIRS:
                    sd = float((cand_v[used] - ref_v[used]).std(ddof=1))
                    source = f"per-pair differences of {int(used.sum())} pairs"
            entry = None if result.comparison is None else result.comparison.entry(model, key)
            if metric.kind == "set" and entry is not None and entry.interval is not None:
                z = NormalDist().inv_cdf(0.5 + result.comparison.confidence / 2.0)  # type: ignore[union-attr]
                se = (entry.interval[1] - entry.interval[0]) / (2.0 * z)
                sd = se * math.sqrt(result.dataset.n_pairs)
                source = f"bootstrap interval of the comparison ({result.dataset.n_pairs} pairs)"
            rows.append(PlanRow(model, key, allowance, sd, sample_size(sd, allowance, alpha, power), source))
    return rows
