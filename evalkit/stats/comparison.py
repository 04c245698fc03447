"""Paired comparison of a candidate model with a reference model evaluated on the same N pairs.

Is the converted model's PSNR 0.06 dB lower than the original's because of the conversion, or is that noise
from evaluating on 2000 images? Both models translate the same N inputs, so the comparison is *paired*:

* per-sample metrics (PSNR, SSIM): :func:`paired_delta` takes the per-pair values of both models and gives
  the mean of the per-pair differences with a percentile bootstrap interval and a Wilcoxon signed-rank test;
* set metrics (IS, FID, KID): :func:`set_deltas` gives the difference of the metric on all pairs with a
  bootstrap interval that resamples *pairs* (the same rows of ground-truth, reference and candidate
  features together).

Both draw their resamples with :func:`bootstrap_indices`, so for one ``seed`` and N every metric is judged
on the same resampled evaluation sets. The set-metric bootstrap is exact and fast: each resample is a
vector of multiplicities over the N pairs, and FID, KID and IS of the resampled set are computed from
quantities precomputed once (Gram matrices of the centred features, kernel matrices, the probabilities),
without d x d work per resample; :func:`set_delta_samples` exposes the per-resample values.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg

from evalkit.metrics import fid, inception_score
from evalkit.metrics.fid import FidMethod, nuclear_norm, psd_factor
from evalkit.metrics.inception_score import DEFAULT_EPS as IS_EPS
from evalkit.metrics.kid import DEFAULT_SUBSET_SIZE, KERNEL_COEF0, KERNEL_DEGREE
from evalkit.metrics.registry import METRICS, Metric
from evalkit.number_format import format_number

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_RESAMPLES",
    "MIN_WILCOXON_PAIRS",
    "PairedDelta",
    "SetDelta",
    "SetDeltaSamples",
    "beyond_allowance",
    "bootstrap_indices",
    "paired_delta",
    "set_delta_samples",
    "set_deltas",
    "within_allowance",
]

#: Bootstrap resamples by default. Each end of a 95% percentile interval then carries a Monte-Carlo error of
#: about 0.2 standard errors (~10% of the half-width); use 1000 or more when the verdict is borderline.
DEFAULT_RESAMPLES: int = 200
DEFAULT_CONFIDENCE: float = 0.95
#: Fewest non-zero per-pair differences for a Wilcoxon p-value: with 6 the exact two-sided test can first
#: reach p < 0.05 (its smallest p is 2 / 2**n); with fewer the "test" cannot reject anything.
MIN_WILCOXON_PAIRS: int = 6

#: Set metrics of :func:`set_deltas` (the registry's ``comparison="set"`` entries: IS, FID, KID).
SET_METRICS: tuple[Metric, ...] = tuple(m for m in METRICS if m.comparison == "set")
#: Units appended to amounts in sentences, by lower-case display name (PSNR's is dB).
UNITS: dict[str, str] = {m.name.lower(): m.unit for m in METRICS if m.unit}
#: Decimals of amounts in sentences, by lower-case display name: the tables' (``Metric.decimals``).
DECIMALS: dict[str, int] = {m.name.lower(): m.decimals for m in METRICS}
#: Significant digits a small amount in a sentence keeps (sentences always showed 4; tables show 2).
SENTENCE_DIGITS: int = 4


# --- results -------------------------------------------------------------------------------------------


def _fmt(value: float, metric: str, *, signed: bool = False, significant: int = SENTENCE_DIGITS) -> str:
    """An amount of ``metric`` for a sentence: the metric's decimals, more for a small value, no unit."""
    decimals = DECIMALS.get(metric.lower(), 4)
    return format_number(value, decimals, signed=signed, significant=significant)


def worse_end(ci_low: float, ci_high: float, higher_is_better: bool, delta: float = math.nan) -> float:
    """How much worse the candidate is at the unfavourable end of the interval (negative: better there).

    With a finite ``delta`` (the point estimate) the larger worsening of the two: a set metric's interval
    can be shifted by resampling so that it excludes the estimate, and the gate judges the estimate, so
    "within the allowance" must never be said of an estimate that is beyond it.
    """
    worst = -ci_low if higher_is_better else ci_high
    if math.isfinite(delta):
        worst = max(worst, -delta if higher_is_better else delta)
    return worst


def within_allowance(delta: PairedDelta | SetDelta, allowance: float) -> bool | None:
    """Whether the difference is no worse than ``allowance``, judged one-sided like the gate.

    Non-inferiority: the interval's worse-side bound (its lower end when higher is better, its upper end
    otherwise) is worse than the reference by at most ``allowance``, so an improvement never counts
    against the candidate. ``None`` when there is no interval (bootstrap 0, fewer than 2 pairs) or no
    finite difference.

    Parameters
    ----------
    delta : PairedDelta or SetDelta
        The comparison.
    allowance : float
        The largest acceptable worsening in the metric's unit, >= 0 (``Allowance.limit(reference value)``
        of the run config's ``gate:`` spec).

    Returns
    -------
    bool or None
        True when even the worse end of the interval is within the allowance.
    """
    point = delta.mean_delta if isinstance(delta, PairedDelta) else delta.delta
    if not (math.isfinite(point) and math.isfinite(delta.ci_low) and math.isfinite(delta.ci_high)):
        return None
    return worse_end(delta.ci_low, delta.ci_high, delta.higher_is_better, point) <= allowance


def beyond_allowance(delta: PairedDelta | SetDelta, allowance: float) -> bool | None:
    """Whether even the interval's better-side bound is worse than ``allowance``: the mirror of
    :func:`within_allowance` (a sequential gate's FAIL).

    Its upper end when higher is better, its lower end otherwise, is worse than the reference by more than
    ``allowance``; a point estimate outside a shifted interval counts too (the better of the two, as
    :func:`worse_end` takes the worse). ``None`` without a finite interval and difference.
    """
    point = delta.mean_delta if isinstance(delta, PairedDelta) else delta.delta
    if not (math.isfinite(point) and math.isfinite(delta.ci_low) and math.isfinite(delta.ci_high)):
        return None
    # worse_end with the interval's ends swapped measures the better end's worsening; min() with the
    # estimate's, as worse_end's max() for the worse side.
    better = worse_end(delta.ci_high, delta.ci_low, delta.higher_is_better)
    better = min(better, -point if delta.higher_is_better else point)
    return better > allowance


def _allowance_clause(
    delta: float,
    ci_low: float,
    ci_high: float,
    *,
    metric: str,
    higher_is_better: bool,
    allowance: float | None,
) -> str:
    """The practical-significance sentence after the statistical one; empty without an allowance."""
    if allowance is None:
        return ""
    unit = UNITS.get(metric.lower(), "")
    # A configured allowance is a round number (0.1 dB, 0.001): its own digits, not padded to 4.
    limit = f"the gate's allowance of {_fmt(allowance, metric, significant=1)}{unit}"
    worst = worse_end(ci_low, ci_high, higher_is_better, delta)
    if worst <= 0.0:
        return f" Within {limit}: not worse even at the interval's worse end."
    if worst <= allowance:
        return f" Practically equal: even the interval's worse end is within {limit}."
    # A shifted interval (see _verdict) can lie on the better side of the estimate: name what is worse.
    interval_worst = worse_end(ci_low, ci_high, higher_is_better)
    beyond = "the interval's worse end" if worst == interval_worst else "the estimate"
    return f" Not shown to be within {limit}: {beyond} is {_fmt(worst, metric)}{unit} worse."


def _percent(confidence: float) -> str:
    return f"{100 * confidence:g}%"


def _verdict(
    delta: float,
    ci_low: float,
    ci_high: float,
    *,
    metric: str,
    higher_is_better: bool,
    confidence: float,
    candidate: str,
    reference: str,
    extra: str,
    allowance: float | None = None,
) -> str:
    """The sentence of :class:`PairedDelta` and :class:`SetDelta`; ``extra`` goes inside the brackets, and
    with an ``allowance`` a second sentence says whether the interval's worse end is within it."""
    unit = UNITS.get(metric.lower(), "")
    tail = f", {extra}" if extra else ""
    if not math.isfinite(delta):
        return f"{candidate} and {reference} cannot be compared on {metric}: no finite difference{tail}."
    if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
        return (
            f"{candidate} differs from {reference} on {metric} by Δ {_fmt(delta, metric, signed=True)}{unit} "
            f"(no confidence interval was computed, so this says nothing about noise{tail})."
        )
    practical = _allowance_clause(
        delta, ci_low, ci_high, metric=metric, higher_is_better=higher_is_better, allowance=allowance
    )
    if not ci_low <= delta <= ci_high:
        # Possible when the metric is biased on resamples (duplicated pairs): the interval is then shifted.
        notes = [extra] if extra else []
        extra = "; ".join([*notes, "the estimate lies outside its interval, which is shifted by resampling"])
        tail = f", {extra}"
    low, high = _fmt(ci_low, metric, signed=True), _fmt(ci_high, metric, signed=True)
    interval = f"{_percent(confidence)} CI [{low}, {high}]"
    if ci_low <= 0.0 <= ci_high:
        return (
            f"{candidate} is within noise of {reference} on {metric} "
            f"(Δ {_fmt(delta, metric, signed=True)}{unit}, {interval}{tail}).{practical}"
        )
    # The interval excludes 0: its side gives the direction; amounts are magnitudes ("worse by 0.4100, 95%
    # CI [0.1200, 0.7000]" also for a PSNR delta of -0.41 dB with interval [-0.7, -0.12]).
    better = (ci_low > 0.0) == higher_is_better
    magnitude_low, magnitude_high = sorted((abs(ci_low), abs(ci_high)))
    amount = (
        f"{_fmt(abs(delta), metric)}{unit}, {_percent(confidence)} CI "
        f"[{_fmt(magnitude_low, metric)}, {_fmt(magnitude_high, metric)}]"
    )
    word = "better" if better else "worse"
    suffix = f" ({extra})" if extra else ""
    return f"{candidate} is {word} than {reference} on {metric} by {amount}{suffix}.{practical}"


@dataclass(frozen=True)
class PairedDelta:
    """Paired difference (candidate - reference) of a per-sample metric, e.g. PSNR or SSIM.

    Attributes
    ----------
    metric : str
        Display name, e.g. ``"PSNR"`` (``"PSNR"`` in any case gets the unit dB in sentences).
    mean_delta : float
        Mean over the used pairs of ``candidate - reference``; NaN when no pair has two finite values.
    ci_low, ci_high : float
        Percentile bootstrap interval of the mean delta (resampling pairs); NaN when ``n_resamples=0`` or
        fewer than 2 pairs were used.
    p_value : float or None
        Two-sided Wilcoxon signed-rank p-value of the used deltas (``scipy.stats.wilcoxon`` defaults); None
        when fewer than :data:`MIN_WILCOXON_PAIRS` deltas are non-zero (e.g. identical outputs).
    n : int
        Pairs used: those where both values are finite.
    higher_is_better : bool
        Direction of the metric (True for PSNR and SSIM).
    n_excluded : int
        Pairs left out because a value was ``+inf`` (PSNR of an image identical to the ground truth).
    confidence : float
        Level of the interval, e.g. 0.95.
    """

    metric: str
    mean_delta: float
    ci_low: float
    ci_high: float
    p_value: float | None
    n: int
    higher_is_better: bool
    n_excluded: int = 0
    confidence: float = DEFAULT_CONFIDENCE

    def sentence(self, candidate: str, reference: str, allowance: float | None = None) -> str:
        """One plain-English sentence, e.g. for ``candidate="converted"``, ``reference="original"``.

        ``"converted is within noise of original on PSNR (Δ -0.01200 dB, 95% CI [-0.03000, +0.01000],
        Wilcoxon p = 0.21)."`` when the interval contains 0, else ``"converted is worse than original on
        PSNR by 0.4100 dB, 95% CI [0.1200, 0.7000] (Wilcoxon p = 0.003)."``. In a better/worse sentence the
        amount and the interval are magnitudes (the interval of ``|Δ|``); the within-noise sentence gives
        the signed Δ. Amounts have the metric's decimals and at least 4 significant digits.

        With ``allowance`` (the gate's largest acceptable worsening, in the metric's unit) a second
        sentence says whether even the interval's worse end is within it (:func:`within_allowance`), e.g.
        ``"Practically equal: even the interval's worse end is within the gate's allowance of 0.01000."``.
        """
        notes = []
        if self.p_value is not None:
            notes.append(f"Wilcoxon p = {self.p_value:.2g}")
        if self.n_excluded:
            notes.append(
                f"{self.n_excluded} of {self.n + self.n_excluded} pairs with an infinite value left out"
            )
        return _verdict(
            self.mean_delta,
            self.ci_low,
            self.ci_high,
            metric=self.metric,
            higher_is_better=self.higher_is_better,
            confidence=self.confidence,
            candidate=candidate,
            reference=reference,
            extra="; ".join(notes),
            allowance=allowance,
        )


@dataclass(frozen=True)
class SetDelta:
    """Difference (candidate - reference) of a set metric (IS, FID, KID) over all pairs.

    Attributes
    ----------
    metric : str
        Display name: ``"IS"``, ``"FID"`` or ``"KID"``.
    delta : float
        ``candidate_value - reference_value``.
    ci_low, ci_high : float
        Percentile bootstrap interval of the difference, resampling pairs jointly; NaN when
        ``n_resamples=0``.
    n_resamples : int
        Bootstrap resamples behind the interval.
    higher_is_better : bool
        True for IS, False for FID and KID.
    reference_value, candidate_value : float
        The metric of each model on all pairs.
    confidence : float
        Level of the interval, e.g. 0.95.
    """

    metric: str
    delta: float
    ci_low: float
    ci_high: float
    n_resamples: int
    higher_is_better: bool
    reference_value: float = math.nan
    candidate_value: float = math.nan
    confidence: float = DEFAULT_CONFIDENCE

    def sentence(self, candidate: str, reference: str, allowance: float | None = None) -> str:
        """One plain-English sentence, e.g. ``"converted is worse than original on FID by 0.4100, 95% CI
        [0.1200, 0.7000]."`` or ``"converted is within noise of original on IS (Δ +0.01000, 95% CI
        [-0.2000, +0.1900])."``; ``allowance`` as in :meth:`PairedDelta.sentence`.
        """
        return _verdict(
            self.delta,
            self.ci_low,
            self.ci_high,
            metric=self.metric,
            higher_is_better=self.higher_is_better,
            confidence=self.confidence,
            candidate=candidate,
            reference=reference,
            extra="",
            allowance=allowance,
        )


@dataclass(frozen=True)
class SetDeltaSamples:
    """Per-resample values of the set metrics, as computed inside :func:`set_deltas`.

    Attributes
    ----------
    indices : numpy.ndarray
        ``n_resamples x N`` pair indices of each resample (:func:`bootstrap_indices`): resample ``b`` is
        the evaluation set ``gt_features[indices[b]]``, ``ref_features[indices[b]]``, ...
    reference, candidate : dict of str to numpy.ndarray
        ``"is"``, ``"fid"``, ``"kid"`` -> the metric of that model on each resample (length
        ``n_resamples``).
    """

    indices: np.ndarray
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    candidate: dict[str, np.ndarray] = field(default_factory=dict)

    def deltas(self, key: str) -> np.ndarray:
        """Candidate minus reference on each resample, for ``key`` in ``"is"``, ``"fid"``, ``"kid"``."""
        return self.candidate[key] - self.reference[key]


# --- shared helpers ------------------------------------------------------------------------------------


def _check_int(func: str, name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{func}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_confidence(func: str, confidence: float) -> float:
    if not (isinstance(confidence, (float, int, np.floating)) and 0.0 < float(confidence) < 1.0):
        raise ValueError(f"{func}: confidence must be a number in (0, 1), e.g. 0.95, got {confidence!r}")
    return float(confidence)


def bootstrap_indices(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """Resampled pair indices: ``n_resamples`` rows of ``n`` indices drawn with replacement from ``range(n)``.

    Parameters
    ----------
    n : int
        Number of pairs, >= 1.
    n_resamples : int
        Number of resamples, >= 0.
    seed : int
        Seed of ``np.random.default_rng``.

    Returns
    -------
    numpy.ndarray
        ``n_resamples x n`` int64 array, ``rng.integers(0, n, size=(n_resamples, n))``.

    Notes
    -----
    Every resample has the full size ``n``: FID (and the spread of any mean) depends on the number of
    images, so a smaller resample would not estimate the variability of the N-image value. The same
    ``(n, n_resamples, seed)`` always gives the same indices, which is how :func:`paired_delta` and
    :func:`set_deltas` judge all metrics on the same resampled evaluation sets.
    """
    n = _check_int("bootstrap_indices", "n", n, 1)
    n_resamples = _check_int("bootstrap_indices", "n_resamples", n_resamples, 0)
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """Multiplicity of each of the ``n`` pairs in each resample: rows of ``indices`` -> float64 counts."""
    rows = indices.shape[0]
    flat = (np.arange(rows)[:, None] * n + indices).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.float64)


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of the bootstrap samples (NaN samples dropped; NaN if none left)."""
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)


# --- per-sample metrics --------------------------------------------------------------------------------


def _per_sample_values(name: str, values: np.ndarray) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise ValueError(
            f"paired_delta: {name} must be a 1-D real array with one value per pair, got shape {array.shape} "
            f"and dtype {array.dtype}"
        )
    array = array.astype(np.float64)
    if np.isnan(array).any() or np.isneginf(array).any():
        raise ValueError(
            f"paired_delta: {name} contains NaN or -inf, which no valid per-image metric produces; fix the "
            "metric computation upstream (only +inf, from an image identical to its ground truth, is allowed)"
        )
    return array


def _wilcoxon_p(deltas: np.ndarray) -> float | None:
    if np.count_nonzero(deltas) < MIN_WILCOXON_PAIRS:
        return None
    import scipy.stats  # here, not at the top: it adds about a second to every start-up

    return float(scipy.stats.wilcoxon(deltas).pvalue)


def paired_delta(
    metric: str,
    reference_values: np.ndarray,
    candidate_values: np.ndarray,
    *,
    higher_is_better: bool,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> PairedDelta:
    """Mean paired difference of a per-sample metric, with a bootstrap interval and a Wilcoxon test.

    Parameters
    ----------
    metric : str
        Display name for the sentence, e.g. ``"PSNR"``.
    reference_values, candidate_values : numpy.ndarray
        Per-pair values of the two models, length N, in the same pair order (value ``i`` of both models
        comes from input pair ``i``). ``+inf`` is allowed (PSNR of an image identical to its ground truth).
    higher_is_better : bool
        Direction of the metric: True for PSNR and SSIM.
    n_resamples : int
        Bootstrap resamples (default 200); 0 disables the interval (NaN).
    seed : int
        Seed of the resampling (:func:`bootstrap_indices`).
    confidence : float
        Level of the two-sided percentile interval (default 0.95).

    Returns
    -------
    PairedDelta
        Mean delta, interval, p-value, pairs used; ``.sentence("converted", "original")`` phrases it.

    Raises
    ------
    ValueError
        If the inputs are not 1-D real arrays of the same non-zero length, contain NaN or ``-inf``, or the
        options are out of range.

    Notes
    -----
    * Paired design: the statistic is the mean of per-pair differences, so the difficulty of each image
      (which moves both models' PSNR together) cancels; comparing two independent means with their own
      error bars would ignore that correlation and call real differences noise.
    * Infinite values: a pair is used only if both values are finite; ``n`` counts the used pairs and
      ``n_excluded`` the others (reported in the sentence). Resampling still draws from all N pairs and
      each resample averages its finite pairs, so PSNR and SSIM of one run share their resampled sets.
      A pair where only one model is ``+inf`` (a perfect output) is a real difference that no finite
      delta can express: if ``n_excluded`` is not 0, look at those pairs.
    * Bootstrap: the pairs are resampled with replacement ``n_resamples`` times, the mean delta of each
      resample is recorded, and the interval is the equal-tailed percentile interval of those means. It
      describes how much the mean delta would move with another evaluation set of the same size drawn
      like this one; it does not cover other sources of variation (other data sets, seeds, hardware). An
      interval containing 0 means "no detectable difference at this N", not "equal".
    * The Wilcoxon signed-rank test asks whether the deltas are symmetric around 0 (roughly: is the
      median delta 0); the interval is about the mean. They usually agree; when they do not, the deltas
      are skewed (a few pairs with large changes) and both are worth a look.
    * With several metrics compared at 95% each, one of about twenty will look "significant" by chance.
    """
    ref = _per_sample_values("reference_values", reference_values)
    cand = _per_sample_values("candidate_values", candidate_values)
    if ref.shape != cand.shape or ref.size == 0:
        raise ValueError(
            f"paired_delta: reference_values and candidate_values must have the same non-zero length (one "
            f"value per pair, same pair order), got {ref.size} and {cand.size}"
        )
    n_resamples = _check_int("paired_delta", "n_resamples", n_resamples, 0)
    confidence = _check_confidence("paired_delta", confidence)
    used = np.isfinite(ref) & np.isfinite(cand)
    deltas = np.zeros_like(ref)
    # Subtract only where both are finite: inf - inf would be NaN (and warn).
    np.subtract(cand, ref, out=deltas, where=used)
    n = int(used.sum())
    used_deltas = deltas[used]
    mean_delta = float(np.mean(used_deltas)) if n else math.nan

    ci_low = ci_high = math.nan
    if n_resamples and n >= 2:
        indices = bootstrap_indices(ref.size, n_resamples, seed)
        # Excluded pairs carry delta 0 and do not count, so each resample averages its finite pairs.
        counts = used[indices].sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = deltas[indices].sum(axis=1) / counts
        ci_low, ci_high = _percentile_interval(means, confidence)
    return PairedDelta(
        metric=metric,
        mean_delta=mean_delta,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=_wilcoxon_p(used_deltas),
        n=n,
        higher_is_better=bool(higher_is_better),
        n_excluded=int(ref.size - n),
        confidence=confidence,
    )


# --- set metrics: exact fast bootstrap -----------------------------------------------------------------


def _set_features(name: str, features: np.ndarray) -> np.ndarray:
    array = np.asarray(features)
    real = np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    if array.ndim != 2 or not real or array.shape[1] == 0:
        raise ValueError(
            f"set_deltas: {name} must be a real N x d array (one verifier feature row per pair), got shape "
            f"{array.shape} and dtype {array.dtype}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"set_deltas: {name} contains NaN or inf; check the verifier output")
    return array


def _sum_sqrt_eigenvalues(symmetric: np.ndarray) -> float:
    """``sum(sqrt(eigenvalues))`` of a symmetric PSD matrix; round-off negatives count as 0."""
    if symmetric.size == 0:
        return 0.0
    # Values only: LAPACK ?syevd is then tridiagonalisation + the root-free QR of ?sterf, robust to the
    # clustered small eigenvalues of low-rank features. The matrix is a temporary, so overwrite it.
    eigenvalues = scipy.linalg.eigvalsh(symmetric, driver="evd", check_finite=False, overwrite_a=True)
    return float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())


class _SetBootstrap:
    """Everything precomputed once for the exact per-resample IS, FID and KID of both models.

    Notation: sets ``g`` (ground truth), ``r`` (reference), ``c`` (candidate); ``X_s`` the float64
    features, ``m_s`` their mean over all N pairs, ``Xc_s = X_s - m_s``; a resample is a vector ``w`` of
    multiplicities (``sum w = N``).
    """

    def __init__(
        self,
        gt: np.ndarray,
        ref: np.ndarray,
        cand: np.ndarray,
        ref_probs: np.ndarray,
        cand_probs: np.ndarray,
        *,
        kid_subsets: int | None,
        kid_subset_size: int,
        kid_seed: int,
    ) -> None:
        self.n, self.d = gt.shape
        features = {"g": gt, "r": ref, "c": cand}
        # float64 throughout: the Gram matrices feed eigenvalues whose square roots amplify round-off.
        self.mean = {k: v.astype(np.float64).mean(axis=0) for k, v in features.items()}
        self.centred = {k: v.astype(np.float64) - self.mean[k] for k, v in features.items()}
        cg = self.centred["g"]
        # Centred Grams: the covariances are shift-invariant, and centring first avoids the cancellation of
        # a large common mean; N x N each (N <= d is the realistic case, where they are the small side).
        self.gram = {
            "gg": cg @ cg.T,
            "rr": self.centred["r"] @ self.centred["r"].T,
            "cc": self.centred["c"] @ self.centred["c"].T,
            "gr": cg @ self.centred["r"].T,
            "gc": cg @ self.centred["c"].T,
        }
        self.probs = {"r": ref_probs.astype(np.float64), "c": cand_probs.astype(np.float64)}
        self.kid_subsets = kid_subsets
        self.kid_subset_size = min(kid_subset_size, self.n)
        self.kid_seed = kid_seed

    # --- IS ----------------------------------------------------------------------------------------

    def inception(self, counts: np.ndarray, model: str) -> np.ndarray:
        """Inception Score of ``model``'s probs on each resample (rows of ``counts``), 1 split."""
        probs = self.probs[model]
        # IS = exp(mean_i sum_j p_ij (log(p_ij + eps) - log(pm_j + eps))), split into a per-row term and a
        # term of the (weighted) marginal only: sum_i w_i h_i - (w^T P) . log(pm + eps), pm = w^T P / N.
        row_term = (probs * np.log(probs + IS_EPS)).sum(axis=1)
        weighted = counts @ probs
        marginal_term = (weighted * np.log(weighted / self.n + IS_EPS)).sum(axis=1)
        return np.exp((counts @ row_term - marginal_term) / self.n)

    # --- KID ---------------------------------------------------------------------------------------

    def _kernel(self, x: str, y: str) -> np.ndarray:
        """``(X_x X_y^T / d + 1) ** 3`` (raw features) from the centred Gram plus its rank-one corrections."""
        raw = self.gram[x + y] + (self.centred[x] @ self.mean[y])[:, None]
        raw += (self.centred[y] @ self.mean[x])[None, :]
        raw += float(self.mean[x] @ self.mean[y])
        raw /= self.d
        raw += KERNEL_COEF0
        return np.power(raw, KERNEL_DEGREE, out=raw)

    def _mmd2(
        self, counts_a: np.ndarray, counts_b: np.ndarray, size: int, kernels: dict[str, np.ndarray] | None
    ) -> dict[str, np.ndarray]:
        """Unbiased MMD^2 (``evalkit.metrics.kid.mmd2_unbiased``) of row-sets given as count vectors.

        Row ``s`` of ``counts_a`` (``counts_b``) counts how often each of the N pairs appears in the
        ground-truth (model) sample of ``size`` positions. The within sums over distinct *positions* are
        ``c^T K c - sum_i c_i K_ii`` (duplicated pairs at two positions do count, as in the metric applied
        to the resampled array); the cross sum is ``c_a^T K c_b``. ``kernels`` caches the kernel matrices
        across calls; without it each is built, used once and dropped (peak memory one N x N kernel).
        """

        def kernel(key: str) -> np.ndarray:
            if kernels is None:
                return self._kernel(key[0], key[1])
            if key not in kernels:
                kernels[key] = self._kernel(key[0], key[1])
            return kernels[key]

        def within(matrix: np.ndarray, c: np.ndarray) -> np.ndarray:
            return ((c @ matrix) * c).sum(axis=1) - c @ np.diagonal(matrix)

        gt_within = within(kernel("gg"), counts_a)  # shared by both models (same ground-truth sample)
        values = {}
        for model in ("r", "c"):
            cross = ((counts_a @ kernel("g" + model)) * counts_b).sum(axis=1)
            within_model = within(kernel(model * 2), counts_b)
            values[model] = (gt_within + within_model) / (size * (size - 1)) - 2.0 * cross / (size * size)
        return values

    def kid(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """KID of both models on each resample (rows of ``indices``; ``arange(N)`` is the full set)."""
        if self.kid_subsets is None:
            counts = _counts(indices, self.n)
            return self._mmd2(counts, counts, self.n, None)
        # The subsets estimator of evalkit.metrics.kid with seed kid_seed, applied to each resampled array:
        # subset s takes positions rows_a[s] of the resampled ground truth and rows_b[s] of the resampled
        # model features. The positions do not depend on the resample, so they are drawn once, exactly as
        # kid() draws them (a then b, per subset), and mapped through each resample's indices.
        rng = np.random.default_rng(self.kid_seed)
        size = self.kid_subset_size
        rows_a = np.empty((self.kid_subsets, size), dtype=np.int64)
        rows_b = np.empty_like(rows_a)
        for s in range(self.kid_subsets):
            rows_a[s] = rng.choice(self.n, size, replace=False)
            rows_b[s] = rng.choice(self.n, size, replace=False)
        kernels: dict[str, np.ndarray] = {}
        out = {"r": np.empty(len(indices)), "c": np.empty(len(indices))}
        for b, resample in enumerate(indices):
            values = self._mmd2(
                _counts(resample[rows_a], self.n), _counts(resample[rows_b], self.n), size, kernels
            )
            for model in out:
                out[model][b] = np.mean(values[model])
        return out

    # --- FID ---------------------------------------------------------------------------------------

    def fid(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        """FID(gt, model) of both models on each resample (rows of ``counts``)."""
        n = self.n
        g = self.gram
        # Batched O(R N^2) parts: weighted traces and mean terms for all resamples at once.
        quad = {key: ((counts @ gram) * counts).sum(axis=1) for key, gram in g.items()}
        # tr S_s(w) = (sum_i w_i |xc_i|^2 - N |delta_s|^2) / (N - 1), delta_s = Xc_s^T w / N.
        trace = {s: (counts @ np.diagonal(g[s * 2]) - quad[s * 2] / n) / (n - 1) for s in "grc"}
        out = {}
        for s in "rc":
            gs = "g" + s
            shift = self.mean["g"] - self.mean[s]
            # |mu_g(w) - mu_s(w)|^2 with mu(w) = m + delta(w), expanded into Grams and N-vectors only.
            along = counts @ (self.centred["g"] @ shift - self.centred[s] @ shift)
            mean_term = shift @ shift + 2.0 * along / n + (quad["gg"] - 2.0 * quad[gs] + quad[s * 2]) / n**2
            # Xc_g delta_s and Xc_s delta_g of every resample (rows): centring corrections of the cross Gram.
            left = (counts @ g[gs].T) / n
            right = (counts @ g[gs]) / n
            tr_sqrt = np.empty(len(counts))
            for b, w in enumerate(counts):
                tr_sqrt[b] = self._trace_sqrt(w, s, left[b], right[b], quad[gs][b] / n**2)
            out[s] = mean_term + trace["g"] + trace[s] - 2.0 * tr_sqrt
        return out

    def _trace_sqrt(
        self, w: np.ndarray, s: str, left: np.ndarray, right: np.ndarray, product: float
    ) -> float:
        """``tr sqrt(S_g(w) S_s(w))`` of one resample, exactly, on the smaller side (pairs or dimensions).

        ``left``, ``right`` are ``G w / N`` and ``G^T w / N`` for the centred cross Gram ``G = Xc_g Xc_s^T``,
        ``product`` is ``w^T G w / N^2``.
        """
        n = self.n
        rows = np.flatnonzero(w)
        if rows.size < 2:
            return 0.0  # every position is the same pair: both covariances are 0
        # Pivot on a smallest-weight pair: q0 = sqrt(w0 / N) far from 1 keeps 1 / (1 - q0) tame.
        pivot = int(np.argmin(w[rows]))
        rows[[0, pivot]] = rows[[pivot, 0]]
        root_w = np.sqrt(w[rows])
        if rows.size - 1 > self.d:
            return self._trace_sqrt_features(w, rows, root_w, s)
        # With delta_s = Xc_s^T w / N and Z_s = diag(sqrt(w_U)) (Xc_s[U] - delta_s), the covariance is
        # S_s(w) = Z_s^T Z_s / (N - 1) and tr sqrt(S_g S_s) = ||Z_g Z_s^T||_* / (N - 1). Entry (i, j) of
        # C = Z_g Z_s^T is sqrt(w_i w_j) (G[i, j] - left_i - right_j + product): a block of G plus rank one.
        # The rows of Z sum to 0 with weights sqrt(w) (the centring), an exact null direction whose round-off
        # would enter the trace through a square root. As in centred_coordinates, reflect q = sqrt(w_U / N)
        # onto the first axis (Householder, v = q - e1) and drop that zero row and column: row k >= 1 of H Z
        # is Z_k + q_k Z_0 / (1 - q_0). Folding centring and reflection into two vectors u, v gives
        #     C_red = D (G[U', U'] + u 1^T + 1 v^T) D,   D = diag(sqrt(w_U')),  U' = U without the pivot,
        # i.e. one gather and four elementwise passes, no temporary outer products.
        pivot_row = rows[0]
        rest = rows[1:]
        gram = self.gram["g" + s]
        reflect = 1.0 / (1.0 - root_w[0] / math.sqrt(n))
        a0, b0 = left[pivot_row], right[pivot_row]
        a_rest, b_rest = left[rest], right[rest]
        factor = reflect * root_w[0] / math.sqrt(n)  # s q0 with s = 1 / (1 - q0)
        c00 = w[pivot_row] * (gram[pivot_row, pivot_row] - a0 - b0 + product)
        u = (product - a_rest) + factor * (gram[rest, pivot_row] - a_rest - b0 + product)
        u += reflect * reflect * c00 / n
        v = factor * (gram[pivot_row, rest] - a0 - b_rest + product) - b_rest
        reduced = gram.take(rest, axis=0).take(rest, axis=1)
        reduced += u[:, None]
        reduced += v[None, :]
        root_rest = root_w[1:]
        reduced *= root_rest[:, None]
        reduced *= root_rest[None, :]
        # Nuclear norm = sum of sqrt of the eigenvalues of the PSD C C^T (values only, no SVD).
        return _sum_sqrt_eigenvalues(reduced @ reduced.T) / (n - 1)

    def _trace_sqrt_features(self, w: np.ndarray, rows: np.ndarray, root_w: np.ndarray, s: str) -> float:
        """Same as :meth:`_trace_sqrt` on the d side, for resamples with more distinct pairs than d + 1."""
        n = self.n
        factors = []
        for key in ("g", s):
            centred = self.centred[key]
            delta = (w @ centred) / n
            z = root_w[:, None] * (centred[rows] - delta)
            # d x d weighted scatter matrix, factored by the rank-revealing pivoted Cholesky of the metric.
            scatter = z.T @ z
            factors.append(psd_factor((scatter + scatter.T) / 2))
        return nuclear_norm(factors[1].T @ factors[0]) / (n - 1)

    def run(
        self, indices: np.ndarray, keys: Collection[str] = ("is", "fid", "kid")
    ) -> tuple[SetDeltaSamples, dict[str, float]]:
        """Per-resample values of the metrics ``keys``, and KID of both models on all pairs (same kernel
        pass; NaN without ``"kid"``)."""
        counts = _counts(indices, self.n)
        samples = SetDeltaSamples(indices=indices)
        full_kid = {"r": math.nan, "c": math.nan}
        if "kid" in keys:
            kids = self.kid(np.vstack([np.arange(self.n), indices]))
            full_kid = {model: float(kids[model][0]) for model in "rc"}
            for model, out in (("r", samples.reference), ("c", samples.candidate)):
                out["kid"] = kids[model][1:]
        if "fid" in keys:
            fids = self.fid(counts)
            samples.reference["fid"], samples.candidate["fid"] = fids["r"], fids["c"]
        if "is" in keys:
            samples.reference["is"] = self.inception(counts, "r")
            samples.candidate["is"] = self.inception(counts, "c")
        return samples, full_kid


def _prepare(
    gt_features: np.ndarray,
    ref_features: np.ndarray,
    cand_features: np.ndarray,
    ref_probs: np.ndarray,
    cand_probs: np.ndarray,
    *,
    n_resamples: int,
    kid_subsets: int | None,
    kid_subset_size: int,
    kid_seed: int,
) -> tuple[_SetBootstrap, int]:
    gt = _set_features("gt_features", gt_features)
    ref = _set_features("ref_features", ref_features)
    cand = _set_features("cand_features", cand_features)
    if not gt.shape == ref.shape == cand.shape or gt.shape[0] < 2:
        raise ValueError(
            "set_deltas: gt_features, ref_features and cand_features must have the same shape N x d with "
            f"N >= 2 (row i of each from pair i), got {gt.shape}, {ref.shape} and {cand.shape}"
        )
    probs = []
    for name, value in (("ref_probs", ref_probs), ("cand_probs", cand_probs)):
        array = np.asarray(value)
        if array.ndim != 2 or array.shape[0] != gt.shape[0]:
            raise ValueError(
                f"set_deltas: {name} must be an N x C array of softmax rows with N = {gt.shape[0]} (one per "
                f"pair, same order as the features), got shape {array.shape}"
            )
        inception_score(array)  # validates the rows (finite, non-negative, summing to 1)
        probs.append(array)
    n_resamples = _check_int("set_deltas", "n_resamples", n_resamples, 0)
    if kid_subsets is not None:
        kid_subsets = _check_int("set_deltas", "kid_subsets", kid_subsets, 1)
    kid_subset_size = _check_int("set_deltas", "kid_subset_size", kid_subset_size, 2)
    boot = _SetBootstrap(
        gt,
        ref,
        cand,
        probs[0],
        probs[1],
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        kid_seed=kid_seed,
    )
    return boot, n_resamples


def set_delta_samples(
    gt_features: np.ndarray,
    ref_features: np.ndarray,
    cand_features: np.ndarray,
    ref_probs: np.ndarray,
    cand_probs: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    kid_subsets: int | None = None,
    kid_subset_size: int = DEFAULT_SUBSET_SIZE,
    kid_seed: int = 0,
) -> SetDeltaSamples:
    """Per-resample IS, FID and KID of both models: the bootstrap replicates behind :func:`set_deltas`.

    Parameters
    ----------
    gt_features, ref_features, cand_features, ref_probs, cand_probs, n_resamples, seed, kid_subsets, \
kid_subset_size, kid_seed
        As in :func:`set_deltas`.

    Returns
    -------
    SetDeltaSamples
        The resampled indices and, per metric and model, the value on each resample. Value ``b`` equals the
        metric computed on the explicitly resampled arrays, e.g. ``fid(gt_features[i], ref_features[i])``
        with ``i = result.indices[b]`` (see :func:`set_deltas` for the exact definitions).

    Notes
    -----
    Agreement with the metric functions on resampled arrays, float64 features: IS ~1e-15, KID ~1e-13 and
    FID ~1e-10 relative to ``fid(..., method="eigh")``. ``fid``'s default route for N <= d (``"gram"``) is
    less accurate on such arrays, about 4e-6 relative at N = 2000, d = 2048: each duplicated row adds a
    null direction whose round-off it square-roots. The route here works on the distinct pairs with their
    multiplicities as weights, so it has no such directions.
    """
    boot, n_resamples = _prepare(
        gt_features,
        ref_features,
        cand_features,
        ref_probs,
        cand_probs,
        n_resamples=n_resamples,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        kid_seed=kid_seed,
    )
    return boot.run(bootstrap_indices(boot.n, n_resamples, seed))[0]


def set_deltas(
    gt_features: np.ndarray,
    ref_features: np.ndarray,
    cand_features: np.ndarray,
    ref_probs: np.ndarray,
    cand_probs: np.ndarray,
    *,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
    kid_subsets: int | None = None,
    kid_subset_size: int = DEFAULT_SUBSET_SIZE,
    kid_seed: int = 0,
    fid_method: FidMethod = "auto",
    metrics: Collection[str] | None = None,
) -> dict[str, SetDelta]:
    """Differences of IS, FID and KID between two models on the same pairs, with bootstrap intervals.

    Parameters
    ----------
    gt_features : numpy.ndarray
        N x d verifier features of the ground-truth images (row i: pair i).
    ref_features, cand_features : numpy.ndarray
        N x d verifier features of the reference's and the candidate's outputs for the same pairs.
    ref_probs, cand_probs : numpy.ndarray
        N x C verifier softmax rows of the two models' outputs (for IS).
    n_resamples : int
        Bootstrap resamples (default 200); 0 disables the intervals (NaN) and all per-resample work.
    seed : int
        Seed of the resampling (:func:`bootstrap_indices`; the same as :func:`paired_delta`'s).
    confidence : float
        Level of the two-sided percentile intervals (default 0.95).
    kid_subsets : int or None
        ``None`` (default): KID is the unbiased MMD^2 on the whole (resampled) set. An integer: KID is
        ``evalkit.metrics.kid``'s estimator with that many subsets of ``kid_subset_size`` rows and seed
        ``kid_seed``, for the value on all pairs and on every resample (slower, adds subset noise).
    kid_subset_size : int
        Rows per KID subset when ``kid_subsets`` is an integer (default 1000, capped at N).
    kid_seed : int
        Seed of the KID subsets when ``kid_subsets`` is an integer (the ``seed`` given to ``kid``).
    fid_method : {"auto", "gram", "eigh", "sqrtm"}
        Route of ``evalkit.metrics.fid`` for the FID on all pairs.
    metrics : collection of str, optional
        The set metrics to compute (keys of the registry's ``comparison="set"`` metrics); default all.
        Leaving FID out saves its per-resample eigenvalue problems, by far the costliest part.

    Returns
    -------
    dict of str to SetDelta
        ``"is"``, ``"fid"``, ``"kid"`` (those of ``metrics``) -> :class:`SetDelta` (delta = candidate -
        reference).

    Raises
    ------
    ValueError
        If the feature arrays are not finite real arrays of one shape N x d with N >= 2, the probs are not
        N x C softmax rows, or the options are out of range.

    Notes
    -----
    Definitions (each value on all pairs and on every resample is this metric of that evaluation set):

    * IS: ``inception_score(probs)`` with one split (the reference's), float64.
    * FID: ``fid(gt, model)``; on all pairs with ``fid_method``, on a resample by an exact Gram route.
      For float32 features the metric keeps the reference's float32 mean, the resamples use a float64 one:
      about 1e-7 relative, far below the bootstrap spread.
    * KID: with ``kid_subsets=None`` the unbiased MMD^2 (cubic kernel, as ``evalkit.metrics.kid``) of the
      whole set, i.e. ``kid(gt, model, subsets=1, subset_size=N)``; on a resample the duplicated pairs are
      distinct positions, as when the metric is applied to the resampled arrays. This is the expectation
      of ``kid``'s subset estimator over its random subsets (for any subset size), without the subset
      noise, which would only blur the interval. With an integer ``kid_subsets`` the value is
      ``kid(gt, model, subsets=kid_subsets, subset_size=kid_subset_size, seed=kid_seed)[0]``, the number a
      report made with those settings shows; both models use the same subsets (as in ``kid``).

    Pitfalls and meaning:

    * Resample pairs, not images: resample ``b`` takes rows ``indices[b]`` of the ground-truth, reference
      and candidate features (and probs) together. Both models saw the same inputs, so their metrics move
      together from one evaluation set to another; resampling each set on its own would ignore that and
      give intervals that are far too wide.
    * Percentile interval: the equal-tailed percentiles of the ``n_resamples`` resampled differences. It
      says how much the difference would move with another evaluation set of N pairs drawn like this one;
      it does not cover other data sets, seeds or hardware. An interval containing 0 means "no difference
      detectable with N pairs", not "equal".
    * A resample has ~63% distinct pairs, so FID and KID of a resample are larger, and IS smaller, than on
      all pairs (fewer distinct images; a duplicated image also counts as its own neighbour in KID). Most
      of that bias cancels in the difference of the two models, which is why only the difference is
      bootstrapped; do not read the per-resample values as an interval for one model's FID. What is left
      can shift the interval: a sentence says so when the estimate falls outside its own interval.
    * FID depends on N: every resample has N pairs, and FIDs at different N are not comparable.

    Speed: a resample is a vector ``w`` of multiplicities. Its weighted means, traces and FID mean terms are
    quadratic forms ``w^T G w`` in the N x N Gram matrices of the centred features, computed once (five
    N x N x d products; 5 N^2 float64, 160 MB at N = 2000) and evaluated for all resamples in a few
    matrix products; KID is ``w^T K w`` in the kernel matrices (built one at a time from the Grams) and IS
    needs ``w^T P``. The only per-resample, per-model work is ``tr sqrt(S_g S_s)``: the nuclear norm of the
    cross Gram block of the distinct pairs (~0.63 N of them), centred and weighted by rank-one
    corrections, i.e. one symmetric eigenvalue problem of size ~0.63 N, values only; no d x d matrix. When a
    resample has more distinct pairs than d + 1 the d side is smaller and is used instead (weighted
    covariances and the metric's pivoted Cholesky factors).
    """
    confidence = _check_confidence("set_deltas", confidence)
    boot, n_resamples = _prepare(
        gt_features,
        ref_features,
        cand_features,
        ref_probs,
        cand_probs,
        n_resamples=n_resamples,
        kid_subsets=kid_subsets,
        kid_subset_size=kid_subset_size,
        kid_seed=kid_seed,
    )
    keys = [m.key for m in SET_METRICS if metrics is None or m.key in metrics]
    point = {}
    if "is" in keys:
        point["is"] = (inception_score(ref_probs)[0], inception_score(cand_probs)[0])
    if "fid" in keys:
        point["fid"] = (
            fid(gt_features, ref_features, method=fid_method),
            fid(gt_features, cand_features, method=fid_method),
        )
    samples, full_kid = boot.run(bootstrap_indices(boot.n, n_resamples, seed), keys)
    point["kid"] = (full_kid["r"], full_kid["c"])
    results = {}
    for metric in (m for m in SET_METRICS if m.key in keys):
        key, name, higher_is_better = metric.key, metric.name, metric.higher_is_better
        ref_value, cand_value = point[key]
        ci_low = ci_high = math.nan
        if n_resamples:
            ci_low, ci_high = _percentile_interval(samples.deltas(key), confidence)
        results[key] = SetDelta(
            metric=name,
            delta=float(cand_value - ref_value),
            ci_low=ci_low,
            ci_high=ci_high,
            n_resamples=n_resamples,
            higher_is_better=higher_is_better,
            reference_value=float(ref_value),
            candidate_value=float(cand_value),
            confidence=confidence,
        )
    return results
