"""``report.md``: the card's table (one column per model) with deltas, and a header saying what was run."""

from __future__ import annotations

from evalkit.report.model import (
    EXTENDED_NOTE,
    PUBLISHED_NOTE,
    REFERENCE_NOTE,
    MetricTable,
    PublishedTable,
    Report,
    SequentialSection,
    build_report,
)
from evalkit.results import RunResult


def _table(table: MetricTable | PublishedTable | SequentialSection) -> list[str]:
    lines = ["| " + " | ".join(table.head) + " |", "|" + "|".join("---" for _ in table.head) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in table.rows]


def _sequential(report: Report) -> list[str]:
    seq = report.sequential
    if seq is None:
        return []
    title = "Stopped early: sequential gate" if seq.stopped_early else "Sequential gate"
    lines = [f"## {title}", "", seq.headline, "", *_table(seq), ""]
    return lines + [line for note in seq.notes for line in (note, "")]


def render_markdown(result: RunResult, report: Report | None = None) -> str:
    """The Markdown report of a run (from ``report``, the run's report model, when given)."""
    report = report or build_report(result)
    config = result.config
    ds = result.dataset
    lines = [
        "# evalkit report",
        "",
        f"- Data set: `{ds.root}`, pairs `{ds.pairs}` (sha256 `{ds.pairs_sha256[:12]}…`), {report.n_text}",
        f"- Verifier: `{result.verifier.path}` (sha256 `{result.verifier.sha256[:12]}…`)",
        "- Models: "
        + "; ".join(f"{m.label} = `{m.path}` (sha256 `{m.sha256[:12]}…`)" for m in result.models.values()),
        f"- Runtime: OpenVINO {result.environment.get('openvino', '?')}, device {config.runtime.device}, "
        f"inference precision {config.runtime.inference_precision}",
        f"- Metrics: reference method (OMZ Accuracy Checker cocosnet); SSIM constants "
        f"`{config.metrics.ssim_constants}`, FID route `{config.metrics.fid_method}`",
        f"- evalkit {result.evalkit_version}",
        "",
        *_sequential(report),
        "## Reference metrics",
        "",
        *_table(report.reference),
        "",
        REFERENCE_NOTE,
        "",
        "## Per-image spread",
        "",
        *_table(report.spread),
        "",
    ]
    if report.identical_note:
        lines += [report.identical_note, ""]
    comp = report.comparison
    if comp is not None:
        lines += [
            f"## Paired comparison with {comp.reference_model}",
            "",
            f"Same pairs, candidate − {comp.reference_model}; {comp.confidence} percentile "
            f"bootstrap intervals over pairs ({comp.bootstrap} resamples, seed {comp.seed}), "
            "Wilcoxon signed-rank p-values for the per-image metrics.",
            "",
        ]
        for model in comp.models:
            lines += [f"- {sentence}" for sentence in model.sentences]
        lines += [""]
    if report.published is not None:
        lines += ["## Against the published table", "", *_table(report.published), "", PUBLISHED_NOTE, ""]
    if report.skipped:
        lines += ["## Skipped pairs", "", "| Pair | Pairs-file line | Reason |", "|---|---|---|"]
        lines += [f"| {s.pair_id} | {s.line} | {s.reason.replace('|', '/')} |" for s in report.skipped]
        lines += [""]
    if report.extended is not None:
        lines += [
            "## Extended metrics (not the reference method)",
            "",
            *_table(report.extended),
            "",
            EXTENDED_NOTE,
            "",
        ]
    return "\n".join(lines)

