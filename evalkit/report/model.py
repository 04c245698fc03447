"""The renderer-neutral report model: every table, note and sentence of a run's report, as text cells.

Markdown, HTML, the CSVs and the command line's summary are rendered from :func:`build_report`'s
:class:`Report`, so they cannot disagree: the delta columns are against the run's reference model, with the
same sign, decimals and header in every format. Nothing here recomputes a metric.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evalkit.metrics.registry import METRICS_BY_KEY, Metric, metrics_of, statistic_labels
from evalkit.number_format import format_number
from evalkit.results import ComparisonEntry, ModelMetrics, RunResult, SequentialRun, SkippedPair
from evalkit.stats.aggregate import allowance_limit
from evalkit.stats.comparison import PairedDelta, within_allowance

__all__ = [
    "ComparisonModel",
    "ComparisonSection",
    "MetricTable",
    "PublishedTable",
    "Report",
    "SequentialSection",
    "build_report",
    "delta_heading",
    "format_delta",
    "format_value",
]

REFERENCE_NOTE = (
    "Higher is better for PSNR, SSIM and IS; lower is better for FID. IS and FID depend on the verifier, "
    "N and the preprocessing: compare them only with runs that share all three."
)
EXTENDED_NOTE = (
    "IS, FID and KID computed with this verifier are comparable only with runs that use the same verifier, "
    "N and preprocessing — not with published GAN numbers. IS (10 splits) is n/a below 10 images."
)
PUBLISHED_NOTE = (
    "The published figures come from the config's `published:` table (the OMZ card: 2000 pairs, the "
    "original googlenet-v3, SSIM with the 2020 constants); they are comparable only with a run on the same "
    "data and verifier. `evalkit gate --published` checks them with allowances."
)


def format_value(value: float | None, unit: str, decimals: int, std: float | None = None) -> str:
    """A metric for people: the metric's decimals (more for a small non-zero value, which never reads as
    zero) and unit, ``± std`` if given; ``n/a`` for an undefined value."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if decimals == 0:
        return f"{int(value)}"
    spread = f" ± {format_number(std, decimals)}" if std is not None and math.isfinite(std) else ""
    return f"{format_number(value, decimals)}{spread}{unit}"


def format_delta(value: float | None, base: float | None, unit: str, decimals: int) -> str:
    """``value - base`` with an explicit sign (none for an exact 0); ``n/a`` if either is undefined.

    A small non-zero difference gains places until two significant digits show (``-0.00000040``), so it
    never reads as ``-0.0000`` or as zero beside a sentence that calls it worse.
    """
    if value is None or base is None or not (math.isfinite(value) and math.isfinite(base)):
        return "n/a"
    if decimals == 0:
        count = int(value) - int(base)
        return f"{count:+d}" if count else "0"  # an exact zero has no sign, as in format_number
    return format_number(value - base, decimals, unit, signed=True)


@dataclass(frozen=True)
class MetricTable:
    """Rows of metrics: a label, one value per model, one delta per non-reference model (all text)."""

    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class ComparisonModel:
    """One candidate model's paired comparison with the reference model."""

    name: str
    label: str
    sentences: tuple[str, ...]
    #: ``(metric, delta, interval, p, n, outside noise, within allowance)`` per compared metric; the last
    #: is ``yes``/``no`` (the interval's worse end within the gate's allowance), ``unknown`` without an
    #: interval, empty for a metric the gate spec gives no allowance
    rows: tuple[tuple[str, str, str, str, str, str, str], ...]


@dataclass(frozen=True)
class ComparisonSection:
    reference_model: str
    confidence: str  #: e.g. ``95%``
    bootstrap: int
    seed: int
    models: tuple[ComparisonModel, ...]


@dataclass(frozen=True)
class PublishedTable:
    """Measured values beside the config's published figures (models with published figures only)."""

    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


SEQUENTIAL_SET_NOTE = (
    "IS and FID depend on the number of images: an early decision on them is about the difference measured "
    "on the same n pairs, which can differ from the difference on all pairs by more than noise. KID's "
    "estimator is unbiased in the number of images, so KID is the set metric to prefer for early decisions."
)


@dataclass(frozen=True)
class SequentialSection:
    """How a sequential gate ran: a headline, one row per gated (model, metric), and notes (all text).

    ``rows``: ``(model, metric, verdict, decided, pairs, Δ, interval, allowance)``; ``decided`` is
    ``look K of L``, ``all pairs`` or ``undecided``.
    """

    headline: str
    stopped_early: bool
    head: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Report:
    """Everything a report shows, as text; built once per run by :func:`build_report`."""

    title: str
    reference_model: str
    n_text: str  #: ``N = 32`` or ``N = 30 evaluated / 32 listed (2 skipped, see below)``
    reference: MetricTable
    spread: MetricTable
    identical_note: str | None
    extended: MetricTable | None
    comparison: ComparisonSection | None
    published: PublishedTable | None
    skipped: tuple[SkippedPair, ...]
    sequential: SequentialSection | None = None


def delta_heading(candidate: str, reference: str) -> str:
    """The header of a delta column: the sign convention, candidate minus reference."""
    return f"Δ {candidate} − {reference}"


def _metric_table(
    result: RunResult, rows: list[tuple[str, str, str, int, str | None]], first_col: str
) -> MetricTable:
    """``rows``: ``(key, label, unit, decimals, std_key)``; values of every model, deltas vs the reference."""
    names = list(result.models)
    ref = result.reference_model
    others = [n for n in names if n != ref]
    head = (first_col, *(result.models[n].label for n in names), *(delta_heading(n, ref) for n in others))
    values = {n: result.models[n].metrics.to_dict() for n in names}
    out = []
    for key, label, unit, decimals, std_key in rows:
        cells = [label]
        for n in names:
            std = values[n].get(std_key) if std_key else None
            cells.append(format_value(values[n].get(key), unit, decimals, std))
        for n in others:
            cells.append(format_delta(values[n].get(key), values[ref].get(key), unit, decimals))
        out.append(tuple(cells))
    return MetricTable(head=head, rows=tuple(out))


def _row(m: Metric, label: str | None = None) -> tuple[str, str, str, int, str | None]:
    # Spreads shown inline ("± std") are those without a row of their own in the spread table.
    inline_std = m.std_key if m.std_label is None else None
    return (m.key, label or m.label, m.unit, m.decimals, inline_std)


def _n_text(result: RunResult) -> str:
    ds = result.dataset
    seq = result.sequential
    if seq is not None and seq.stopped_early:
        skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
        return (
            f"N = {ds.n_pairs} evaluated / {seq.n_listed} listed (stopped early by the sequential gate after "
            f"{seq.n_done} pairs of a seeded random order{skipped})"
        )
    if ds.n_listed is None or ds.n_listed == ds.n_pairs:
        return f"N = {ds.n_pairs}"
    return (
        f"N = {ds.n_pairs} evaluated / {ds.n_listed} listed ({ds.n_listed - ds.n_pairs} skipped, see below)"
    )


def _comparison_row(
    key: str, entry: ComparisonEntry, result: RunResult, reference_metrics: ModelMetrics | None
) -> tuple[str, str, str, str, str, str, str]:
    metric = METRICS_BY_KEY[key]
    d = metric.decimals
    interval = entry.interval
    ci = (
        "n/a"
        if interval is None
        else f"[{format_number(interval[0], d, signed=True)}, {format_number(interval[1], d, signed=True)}]"
    )
    noise = "unknown" if interval is None else ("yes" if interval[0] > 0 or interval[1] < 0 else "no")
    p = entry.delta.p_value if isinstance(entry.delta, PairedDelta) else None
    n = entry.delta.n if isinstance(entry.delta, PairedDelta) else entry.delta.n_resamples
    # The same limit and rule as the sentence (made by evalkit.stats.aggregate.compare_models).
    limit = allowance_limit(result.config.gate, key, reference_metrics)
    within = None if limit is None else within_allowance(entry.delta, limit)
    practical = "" if limit is None else ("unknown" if within is None else ("yes" if within else "no"))
    return (
        metric.name,
        format_number(entry.value, d, metric.unit, signed=True),
        ci,
        "n/a" if p is None else f"{p:.3g}",
        str(n),
        noise,
        practical,
    )


def _comparison(result: RunResult) -> ComparisonSection | None:
    comp = result.comparison
    if comp is None or not comp.models:
        return None
    models = []
    reference = result.models.get(comp.reference_model)
    reference_metrics = None if reference is None else reference.metrics
    for name, entries in comp.models.items():
        label = result.models[name].label if name in result.models else name
        models.append(
            ComparisonModel(
                name=name,
                label=label,
                sentences=tuple(e.sentence for e in entries.values()),
                rows=tuple(_comparison_row(key, e, result, reference_metrics) for key, e in entries.items()),
            )
        )
    return ComparisonSection(
        reference_model=comp.reference_model,
        confidence=f"{comp.confidence:.0%}",
        bootstrap=comp.bootstrap,
        seed=comp.seed,
        models=tuple(models),
    )


def _published(result: RunResult) -> PublishedTable | None:
    published = result.config.published
    if published is None:
        return None
    models = [name for name in result.models if name in published.models]
    if not models:
        return None
    what = ("measured", "published", "Δ")
    head = ("Metric", *(f"{result.models[m].label}: {w}" for m in models for w in what))
    rows = []
    for m in metrics_of("reference"):
        cells = [m.label]
        for name in models:
            measured = result.models[name].metrics.get(m.key)
            figure = published.models[name].get(m.key)
            cells.append(format_value(measured, m.unit, m.decimals))
            if figure is None:
                cells += ["—", "—"]
            else:
                cells += [f"{figure.text}{m.unit}", format_delta(measured, figure.value, m.unit, m.decimals)]
        rows.append(tuple(cells))
    return PublishedTable(head=head, rows=tuple(rows))


def _sequential(result: RunResult) -> SequentialSection | None:
    seq: SequentialRun | None = result.sequential
    if seq is None:
        return None
    level = f"{seq.alpha * 100:.3g}%"
    if seq.stopped_early:
        headline = (
            f"The run stopped early: {seq.n_done} of {seq.n_listed} listed pairs evaluated (look "
            f"{seq.stop_look} of {len(seq.looks)} planned)."
        )
    else:
        headline = (
            f"No early stop: all {seq.n_listed} listed pairs evaluated ({len(seq.looks)} planned looks)."
        )
    headline += (
        f" Sequential gate: pairs in a random order (seed {seq.order_seed}), looks after "
        f"{', '.join(map(str, seq.looks))} pairs; intervals {seq.method}, simultaneous "
        f"{(1 - 2 * seq.alpha) * 100:.6g}% (each decisive end one-sided at {level}); error level {level} per "
        "gated metric (the chance its decision differs from the gate on all pairs; rare failures excepted, "
        "see the README)."
    )
    rows = []
    for d in seq.decisions:
        metric = METRICS_BY_KEY[d.metric]
        places = metric.decimals
        if d.decided_by == "look":
            decided = f"look {d.look} of {len(seq.looks)}"
        elif d.decided_by == "full run":
            decided = "all pairs (ordinary gate)"
        else:
            decided = "undecided (run stopped)"
        low, high = (format_number(x, places, signed=True) for x in (d.ci_low, d.ci_high))
        interval = "n/a" if not (math.isfinite(d.ci_low) and math.isfinite(d.ci_high)) else f"[{low}, {high}]"
        allowance = format_number(d.allowance, places, metric.unit) if math.isfinite(d.allowance) else "n/a"
        delta = format_number(d.delta, places, metric.unit, signed=True) if math.isfinite(d.delta) else "n/a"
        verdict = d.verdict if d.decided_by == "look" else ("see gate" if d.decided_by == "full run" else "—")
        pairs = str(d.n) if d.decided_by != "full run" else str(seq.n_done)
        rows.append((d.model, metric.name, verdict, decided, pairs, delta, interval, allowance))
    notes = []
    if any(METRICS_BY_KEY[d.metric].kind == "set" for d in seq.decisions):
        notes.append(SEQUENTIAL_SET_NOTE)
    return SequentialSection(
        headline=headline,
        stopped_early=seq.stopped_early,
        head=("Model", "Metric", "Verdict", "Decided at", "Pairs", "Δ", "Interval", "Allowance"),
        rows=tuple(rows),
        notes=tuple(notes),
    )


def build_report(result: RunResult) -> Report:
    """The report model of ``result`` (every renderer reads it)."""
    identical_note = None
    counts = [
        (model.label, int(count))
        for m in metrics_of("reference")
        if m.inf_count_key is not None
        for model in result.models.values()
        if (count := model.metrics.get(m.inf_count_key))
    ]
    if counts:
        identical_note = (
            "PSNR mean and std are over the images that differ from their ground truth; "
            + ", ".join(f"{label}: {k} identical" for label, k in counts)
            + "."
        )
    extended = None
    if result.has_extended:
        rows = [_row(m) for m in metrics_of("extended")]
        rows += [_row(m, m.extended_label) for m in metrics_of("reference") if m.extended_label]
        extended = _metric_table(result, rows, "Metric")
    spread_rows = [(key, label, unit, decimals, None) for key, label, unit, decimals in statistic_labels()]
    return Report(
        title=f"evalkit report — {', '.join(m.label for m in result.models.values())}, "
        f"N = {result.dataset.n_pairs}",
        reference_model=result.reference_model,
        n_text=_n_text(result),
        reference=_metric_table(result, [_row(m) for m in metrics_of("reference")], "Metric"),
        spread=_metric_table(result, spread_rows, "Statistic"),
        identical_note=identical_note,
        extended=extended,
        comparison=_comparison(result),
        published=_published(result),
        skipped=result.skipped,
        sequential=_sequential(result),
    )
