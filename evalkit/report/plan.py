"""``evalkit plan``: the pairs each gated metric needs, as a table (from ``stats.sequential.plan_pairs``).

Renders only: the numbers come from :mod:`evalkit.stats.sequential`.
"""

from __future__ import annotations

import math

from evalkit import defaults
from evalkit.errors import InputError
from evalkit.metrics.registry import METRICS_BY_KEY
from evalkit.number_format import format_number
from evalkit.results import RunResult
from evalkit.stats.sequential import DEFAULT_POWER, plan_pairs

__all__ = ["render_plan"]


def render_plan(result: RunResult, *, alpha: float | None = None, power: float = DEFAULT_POWER) -> str:
    """A Markdown table: per candidate and gated metric, the allowance, the per-pair spread of the
    difference and the pairs needed to tell a difference of the allowance from zero.

    ``alpha``: the error level (default: the run's sequential ``alpha``, else the default error level).
    """
    if alpha is None:
        alpha = result.sequential.alpha if result.sequential is not None else defaults.SEQUENTIAL_ALPHA
    rows = plan_pairs(result, alpha, power)
    if not rows:
        raise InputError(
            f"plan: the run has no candidate model with a gated metric to plan for (models: "
            f"{', '.join(result.models)}; a plan compares a candidate with the reference model)"
        )
    lines = [
        f"# Pairs needed (two-sided test at {alpha:g}, power {power:.0%})",
        "",
        f"From {result.dataset.n_pairs} evaluated pairs; the pairs file lists "
        f"{result.dataset.n_listed or result.dataset.n_pairs}.",
        "",
        "| Model | Metric | Allowance | Per-pair spread of Δ | Pairs needed | Spread from |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        metric = METRICS_BY_KEY[r.metric]
        places = metric.decimals
        allowance = format_number(r.allowance, places, metric.unit) if math.isfinite(r.allowance) else "n/a"
        sd = format_number(r.sd, places, metric.unit) if math.isfinite(r.sd) else "n/a"
        if r.pairs is not None:
            pairs = f"{r.pairs:,}" if r.pairs < 10**12 else "more than 10^12"
        elif math.isfinite(r.allowance) and r.allowance == 0:
            pairs = "n/a (allowance 0: no size tells it from zero)"
        else:
            pairs = "n/a (no spread to read)"
        lines.append(f"| {r.model} | {metric.name} | {allowance} | {sd} | {pairs} | {r.source} |")
    lines += [
        "",
        "Pairs needed = ((z(1 - α/2) + z(power)) · spread / allowance)², rounded up. IS and FID are biased "
        "in the number of images: for them the figure is a guide only. A sequential run "
        "(`evalkit run --gate --sequential`) stops by itself once the verdict is known.",
    ]
    return "\n".join(lines)
