"""The gate's outcome for people: a terminal table, ``gate.md``, and the cells that report.html shows.

Renders :class:`~evalkit.results.GateReport` records (made by :mod:`evalkit.gate`); decides nothing.
Units, decimals and short names come from the metric registry, so the gate and the tables agree.
"""

from __future__ import annotations

import math

from evalkit.metrics.registry import METRICS_BY_KEY
from evalkit.number_format import format_number
from evalkit.results import GateReport, GateRow

__all__ = ["GATE_TABLE_HEAD", "gate_summary", "gate_table_cells", "render_gate_markdown", "render_gate_text"]

#: Column heads of :func:`gate_table_cells`.
GATE_TABLE_HEAD = (
    "model", "vs", "metric", "baseline", "value", "delta", "allowed", "outside noise", "verdict"
)  # fmt: skip
#: Columns of :data:`GATE_TABLE_HEAD` holding numbers (right-aligned in the terminal table).
_NUMERIC_COLUMNS = frozenset({3, 4, 5})


def _fmt(x: float, metric: str, *, sign: bool = False, significant: int = 2) -> str:
    """The metric's decimals (at least 1) and unit; a small non-zero number gains places, never reads 0."""
    declared = METRICS_BY_KEY[metric]
    return format_number(x, max(declared.decimals, 1), declared.unit, signed=sign, significant=significant)


def _allowed_text(row: GateRow, *, ascii_only: bool) -> str:
    """The smallest acceptable delta (``>= -0.1000 dB``) or the largest (``<= +2.0694``)."""
    ge, le = (">=", "<=") if ascii_only else ("≥", "≤")
    # An allowance finer than the metric's decimals shows its one digit (0.00005 on a 4-decimal metric).
    magnitude = _fmt(row.allowance, row.metric, significant=1)
    if row.allowance == 0:  # no "-0.0000": a zero has no sign
        return f"{ge if row.higher_is_better else le} {magnitude}"
    return f"{ge} -{magnitude}" if row.higher_is_better else f"{le} +{magnitude}"


def _short_name(metric: str) -> str:
    return METRICS_BY_KEY[metric].name


def gate_summary(report: GateReport) -> str:
    """``5 check(s) passed`` or ``2 of 5 check(s) failed: ...`` (without the verdict word)."""
    checked = [r for r in report.rows if r.verdict != "N/A"]
    if report.passed:
        return f"{len(checked)} check(s) passed"
    parts = [
        f"{r.model} {_short_name(r.metric)} {_fmt(r.delta, r.metric, sign=True)} "
        f"(allowed {_allowed_text(r, ascii_only=True)})"
        if math.isfinite(r.delta)
        else f"{r.model} {_short_name(r.metric)} ({r.reason})"
        for r in report.failures
    ]
    return f"{len(report.failures)} of {len(checked)} check(s) failed: " + "; ".join(parts)


def gate_table_cells(row: GateRow, *, ascii_only: bool = False) -> list[str]:
    """The formatted cells of one row, in :data:`GATE_TABLE_HEAD` order (shared by every renderer)."""
    return [
        row.model,
        row.baseline_model,
        _short_name(row.metric),
        _fmt(row.baseline, row.metric),
        _fmt(row.value, row.metric),
        _fmt(row.delta, row.metric, sign=True),
        _allowed_text(row, ascii_only=ascii_only),
        row.outside_noise,
        row.verdict if not row.reason or row.verdict == "PASS" else f"{row.verdict} ({row.reason})",
    ]


def _title(report: GateReport) -> str:
    return f"Gate ({report.kind}): {report.candidate} vs {report.baseline}; thresholds: {report.spec.source}"


def render_gate_text(report: GateReport) -> str:
    """A plain-ASCII terminal table with a PASS/FAIL verdict per row and a summary line."""
    table = [list(GATE_TABLE_HEAD)] + [gate_table_cells(r, ascii_only=True) for r in report.rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(GATE_TABLE_HEAD))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in _NUMERIC_COLUMNS else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [_title(report), "", line(table[0]), "  ".join("-" * w for w in widths)]
    out += [line(cells) for cells in table[1:]]
    out += ["", f"{'PASS' if report.passed else 'FAIL'}: {gate_summary(report)}"]
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out) + "\n"


def render_gate_markdown(report: GateReport) -> str:
    """The gate as Markdown (``gate.md``): verdict, table, thresholds and notes."""

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    verdict = "**PASS**" if report.passed else "**FAIL**"
    lines = [
        "# evalkit gate",
        "",
        f"- Result: {verdict} — {esc(gate_summary(report))}",
        f"- Candidate: {esc(report.candidate)}",
        f"- Baseline: {esc(report.baseline)}",
        f"- Thresholds ({esc(report.spec.source)}): "
        + ", ".join(f"{_short_name(m)} {a.describe()}" for m, a in report.spec.allowances.items()),
        "",
        "| " + " | ".join(GATE_TABLE_HEAD) + " |",
        "|" + "|".join("---" for _ in GATE_TABLE_HEAD) + "|",
    ]
    for row in report.rows:
        cells = gate_table_cells(row)
        cells[-1] = f"**{cells[-1]}**" if row.verdict == "FAIL" else cells[-1]
        lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
    lines += [
        "",
        "A metric fails when it is worse than its baseline by more than max(abs, rel × |baseline|); an "
        "improvement never fails. *Outside noise*: the paired bootstrap interval of the difference "
        "excludes 0.",
    ]
    if report.notes:
        lines += ["", "Notes:", "", *(f"- {esc(n)}" for n in report.notes)]
    return "\n".join(lines) + "\n"
