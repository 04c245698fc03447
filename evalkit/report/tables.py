"""Results -> tables (pandas DataFrames): one row per metric, one column per model; one row per sample."""

from __future__ import annotations

import math

import pandas as pd

from evalkit.results import RunResult

#: (json key, display name, unit, decimals for Markdown) of the reference table, in the card's order.
REFERENCE_METRICS: tuple[tuple[str, str, str, int], ...] = (
    ("psnr", "PSNR", " dB", 4),
    ("ssim", "SSIM", "", 4),
    ("is", "IS", "", 4),
    ("fid", "FID", "", 4),
)
SPREAD_METRICS: tuple[tuple[str, str, str, int], ...] = (
    ("psnr_std", "PSNR std", " dB", 4),
    ("ssim_std", "SSIM std", "", 4),
    ("psnr_identical", "Images identical to GT (PSNR = inf)", "", 0),
)


def summary_table(result: RunResult) -> pd.DataFrame:
    """Every metric of ``results.json`` as rows, one column per model (full precision)."""
    keys = [k for k, *_ in REFERENCE_METRICS + SPREAD_METRICS]
    data = {name: [m.metrics.to_dict()[k] for k in keys] for name, m in result.models.items()}
    frame = pd.DataFrame(data, index=pd.Index(keys, name="metric"))
    return frame


def per_sample_table(result: RunResult) -> pd.DataFrame:
    """One row per (pair, model): pairs in file order, models in config order within a pair."""
    rows = []
    names = list(result.models)
    n = max((len(m.samples) for m in result.models.values()), default=0)
    for i in range(n):
        for name in names:
            s = result.models[name].samples[i]
            rows.append({"pair_id": s.pair_id, "model": name, "psnr": s.psnr, "ssim": s.ssim})
    return pd.DataFrame(rows, columns=["pair_id", "model", "psnr", "ssim"])


def format_value(value: float | None, unit: str, decimals: int) -> str:
    """A metric for people: fixed decimals and unit; ``n/a`` for an undefined value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if decimals == 0:
        return f"{int(value)}"
    return f"{value:.{decimals}f}{unit}"


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
