"""Every metric evalkit reports, declared once: what the results, tables, plots, gate and comparison know.

A metric is one :class:`Metric` entry in :data:`METRICS` plus its pure function in its own module. Nothing
else in evalkit keeps a list of metrics, a key string, a direction or a printed precision: they read this
table. Adding a metric is one entry here (and, for a new kind of computation, its function).

Two kinds:

- ``per_image``: computed on each generated image against its ground truth
  (``compute(image, ground_truth, settings) -> float``), journaled per pair, summarised over the data set
  by the mean (of the finite values when ``finite_mean``), with an optional population spread
  (``std_key``) and count of ``+inf`` values (``inf_count_key``);
- ``set``: computed once per model from the verifier's outputs on all pairs
  (``compute(SetInputs, settings) -> (value, spread)``); the spread (``std_key``) is that of seeded splits
  or subsets, NaN when the metric has none.

The order of :data:`METRICS` is the order of the tables and of ``results.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np

from .fid import FidMethod, fid
from .inception_score import inception_score
from .kid import kid
from .psnr import psnr
from .ssim import SsimVariant, ssim

__all__ = [
    "IS_SPLITS",
    "METRICS",
    "METRICS_BY_KEY",
    "Metric",
    "MetricSettings",
    "Profile",
    "SetInputs",
    "metric",
    "metrics_of",
    "per_image_metrics",
    "result_keys",
    "set_metrics",
    "statistic_labels",
]

Kind = Literal["per_image", "set"]
Profile = Literal["reference", "extended"]
#: How a metric takes part in the paired comparison (``stats.comparison``): per-pair differences, the
#: paired bootstrap of a set metric, or not at all.
Comparison = Literal["paired", "set", "none"]

#: Splits of the extended table's Inception Score (the common GAN-literature protocol).
IS_SPLITS = 10


@dataclass(frozen=True)
class MetricSettings:
    """The variant settings a metric function may read (the config's ``metrics:`` section)."""

    ssim_constants: SsimVariant = "reference"
    fid_method: FidMethod = "auto"
    seed: int = 0


@dataclass(frozen=True)
class SetInputs:
    """What a set metric is computed from: the verifier's outputs over the evaluated pairs, in pair order.

    ``gt_features`` and ``features`` are N x d (ground truth, generated), ``probabilities`` N x C softmax
    rows of the generated images.
    """

    gt_features: np.ndarray
    features: np.ndarray
    probabilities: np.ndarray


PerImageFunction = Callable[[np.ndarray, np.ndarray, MetricSettings], float]
SetFunction = Callable[[SetInputs, MetricSettings], tuple[float, float]]


@dataclass(frozen=True)
class Metric:
    """Everything evalkit knows about one metric.

    Attributes
    ----------
    key : str
        Its name in ``results.json`` (``models.NAME.metrics.KEY``), the CSVs, the gate and the config.
    name : str
        Short display name, e.g. ``"SSIM (Wang)"`` (gate tables, sentences, plots).
    label : str
        Row label in the report tables; says which variant it is.
    unit : str
        Appended to printed values (``" dB"`` or ``""``).
    decimals : int
        Printed decimals.
    higher_is_better : bool
        Direction: a drop is a regression when True.
    profile : {"reference", "extended"}
        ``reference``: the published table's four metrics (always computed); ``extended``: only with
        ``metrics.profile: all``.
    kind : {"per_image", "set"}
        See the module docstring.
    seeded : bool
        Computed on seeded random splits or subsets: comparable only between runs with the same seed.
    compute : callable
        The pure function (signature by ``kind``).
    std_key, std_label : str or None
        Key and table label of its spread; with ``std_label`` None the spread is shown inline (``± std``).
    inf_count_key, inf_count_label : str or None
        Key and label of the count of ``+inf`` values left out of the mean (PSNR of identical images).
    finite_mean : bool
        Summarise over the finite values only (``+inf`` is legal: an image identical to its ground truth).
    comparison : {"paired", "set", "none"}
        How the paired comparison treats it.
    default_allowance : tuple of (float or None, float or None) or None
        The gate's built-in ``(abs, rel)`` allowance; None: not gated unless a ``gate:`` config names it.
    extended_label : str or None
        A reference metric repeated in the extended table under this label (FID), else None.
    attribute : str or None
        Python attribute name when the key is not an identifier (``is`` -> ``inception_score``).
    variant_setting : str or None
        The :class:`MetricSettings` field that picks the metric's variant (``ssim_constants``), else None.
    """

    key: str
    name: str
    label: str
    unit: str
    decimals: int
    higher_is_better: bool
    profile: Profile
    kind: Kind
    seeded: bool
    compute: PerImageFunction | SetFunction
    std_key: str | None = None
    std_label: str | None = None
    inf_count_key: str | None = None
    inf_count_label: str | None = None
    finite_mean: bool = False
    comparison: Comparison = "none"
    default_allowance: tuple[float | None, float | None] | None = None
    extended_label: str | None = None
    attribute: str | None = None
    variant_setting: str | None = None

    @property
    def identifier(self) -> str:
        """The attribute name of the metric on record types (``metrics.fid``, ``metrics.inception_score``)."""
        return self.attribute or self.key


# ------------------------------------------------------------------------------------------- the functions


def _psnr_reference(image: np.ndarray, gt: np.ndarray, settings: MetricSettings) -> float:
    return psnr(image, gt)


def _psnr_rgb(image: np.ndarray, gt: np.ndarray, settings: MetricSettings) -> float:
    return psnr(image, gt, variant="rgb")


def _ssim_reference(image: np.ndarray, gt: np.ndarray, settings: MetricSettings) -> float:
    return ssim(image, gt, variant=settings.ssim_constants)


def _ssim_wang(image: np.ndarray, gt: np.ndarray, settings: MetricSettings) -> float:
    return ssim(image, gt, variant="wang")


def _is_one_split(inputs: SetInputs, settings: MetricSettings) -> tuple[float, float]:
    return inception_score(inputs.probabilities)


def _is_splits(inputs: SetInputs, settings: MetricSettings) -> tuple[float, float]:
    if len(inputs.probabilities) < IS_SPLITS:  # undefined: reported as n/a rather than silently re-defined
        return math.nan, math.nan
    return inception_score(inputs.probabilities, splits=IS_SPLITS, seed=settings.seed)


def _fid(inputs: SetInputs, settings: MetricSettings) -> tuple[float, float]:
    return fid(inputs.gt_features, inputs.features, method=settings.fid_method), math.nan


def _kid(inputs: SetInputs, settings: MetricSettings) -> tuple[float, float]:
    return kid(inputs.gt_features, inputs.features, seed=settings.seed)


# ------------------------------------------------------------------------------------------------ the table

#: Every metric, in table order: the reference table's four (the card's order), then the extended ones.
METRICS: tuple[Metric, ...] = (
    Metric(
        key="psnr",
        name="PSNR",
        label="PSNR",
        unit=" dB",
        decimals=4,
        higher_is_better=True,
        profile="reference",
        kind="per_image",
        seeded=False,
        compute=_psnr_reference,
        std_key="psnr_std",
        std_label="PSNR std",
        inf_count_key="psnr_identical",
        inf_count_label="Images identical to GT (PSNR = inf)",
        finite_mean=True,
        comparison="paired",
        default_allowance=(0.1, None),
    ),
    Metric(
        key="ssim",
        name="SSIM",
        label="SSIM",
        unit="",
        decimals=4,
        higher_is_better=True,
        profile="reference",
        kind="per_image",
        seeded=False,
        compute=_ssim_reference,
        std_key="ssim_std",
        std_label="SSIM std",
        comparison="paired",
        default_allowance=(0.01, None),
        variant_setting="ssim_constants",
    ),
    Metric(
        key="is",
        name="IS",
        label="IS",
        unit="",
        decimals=4,
        higher_is_better=True,
        profile="reference",
        kind="set",
        seeded=False,
        compute=_is_one_split,
        comparison="set",
        default_allowance=(None, 0.02),
        attribute="inception_score",
    ),
    Metric(
        key="fid",
        name="FID",
        label="FID",
        unit="",
        decimals=4,
        higher_is_better=False,
        profile="reference",
        kind="set",
        seeded=False,
        compute=_fid,
        comparison="set",
        default_allowance=(None, 0.02),
        extended_label="FID (same as the reference table)",
        variant_setting="fid_method",
    ),
    Metric(
        key="ssim_wang",
        name="SSIM (Wang)",
        label="SSIM (Wang et al., Gaussian window σ=1.5, scikit-image)",
        unit="",
        decimals=4,
        higher_is_better=True,
        profile="extended",
        kind="per_image",
        seeded=False,
        compute=_ssim_wang,
    ),
    Metric(
        key="psnr_rgb",
        name="PSNR (RGB)",
        label="PSNR (RGB, all channels)",
        unit=" dB",
        decimals=4,
        higher_is_better=True,
        profile="extended",
        kind="per_image",
        seeded=False,
        compute=_psnr_rgb,
        finite_mean=True,
    ),
    Metric(
        key="is_10",
        name="IS (10 splits)",
        label="IS (10 splits, mean ± std)",
        unit="",
        decimals=4,
        higher_is_better=True,
        profile="extended",
        kind="set",
        seeded=True,
        compute=_is_splits,
        std_key="is_10_std",
    ),
    Metric(
        key="kid",
        name="KID",
        label="KID (100 subsets, mean ± std)",
        unit="",
        decimals=5,
        higher_is_better=False,
        profile="extended",
        kind="set",
        seeded=True,
        compute=_kid,
        std_key="kid_std",
        comparison="set",
        default_allowance=(0.001, None),
    ),
)

METRICS_BY_KEY: Mapping[str, Metric] = MappingProxyType({m.key: m for m in METRICS})


def metric(key: str) -> Metric:
    """The metric called ``key``; ``KeyError`` naming the valid keys otherwise."""
    try:
        return METRICS_BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; valid: {', '.join(METRICS_BY_KEY)}") from None


def metrics_of(profile: Profile | None = None, kind: Kind | None = None) -> tuple[Metric, ...]:
    """The metrics of one profile and/or kind, in table order."""
    return tuple(
        m for m in METRICS if (profile is None or m.profile == profile) and (kind is None or m.kind == kind)
    )


def per_image_metrics(extended: bool) -> tuple[Metric, ...]:
    """The per-image metrics a run computes: the reference ones, plus the extended ones if ``extended``."""
    return tuple(m for m in metrics_of(kind="per_image") if extended or m.profile == "reference")


def set_metrics(extended: bool) -> tuple[Metric, ...]:
    """The set metrics a run computes: the reference ones, plus the extended ones if ``extended``."""
    return tuple(m for m in metrics_of(kind="set") if extended or m.profile == "reference")


def result_keys(extended: bool) -> tuple[str, ...]:
    """The keys of ``models.NAME.metrics`` in ``results.json``, in their written order.

    The reference metrics' values, then their statistics (spreads, counts), then each extended metric
    followed by its spread. This order is a contract (summary.csv rows follow it too).
    """
    reference = metrics_of("reference")
    keys = [m.key for m in reference]
    keys += [m.std_key for m in reference if m.std_key is not None]
    keys += [m.inf_count_key for m in reference if m.inf_count_key is not None]
    if extended:
        keys += [k for m in metrics_of("extended") for k in (m.key, m.std_key) if k is not None]
    return tuple(keys)


def statistic_labels() -> tuple[tuple[str, str, str, int], ...]:
    """The per-image spread table's rows: ``(key, label, unit, decimals)`` of each tabled statistic."""
    rows = []
    for m in metrics_of("reference"):
        if m.std_key is not None and m.std_label is not None:
            rows.append((m.std_key, m.std_label, m.unit, m.decimals))
    for m in metrics_of("reference"):
        if m.inf_count_key is not None and m.inf_count_label is not None:
            rows.append((m.inf_count_key, m.inf_count_label, "", 0))
    return tuple(rows)
