"""The gate for CI systems: JUnit XML (`--junit-xml FILE`) and the GitHub step summary ($GITHUB_STEP_SUMMARY).

The gate reports and results files are built by hand (tests/records.py, no inference); `run --gate` is
covered by its usage error, which is refused before anything runs.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import one_error_line
from records import metrics
from records import run as make_run

from evalkit import cli
from evalkit.config import DEFAULT_GATE_SPEC, bundled_config
from evalkit.errors import InputError
from evalkit.report.gate import render_gate_markdown
from evalkit.report.junit import render_junit_xml
from evalkit.results import GateReport, GateRow, save_results
from evalkit.workflow import run_and_report, write_gate_ci_files


def row(metric: str, verdict: str, *, value: float, baseline: float, reason: str = "") -> GateRow:
    higher = metric not in ("fid", "kid")
    return GateRow(
        model="converted",
        baseline_model="original",
        metric=metric,
        value=value,
        baseline=baseline,
        delta=value - baseline,
        allowance={"psnr": 0.1, "ssim": 0.01, "kid": 0.001}.get(metric, 1.0),
        higher_is_better=higher,
        verdict=verdict,  # type: ignore[arg-type]
        outside_noise="yes" if verdict == "FAIL" else "unknown",
        reason=reason,
    )


@pytest.fixture
def report() -> GateReport:
    """Four rows: two pass, an SSIM regression, and a KID undefined in the baseline."""
    return GateReport(
        kind="runs",
        baseline="base.json",
        candidate="cand.json",
        spec=DEFAULT_GATE_SPEC,
        rows=(
            row("psnr", "PASS", value=20.0, baseline=20.02),
            row("ssim", "FAIL", value=0.45, baseline=0.5),
            row("fid", "PASS", value=50.0, baseline=50.5),
            row("kid", "N/A", value=0.02, baseline=math.nan, reason="undefined in the baseline"),
        ),
        notes=("is: not in both runs; not gated",),
    )


def cases(suite: ET.Element) -> dict[str, ET.Element]:
    return {case.get("name", ""): case for case in suite.iter("testcase")}


# ------------------------------------------------------------------------------------------ the renderer


def test_junit_xml_parses_and_its_counts_match_the_report(report: GateReport) -> None:
    text = render_junit_xml(report)
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = ET.fromstring(text.encode("utf-8"))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    assert suite.get("name") == "evalkit gate (runs): cand.json vs base.json"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped"), suite.get("errors")) == (
        "4", "1", "1", "0"
    )  # fmt: skip
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("4", "1", "1")
    assert list(cases(suite)) == [
        "converted PSNR vs original", "converted SSIM vs original",
        "converted FID vs original", "converted KID vs original",
    ]  # fmt: skip
    assert {c.get("classname") for c in suite.iter("testcase")} == {"evalkit.gate.runs"}
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties == {
        "kind": "runs", "candidate": "cand.json", "baseline": "base.json", "thresholds": "built-in defaults"
    }  # fmt: skip
    assert suite.findtext("system-out") == "note: is: not in both runs; not gated"


def test_a_failing_row_carries_the_gates_sentence_and_row(report: GateReport) -> None:
    suite = ET.fromstring(render_junit_xml(report)).find("testsuite")
    assert suite is not None
    by_name = cases(suite)
    failure = by_name["converted SSIM vs original"].find("failure")
    assert failure is not None
    # Worded as the terminal summary's failure list: "converted SSIM -0.0500 (allowed >= -0.0100)".
    assert failure.get("message") == "converted SSIM -0.0500 (allowed >= -0.0100)"
    assert failure.get("type") == "regression"
    body = (failure.text or "").splitlines()
    assert "baseline: 0.5000" in body and "value: 0.4500" in body and "verdict: FAIL" in body
    assert "outside noise: yes" in body
    for name in ("converted PSNR vs original", "converted FID vs original"):  # passes have no child
        assert list(by_name[name]) == []


def test_an_undefined_row_is_skipped_with_its_reason(report: GateReport) -> None:
    suite = ET.fromstring(render_junit_xml(report)).find("testsuite")
    assert suite is not None
    kid = cases(suite)["converted KID vs original"]
    assert kid.find("failure") is None
    skipped = kid.find("skipped")
    assert skipped is not None and skipped.get("message") == "undefined in the baseline"


def test_several_reports_are_several_suites_with_summed_counts(report: GateReport) -> None:
    passing = GateReport("published", "cocosnet.yaml", "cand.json", DEFAULT_GATE_SPEC, report.rows[:1])
    root = ET.fromstring(render_junit_xml([report, passing]))
    suites = root.findall("testsuite")
    assert [s.get("name", "").split(":")[0] for s in suites] == [
        "evalkit gate (runs)", "evalkit gate (published)"
    ]  # fmt: skip
    assert [s.get("tests") for s in suites] == ["4", "1"]
    assert (root.get("tests"), root.get("failures"), root.get("skipped")) == ("5", "1", "1")


def test_xml_special_characters_in_names_are_escaped(report: GateReport) -> None:
    odd = GateReport("runs", 'a&b "<1>".json', "c.json", DEFAULT_GATE_SPEC, report.rows)
    suite = ET.fromstring(render_junit_xml(odd)).find("testsuite")
    assert suite is not None and suite.get("name") == 'evalkit gate (runs): c.json vs a&b "<1>".json'


# --------------------------------------------------------------------------------- writing the CI files


def test_the_step_summary_is_appended_not_overwritten(report: GateReport, tmp_path: Path) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("## an earlier step", encoding="utf-8")  # no final newline
    written = write_gate_ci_files(report, step_summary=summary)
    assert written == {"step_summary": summary}
    markdown = render_gate_markdown(report)
    assert summary.read_text(encoding="utf-8") == "## an earlier step\n\n" + markdown
    write_gate_ci_files(report, step_summary=summary)  # a second gate step adds its table
    assert summary.read_text(encoding="utf-8") == "## an earlier step\n\n" + markdown + "\n" + markdown


def test_the_junit_file_goes_into_missing_folders_and_replaces_an_old_one(
    report: GateReport, tmp_path: Path
) -> None:
    target = tmp_path / "ci" / "reports" / "gate.xml"
    assert write_gate_ci_files(report, junit_xml=target) == {"junit": target}
    target.write_text("stale", encoding="utf-8")
    write_gate_ci_files(report, junit_xml=target)
    assert target.read_text(encoding="utf-8") == render_junit_xml(report)
    assert [p.name for p in target.parent.iterdir()] == ["gate.xml"]  # no temporary file left


@pytest.mark.parametrize("where", ["folder", "under_a_file"])
def test_unwritable_paths_are_refused_naming_the_file(report: GateReport, tmp_path: Path, where: str) -> None:
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x", encoding="utf-8")
    bad = tmp_path if where == "folder" else a_file / "gate.xml"
    with pytest.raises(InputError, match=f"^{re.escape(str(bad))}: "):
        write_gate_ci_files(report, junit_xml=bad)
    with pytest.raises(InputError, match=f"^GITHUB_STEP_SUMMARY={re.escape(str(bad))}: "):
        write_gate_ci_files(report, step_summary=bad)


# ------------------------------------------------------------------------------------------ command line


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    """A baseline, an equal candidate and one with an SSIM regression (results.json files)."""
    both = {"original": metrics(), "converted": metrics()}
    out = {
        "baseline": make_run(both),
        "same": make_run(both),
        "worse": make_run({"original": metrics(), "converted": metrics(ssim=0.45)}),
    }
    for name, record in out.items():
        save_results(record, tmp_path / f"{name}.json")
    return {name: tmp_path / f"{name}.json" for name in out}


@pytest.mark.parametrize(("candidate", "code", "failures"), [("same", 0, "0"), ("worse", 1, "1")])
def test_gate_writes_junit_and_step_summary_whatever_the_verdict(
    runs: dict[str, Path], tmp_path: Path, monkeypatch, capsys, candidate: str, code: int, failures: str
) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    xml_file = tmp_path / "junit" / "gate.xml"
    args = ["gate", str(runs["baseline"]), str(runs[candidate]), "--junit-xml", str(xml_file)]
    assert cli.main(args) == code
    capsys.readouterr()
    root = ET.parse(xml_file).getroot()
    assert (root.get("tests"), root.get("failures")) == ("10", failures)  # 2 models x 5 metrics
    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier\n\n# evalkit gate\n")
    assert ("- Result: **PASS**" in text) == (code == 0)
    if code == 1:
        (failure,) = root.iter("failure")
        assert failure.get("message") == "converted SSIM -0.0500 (allowed >= -0.0100)"


def test_gate_without_the_variable_writes_no_summary(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    xml_file = tmp_path / "gate.xml"
    assert cli.main(["gate", str(runs["baseline"]), str(runs["same"]), "--junit-xml", str(xml_file)]) == 0
    assert xml_file.is_file() and sorted(p.name for p in tmp_path.iterdir()) == [
        "baseline.json", "gate.xml", "same.json", "worse.json"
    ]  # fmt: skip


def test_gate_bad_ci_paths_exit_2_before_anything_is_printed(
    runs: dict[str, Path], tmp_path: Path, monkeypatch, capsys
) -> None:
    args = ["gate", str(runs["baseline"]), str(runs["worse"])]
    assert cli.main([*args, "--junit-xml", str(tmp_path)]) == 2
    assert one_error_line(capsys) == f"evalkit: error: {tmp_path}: is a folder, not a file"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path))
    assert cli.main(args) == 2
    assert f"GITHUB_STEP_SUMMARY={tmp_path}: is a folder" in one_error_line(capsys)


def test_run_junit_xml_needs_gate(tmp_path: Path, capsys) -> None:
    config = str(bundled_config("demo.yaml"))
    assert cli.main(["run", config, "--junit-xml", str(tmp_path / "g.xml"), "--output", str(tmp_path)]) == 2
    assert one_error_line(capsys) == (
        "evalkit: error: --junit-xml: only with --gate (there are no verdicts to write)"
    )
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match=r"^junit_xml: only with gate=True"):
        run_and_report(config, tmp_path, junit_xml=tmp_path / "g.xml")


def test_run_gate_refuses_a_bad_junit_path_before_inference(tmp_path: Path, capsys) -> None:
    # The demo config's inputs do not exist here: the path is refused first, so no file error is shown.
    config = str(bundled_config("demo.yaml"))
    code = cli.main(["run", config, "--gate", "--junit-xml", str(tmp_path), "--output", str(tmp_path / "o")])
    assert code == 2
    assert one_error_line(capsys) == f"evalkit: error: {tmp_path}: is a folder, not a file"


def test_help_lists_the_flag_for_gate_and_run(capsys) -> None:
    for command in ("gate", "run"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        assert "--junit-xml FILE" in capsys.readouterr().out


def test_run_gate_writes_junit_and_step_summary(
    standins, synthetic_data, tmp_path: Path, monkeypatch, capsys
) -> None:
    data = synthetic_data(4, [(96, 128), (128, 96), (80, 80), (64, 100)])
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    out, xml_file = tmp_path / "run", tmp_path / "ci" / "gate.xml"
    code = cli.main(
        [
            "run", str(bundled_config("demo.yaml")),
            "--data-root", str(data.root), "--pairs", str(data.pairs),
            "--model", f"original={standins.original}", "--model", f"converted={standins.converted}",
            "--verifier", str(standins.verifier),
            "--limit", "2", "--gallery-pairs", "0", "--output", str(out), "--quiet",
            "--gate", "--junit-xml", str(xml_file),
        ]
    )  # fmt: skip
    assert code == 0
    assert str(xml_file) in capsys.readouterr().out.splitlines()[-1]  # the "Wrote ..." line names it
    suite = ET.parse(xml_file).getroot().find("testsuite")
    assert suite is not None and suite.get("name", "").startswith("evalkit gate (within-run): ")
    assert (suite.get("tests"), suite.get("failures")) == ("5", "0")
    assert summary.read_text(encoding="utf-8") == (out / "gate.md").read_text(encoding="utf-8")
