"""The gate's outcome for CI systems: a JUnit XML document, as Jenkins, GitLab and GitHub reporters read it.

Renders :class:`~evalkit.results.GateReport` records; decides nothing. One ``<testsuite>`` per gate report
(a within-run, runs or published comparison), one ``<testcase>`` per gated model and metric: a failed row
carries the gate's sentence (``converted SSIM -0.0500 (allowed >= -0.0100)``) and its table row, an ``N/A``
row is skipped with its reason. The cells come from :mod:`evalkit.report.gate`, so the numbers read as in
the terminal table and ``gate.md``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence

from evalkit.report.gate import GATE_TABLE_HEAD, gate_table_cells
from evalkit.results import GateReport, GateRow

__all__ = ["render_junit_xml"]

#: Index of each column of :data:`~evalkit.report.gate.GATE_TABLE_HEAD` used in the texts.
_COL = {head: i for i, head in enumerate(GATE_TABLE_HEAD)}


def _case_name(row: GateRow) -> str:
    cells = gate_table_cells(row, ascii_only=True)
    return f"{row.model} {cells[_COL['metric']]} vs {row.baseline_model}"


def _sentence(row: GateRow) -> str:
    """The row as one sentence, worded as the terminal summary's failure list."""
    cells = gate_table_cells(row, ascii_only=True)
    model_metric = f"{row.model} {cells[_COL['metric']]}"
    delta = cells[_COL["delta"]]
    if delta == "n/a":
        return f"{model_metric} ({row.reason or row.verdict})"
    return f"{model_metric} {delta} (allowed {cells[_COL['allowed']]})"


def _row_text(row: GateRow) -> str:
    """Every column of the gate table, one ``head: cell`` a line (the body of a failure)."""
    cells = gate_table_cells(row, ascii_only=True)
    return "\n".join(f"{head}: {cell}" for head, cell in zip(GATE_TABLE_HEAD, cells, strict=True))


def _suite(report: GateReport) -> ET.Element:
    failures = sum(r.verdict == "FAIL" for r in report.rows)
    skipped = sum(r.verdict == "N/A" for r in report.rows)
    suite = ET.Element(
        "testsuite",
        {
            "name": f"evalkit gate ({report.kind}): {report.candidate} vs {report.baseline}",
            "tests": str(len(report.rows)),
            "failures": str(failures),
            "errors": "0",
            "skipped": str(skipped),
            "time": "0",
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("kind", report.kind),
        ("candidate", report.candidate),
        ("baseline", report.baseline),
        ("thresholds", report.spec.source),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for row in report.rows:
        case = ET.SubElement(
            suite,
            "testcase",
            {"classname": f"evalkit.gate.{report.kind}", "name": _case_name(row), "time": "0"},
        )
        if row.verdict == "FAIL":
            failure = ET.SubElement(case, "failure", {"message": _sentence(row), "type": "regression"})
            failure.text = _row_text(row)
        elif row.verdict == "N/A":
            ET.SubElement(case, "skipped", {"message": row.reason or "not gated"})
    if report.notes:
        ET.SubElement(suite, "system-out").text = "\n".join(f"note: {n}" for n in report.notes)
    return suite


def render_junit_xml(reports: GateReport | Sequence[GateReport]) -> str:
    """The gate reports as one JUnit XML document (UTF-8, with its XML declaration).

    Parameters
    ----------
    reports
        One gate report or several (``evalkit gate`` with two runs and ``--published`` makes two); each
        becomes a ``<testsuite>`` of a ``<testsuites>`` root whose counts are their sums.

    Returns
    -------
    str
        The document; a failed (model, metric) is a ``<testcase>`` with a ``<failure>`` whose ``message``
        is the gate's sentence, an ``N/A`` one a ``<testcase>`` with ``<skipped>``.
    """
    reports = (reports,) if isinstance(reports, GateReport) else tuple(reports)
    suites = [_suite(r) for r in reports]
    root = ET.Element("testsuites", {"name": "evalkit gate"})
    for key in ("tests", "failures", "errors", "skipped"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in suites)))
    root.set("time", "0")
    root.extend(suites)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
