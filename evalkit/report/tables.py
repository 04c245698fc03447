"""Results -> tables (pandas DataFrames): one row per metric, one column per model; one row per sample."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from evalkit.results import EXTENDED_KEYS, RunResult


@dataclass(frozen=True)
class MetricRow:
    """How one metric of ``results.json`` is shown: its key, name, unit, decimals and optional spread key."""

    key: str
    display: str
    unit: str = ""
    decimals: int = 4
    std_key: str | None = None


#: The reference table, in the card's order.
REFERENCE_METRICS = (
    MetricRow("psnr", "PSNR", " dB"),
    MetricRow("ssim", "SSIM"),
    MetricRow("is", "IS"),
    MetricRow("fid", "FID"),
)
SPREAD_METRICS = (
    MetricRow("psnr_std", "PSNR std", " dB"),
    MetricRow("ssim_std", "SSIM std"),
    MetricRow("psnr_identical", "Images identical to GT (PSNR = inf)", decimals=0),
)
#: Beyond the reference; each name says which variant it is, so nobody confuses it with the card's column.
EXTENDED_METRICS = (
    MetricRow("ssim_wang", "SSIM (Wang et al., Gaussian window σ=1.5, scikit-image)"),
    MetricRow("psnr_rgb", "PSNR (RGB, all channels)", " dB"),
    MetricRow("is_10", "IS (10 splits, mean ± std)", std_key="is_10_std"),
    MetricRow("kid", "KID (100 subsets, mean ± std)", decimals=5, std_key="kid_std"),
    MetricRow("fid", "FID (same as the reference table)"),
)


def has_extended(result: RunResult) -> bool:
    """Whether every model of the run has the extended metrics (not a ``--metrics reference`` run)."""
    return all(m.metrics.extended is not None for m in result.models.values())


def summary_table(result: RunResult) -> pd.DataFrame:
    """Every metric of ``results.json`` as rows, one column per model (full precision)."""
    keys = [row.key for row in REFERENCE_METRICS + SPREAD_METRICS]
    if has_extended(result):
        keys += list(EXTENDED_KEYS)
    data = {name: [m.metrics.to_dict()[k] for k in keys] for name, m in result.models.items()}
    frame = pd.DataFrame(data, index=pd.Index(keys, name="metric"))
    return frame


def per_sample_table(result: RunResult) -> pd.DataFrame:
    """One row per (pair, model): pairs in file order, models in config order within a pair."""
    columns = ["pair_id", "model", "psnr", "ssim"]
    if has_extended(result):
        columns += ["ssim_wang", "psnr_rgb"]
    rows = []
    names = list(result.models)
    n = max((len(m.samples) for m in result.models.values()), default=0)
    for i in range(n):
        for name in names:
            sample = vars(result.models[name].samples[i])
            rows.append({"model": name, **{k: sample[k] for k in columns if k != "model"}})
    return pd.DataFrame(rows, columns=columns)


def format_value(value: float | None, unit: str, decimals: int, std: float | None = None) -> str:
    """A metric for people: fixed decimals and unit, ``± std`` if given; ``n/a`` for an undefined value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if decimals == 0:
        return f"{int(value)}"
    spread = f" ± {std:.{decimals}f}" if std is not None and math.isfinite(std) else ""
    return f"{value:.{decimals}f}{spread}{unit}"


def format_delta(value: float | None, base: float | None, unit: str, decimals: int) -> str:
    """``value - base`` with an explicit sign; ``n/a`` if either is undefined."""
    if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
        return "n/a"
    if decimals == 0:
        return f"{int(value) - int(base):+d}"
    text = f"{value - base:+.{decimals}f}"
    if float(text) == 0.0:  # no "-0.0000": the sign of a difference below the shown precision means nothing
        text = f"{0.0:.{decimals}f}"
    return f"{text}{unit}"


@dataclass(frozen=True)
class PublishedCell:
    """One model's measured value beside the published figure for one metric."""

    measured: str
    published: str
    delta: str


def published_rows(result: RunResult) -> tuple[list[str], list[tuple[str, list[PublishedCell]]]]:
    """The models that have published figures, and per reference metric their measured/published/delta cells.

    Empty when the run's config carries no ``published:`` table.
    """
    published = result.config.get("published") or {}
    models = [name for name in result.models if name in published]
    rows = []
    for row in REFERENCE_METRICS:
        cells = []
        for name in models:
            figure = published[name].get(row.key)
            measured = result.models[name].metrics.to_dict()[row.key]
            if figure is None:
                cells.append(PublishedCell(format_value(measured, row.unit, row.decimals), "—", "—"))
                continue
            value = float(figure)
            cells.append(
                PublishedCell(
                    format_value(measured, row.unit, row.decimals),
                    f"{figure}{row.unit}",
                    format_delta(measured, value, row.unit, row.decimals),
                )
            )
        rows.append((row.display, cells))
    return models, rows
