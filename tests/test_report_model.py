"""One report model, every renderer: Markdown, HTML and the CSVs show the same facts the same way.

Runs are built in code (tests/records.py); no model runs here.
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
import records

from evalkit.metrics.registry import metrics_of, result_keys
from evalkit.report.html import render_html
from evalkit.report.markdown import render_markdown
from evalkit.report.model import build_report
from evalkit.report.tables import per_sample_table, summary_table
from evalkit.results import RunResult


def two_model_run(reference_model: str | None) -> RunResult:
    """original is better than converted on every metric; the comparison is against ``reference_model``."""
    models = {
        "original": records.metrics(psnr=20.0, ssim=0.5, fid=50.0, kid=0.02, **{"is": 10.0}),
        "converted": records.metrics(psnr=19.75, ssim=0.49, fid=51.5, kid=0.025, **{"is": 9.5}),
    }
    return records.run(models, reference_model=reference_model)


class _Tables(HTMLParser):
    """Rows of the HTML page's tables, as lists of cell texts."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def markdown_rows(text: str) -> list[list[str]]:
    return [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def html_rows(page: str) -> list[list[str]]:
    parser = _Tables()
    parser.feed(page)
    return [row for row in parser.rows if row]


@pytest.mark.parametrize(
    ("reference", "candidate"),
    [("original", "converted"), ("converted", "original")],
    ids=["reference-first", "reference-second"],
)
def test_every_renderer_shows_the_same_deltas_against_the_reference_model(reference: str, candidate: str):
    result = two_model_run(reference)
    assert result.reference_model == reference
    heading = f"Δ {candidate} − {reference}"
    md_rows = markdown_rows(render_markdown(result))
    page_rows = html_rows(render_html(result, gallery_dir=None))
    for rows in (md_rows, page_rows):
        heads = [row for row in rows if row[0] == "Metric" and heading in row]
        assert heads, f"no table headed {heading!r}"
        assert not any(f"Δ {reference} − {candidate}" in row for row in rows)
    values = {name: m.metrics.to_dict() for name, m in result.models.items()}
    for metric in metrics_of("reference"):
        expected = values[candidate][metric.key] - values[reference][metric.key]
        md = next(row for row in md_rows if row[0] == metric.label)
        html = next(row for row in page_rows if row[0] == metric.label)
        assert md == html, metric.key  # same cells, same order, same text
        delta_text = md[-1]
        shown = float(re.sub(r"[^0-9.+-]", "", delta_text))
        assert shown == pytest.approx(expected, abs=10**-metric.decimals)
        # the sign follows the heading: candidate minus reference
        assert delta_text.startswith("+" if expected > 0 else "-"), (metric.key, delta_text)


def test_the_report_model_is_what_the_renderers_print() -> None:
    result = two_model_run("converted")
    report = build_report(result)
    md_rows = markdown_rows(render_markdown(result))
    page_rows = html_rows(render_html(result, gallery_dir=None))
    for table in (report.reference, report.spread, report.extended):
        assert table is not None
        assert list(table.head) in md_rows and list(table.head) in page_rows
        for row in table.rows:
            assert list(row) in md_rows and list(row) in page_rows


def test_csv_rows_follow_the_registry() -> None:
    result = two_model_run(None)
    summary = pd.read_csv(io.StringIO(summary_table(result).to_csv()), index_col="metric")
    assert tuple(summary.index) == result_keys(extended=True)
    assert summary.loc["fid", "converted"] == 51.5 and summary.loc["is", "original"] == 10.0
    per_sample = per_sample_table(result)
    assert list(per_sample.columns) == ["pair_id", "model", *(m.key for m in metrics_of(kind="per_image"))]
    assert len(per_sample) == 2 * 10


def test_reference_profile_has_no_extended_columns() -> None:
    result = records.run({"a": records.metrics(False), "b": records.metrics(False)})
    assert not result.has_extended
    assert build_report(result).extended is None
    assert tuple(summary_table(result).index) == result_keys(extended=False)
    assert "Extended metrics" not in render_markdown(result)
