"""Render a run's results (Markdown, CSV, JSON) from a ``RunResult``; never recomputes anything."""

from __future__ import annotations

from pathlib import Path

from evalkit.report.markdown import render_markdown
from evalkit.report.tables import per_sample_table, summary_table
from evalkit.results import RunResult, save_results, write_text_atomic

__all__ = ["render_markdown", "write_reports"]


def write_reports(result: RunResult, output: Path) -> dict[str, Path]:
    """Write ``results.json``, ``summary.csv``, ``per_sample.csv`` and ``report.md`` into ``output``.

    Each file is written atomically (temporary name, then rename). Returns the paths by kind.
    """
    output.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": output / "results.json",
        "summary": output / "summary.csv",
        "per_sample": output / "per_sample.csv",
        "markdown": output / "report.md",
    }
    write_text_atomic(
        paths["summary"], summary_table(result).to_csv(float_format="%.17g", lineterminator="\n")
    )
    write_text_atomic(
        paths["per_sample"],
        per_sample_table(result).to_csv(index=False, float_format="%.17g", lineterminator="\n"),
    )
    write_text_atomic(paths["markdown"], render_markdown(result))
    # results.json last: its presence means the run's outputs are complete.
    save_results(result, paths["json"])
    return paths
