"""Render a run's results (Markdown, CSV, JSON) from a ``RunResult``; never recomputes anything."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit.report.markdown import render_markdown
from evalkit.results import RunResult, save_results, write_text_atomic

__all__ = ["REPORT_FORMATS", "render_markdown", "write_reports"]

if TYPE_CHECKING:
    from evalkit.results import GateReport


#: Report formats: ``json`` results.json, ``csv`` summary.csv + per_sample.csv, ``md`` report.md,
#: ``html`` report.html (self-contained page with plots and gallery).
REPORT_FORMATS = ("md", "csv", "json", "html")


def write_reports(
    result: RunResult,
    output: Path | str,
    *,
    formats: Sequence[str] = ("md", "csv", "json"),
    gallery_dir: Path | None = None,
    gate: GateReport | None = None,
    results_file: Path | None = None,
) -> dict[str, Path]:
    """Write the reports of ``formats`` (see :data:`REPORT_FORMATS`) into ``output``.

    Each file is written atomically (temporary name, then rename); ``results.json`` last, so that its
    presence means the run's outputs are complete. ``report.html`` shows ``gate`` if given and the gallery
    of ``gallery_dir`` (default ``output/gallery``); ``results_file`` dates it when the results record no
    date. Returns the paths by kind (``json``, ``summary``, ``per_sample``, ``markdown``, ``html``).
    """
    unknown = [f for f in formats if f not in REPORT_FORMATS]
    if unknown:
        raise ValueError(f"unknown report format(s) {unknown}; valid: {', '.join(REPORT_FORMATS)}")
    output = Path(output)  # the library's callers pass strings too, as run_and_report accepts
    output.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    if "csv" in formats:
        from evalkit.report.tables import per_sample_table, summary_table  # pandas: only when asked for

        paths["summary"] = output / "summary.csv"
        paths["per_sample"] = output / "per_sample.csv"
        write_text_atomic(
            paths["summary"], summary_table(result).to_csv(float_format="%.17g", lineterminator="\n")
        )
        write_text_atomic(
            paths["per_sample"],
            per_sample_table(result).to_csv(index=False, float_format="%.17g", lineterminator="\n"),
        )
    if "md" in formats:
        paths["markdown"] = output / "report.md"
        write_text_atomic(paths["markdown"], render_markdown(result))
    if "html" in formats:
        from evalkit.report.html import write_html  # imports matplotlib lazily; only when asked for

        paths["html"] = write_html(
            result,
            output / "report.html",
            gallery_dir=gallery_dir if gallery_dir is not None else output / "gallery",
            gate=gate,
            results_file=results_file,
        )
    if "json" in formats:
        paths["json"] = output / "results.json"
        save_results(result, paths["json"])
    return paths
