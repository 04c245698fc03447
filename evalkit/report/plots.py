"""Figures of the HTML report, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Deterministic: fixed figure size, dpi, fonts and styles; no timestamp or version in the PNG metadata;
random jitter drawn from a fixed seed. The same results give the same bytes (with the same matplotlib
and FreeType). No pyplot, so nothing global is created or left behind.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from evalkit.metrics.registry import Metric, metrics_of
from evalkit.results import RunResult, SampleScores

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["FIGURE_DPI", "Plot", "delta_plot", "distribution_plot", "matplotlib_available", "report_plots"]

FIGURE_DPI = 100
_FIGSIZE = (10.0, 4.0)  # inches: 1000 x 400 px, the width of the report's text column
_RC = {
    "svg.hashsalt": "evalkit",  # fixed ids should a figure ever be saved as SVG
    "font.family": "DejaVu Sans",  # shipped with matplotlib: the same glyphs on every machine
    "font.size": 10.0,
    "axes.titlesize": 11.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": False,
}
#: Colour-blind-safe qualitative colours (Okabe-Ito), one per model in config order.
_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


@dataclass(frozen=True)
class Plot:
    """One figure of the report: what it shows, and the PNG."""

    title: str
    caption: str
    png: bytes


def matplotlib_available() -> bool:
    """Whether matplotlib can be imported (the HTML report says so instead of plotting when not)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(ncols: int) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=_FIGSIZE, dpi=FIGURE_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    fig.subplots(1, ncols)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    # metadata={"Software": None} drops the matplotlib version: the bytes depend on the data only.
    fig.savefig(buf, format="png", dpi=FIGURE_DPI, metadata={"Software": None})
    return buf.getvalue()


#: The per-image metrics plotted (one panel each): those of the paired comparison (PSNR, SSIM).
_PANELS = tuple(m for m in metrics_of(kind="per_image") if m.comparison == "paired")


def _axis_label(metric: Metric) -> str:
    unit = metric.unit.strip()
    return f"{metric.name} ({unit})" if unit else metric.name


def _finite(values: Sequence[float | None]) -> np.ndarray:
    arr = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    return arr[np.isfinite(arr)]


def distribution_plot(result: RunResult) -> Plot | None:
    """Per-image PSNR and SSIM of every model: box plots with the individual images as dots.

    Returns ``None`` when no model has per-sample scores or matplotlib is missing.
    """
    if not matplotlib_available() or not any(m.samples for m in result.models.values()):
        return None
    from matplotlib import rc_context

    names = list(result.models)
    with rc_context(_RC):
        fig = _figure(len(_PANELS))
        rng = np.random.default_rng(0)  # jitter only: fixed so the PNG is reproducible
        for ax, metric in zip(fig.axes, _PANELS, strict=True):
            data = [_finite([s.values.get(metric.key) for s in result.models[n].samples]) for n in names]
            positions = np.arange(1, len(names) + 1)
            ax.boxplot(
                [d if d.size else np.array([math.nan]) for d in data],
                positions=positions,
                widths=0.5,
                showfliers=False,
                medianprops={"color": "black"},
            )
            for i, d in enumerate(data):
                x = positions[i] + rng.uniform(-0.18, 0.18, d.size)
                ax.scatter(x, d, s=9, alpha=0.55, color=_COLOURS[i % len(_COLOURS)], linewidths=0)
            ax.set_xticks(positions, [n for n in names], rotation=0)
            ax.set_title(f"{metric.name} per image")
            ax.set_ylabel(_axis_label(metric))
        png = _png(fig)
    n = max(len(m.samples) for m in result.models.values())
    return Plot(
        title="Per-image " + " and ".join(m.name for m in _PANELS),
        caption=f"Each dot is one of the {n} images; boxes show the quartiles and the median, whiskers "
        "1.5 IQR. Images identical to their ground truth (infinite PSNR) are left out of the PSNR panel.",
        png=png,
    )


def _paired(
    ref: Sequence[SampleScores], other: Sequence[SampleScores], key: str
) -> tuple[np.ndarray, np.ndarray]:
    """Reference value and ``other - reference`` per pair (matched by pair id), finite pairs only."""
    by_id = {s.pair_id: s.values.get(key) for s in ref}
    xs, ds = [], []
    for s in other:
        base, value = by_id.get(s.pair_id), s.values.get(key)
        if base is None or value is None or not (math.isfinite(base) and math.isfinite(value)):
            continue
        xs.append(base)
        ds.append(value - base)
    return np.array(xs, dtype=np.float64), np.array(ds, dtype=np.float64)


def delta_plot(result: RunResult, reference_model: str) -> Plot | None:
    """Per-image ``model - reference`` PSNR and SSIM against the reference's own value.

    A model that matches the reference sits on the zero line; a degraded one sits below it. Returns
    ``None`` when there is no other model, no per-sample scores, or no matplotlib.
    """
    others = [n for n in result.models if n != reference_model]
    ref = result.models.get(reference_model)
    if not matplotlib_available() or ref is None or not others or not ref.samples:
        return None
    from matplotlib import rc_context

    with rc_context(_RC):
        fig = _figure(len(_PANELS))
        for ax, metric in zip(fig.axes, _PANELS, strict=True):
            label = _axis_label(metric)
            ax.axhline(0.0, color="black", linewidth=0.8)
            for name in others:
                colour = _COLOURS[list(result.models).index(name) % len(_COLOURS)]
                x, d = _paired(ref.samples, result.models[name].samples, metric.key)
                ax.scatter(x, d, s=12, alpha=0.7, color=colour, linewidths=0, label=name)
                if d.size:
                    ax.axhline(float(d.mean()), color=colour, linestyle="--", linewidth=1.0)
            ax.set_xlabel(f"{reference_model} {label}")
            ax.set_ylabel(f"Δ {label}")
            ax.set_title(f"Δ {metric.name} per image vs {reference_model}")
            ax.legend(loc="best", fontsize=8)
        png = _png(fig)
    return Plot(
        title=f"Paired difference per image vs {reference_model}",
        caption=f"Each dot is one image: its score with the model minus its score with {reference_model}, "
        f"against {reference_model}'s score; dashed lines are the mean differences.",
        png=png,
    )


def report_plots(result: RunResult, reference_model: str) -> list[Plot]:
    """Every figure of the HTML report that the results allow, in page order."""
    plots = [distribution_plot(result), delta_plot(result, reference_model)]
    return [p for p in plots if p is not None]
