"""The command-line contracts of `evalkit gate`, `evalkit report` and `evalkit run --gate`.

Exit codes (0 pass, 1 regression, 2 bad input with one line naming the problem), what is printed and which
files are written. The results files are hand-built records (tests/records.py, no inference) except for
`run --gate`, which evaluates the stand-ins on a few synthetic pairs.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from conftest import one_error_line
from records import metrics
from records import run as make_run

from evalkit import cli
from evalkit.config import bundled_config
from evalkit.gate import compare_within_run
from evalkit.results import RunResult, load_results, save_results


def save(run: RunResult, path: Path) -> Path:
    save_results(run, path)
    return path


@pytest.fixture
def runs(tmp_path: Path) -> dict[str, Path]:
    """results.json files: a baseline, an equal candidate, one with an SSIM regression, one with another
    pairs file, and one whose only model is called ``int8``."""
    both = {"original": metrics(), "converted": metrics()}
    return {
        "baseline": save(make_run(both), tmp_path / "baseline.json"),
        "same": save(make_run(both), tmp_path / "same.json"),
        "worse": save(
            make_run({"original": metrics(), "converted": metrics(ssim=0.45)}), tmp_path / "worse.json"
        ),
        "other_pairs": save(make_run(both, pairs_sha256="c" * 64), tmp_path / "other.json"),
        "int8": save(make_run({"int8": metrics(psnr=19.95)}), tmp_path / "int8.json"),
    }


# ------------------------------------------------------------------------------------------ evalkit gate


def test_gate_pass_prints_the_table_and_exits_0(runs: dict[str, Path], capsys) -> None:
    assert cli.main(["gate", str(runs["baseline"]), str(runs["same"])]) == cli.EXIT_OK
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == (
        f"Gate (runs): {runs['same']} vs {runs['baseline']}; thresholds: built-in defaults"
    )
    assert lines[2].split() == [
        "model", "vs", "metric", "baseline", "value", "delta", "allowed", "outside", "noise", "verdict"
    ]  # fmt: skip
    assert sum(line.startswith(("original ", "converted ")) for line in lines) == 10  # 2 models x 5 metrics
    assert "PASS: 10 check(s) passed" in lines


def test_gate_regression_exits_1_and_writes_markdown(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    md = tmp_path / "out" / "gate.md"
    code = cli.main(["gate", str(runs["baseline"]), str(runs["worse"]), "--markdown", str(md)])
    assert code == cli.EXIT_GATE_FAILED == 1
    out = capsys.readouterr().out
    assert "FAIL: 1 of 10 check(s) failed: converted SSIM -0.0500 (allowed >= -0.0100)" in out
    text = md.read_text(encoding="utf-8")
    assert text.startswith("# evalkit gate\n") and "- Result: **FAIL**" in text
    assert "| converted | converted | SSIM | 0.5000 | 0.4500 | -0.0500 | ≥ -0.0100 |" in text


def test_gate_thresholds_from_a_file_holding_only_gate(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    loose = tmp_path / "loose.yaml"
    loose.write_text("gate: {ssim: {abs: 0.1}}\n")
    assert cli.main(["gate", str(runs["baseline"]), str(runs["worse"]), "--config", str(loose)]) == 0
    assert f"thresholds: {loose}" in capsys.readouterr().out
    loose.write_text("gaet: {ssim: {abs: 0.1}}\n")  # a typo must not silently give the defaults
    assert cli.main(["gate", str(runs["baseline"]), str(runs["worse"]), "--config", str(loose)]) == 2
    assert f"{loose}: key 'gaet': unknown key; did you mean 'gate'?" in one_error_line(capsys)


def test_gate_published_with_a_config_holding_only_published(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    table = tmp_path / "published.yaml"
    table.write_text("published:\n  original: {psnr: '20.00', ssim: '0.50', is: '10.0', fid: '50.0'}\n")
    candidate = str(runs["baseline"])
    assert cli.main(["gate", candidate, "--published", "--config", str(table)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Gate (published): {candidate} vs {table};")
    assert "PASS: 4 check(s) passed" in out and "note: converted: no published figures; not gated" in out
    table.write_text("published:\n  original: {psnr: '20.50'}\n")  # 0.5 dB above what the run measured
    assert cli.main(["gate", candidate, "--published", "--config", str(table)]) == 1
    assert "FAIL: 1 of 1 check(s) failed: original PSNR -0.5000 dB" in capsys.readouterr().out
    # Both comparisons at once: the runs' table, then the published one; one exit code for both.
    code = cli.main(["gate", str(runs["baseline"]), str(runs["same"]), "--published", "--config", str(table)])
    out = capsys.readouterr().out
    assert code == 1 and out.index("Gate (runs)") < out.index("Gate (published)")


def test_gate_published_needs_a_table(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert cli.main(["gate", str(runs["baseline"]), "--published"]) == 2
    assert "no 'published:' table to compare with" in one_error_line(capsys)
    thresholds = tmp_path / "t.yaml"
    thresholds.write_text("gate: {psnr: {abs: 0.2}}\n")
    assert cli.main(["gate", str(runs["baseline"]), "--published", "--config", str(thresholds)]) == 2
    assert f"{thresholds}: no 'published:' table" in one_error_line(capsys)


def test_gate_baseline_model(runs: dict[str, Path], capsys) -> None:
    assert cli.main(["gate", str(runs["baseline"]), str(runs["int8"])]) == 2
    assert "name one with --baseline-model" in one_error_line(capsys)
    code = cli.main(["gate", str(runs["baseline"]), str(runs["int8"]), "--baseline-model", "converted"])
    assert code == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith("int8 ")]
    assert len(rows) == 5 and {r[1] for r in rows} == {"converted"}
    assert cli.main(["gate", str(runs["baseline"]), str(runs["int8"]), "--baseline-model", "orignal"]) == 2
    assert "did you mean 'original'?" in one_error_line(capsys)
    assert cli.main(["gate", str(runs["int8"]), "--published", "--baseline-model", "original"]) == 2
    assert "--baseline-model: needs a BASELINE.json" in one_error_line(capsys)


def test_gate_refuses_runs_that_are_not_comparable(runs: dict[str, Path], capsys) -> None:
    assert cli.main(["gate", str(runs["baseline"]), str(runs["other_pairs"])]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and len(printed.err.strip().splitlines()) == 1
    assert printed.err.startswith("evalkit: error: runs not comparable: dataset.pairs_sha256 differs")


def test_gate_usage_errors_exit_2(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    assert cli.main(["gate", str(runs["baseline"])]) == 2  # one file needs --published
    assert "give BASELINE.json CANDIDATE.json" in one_error_line(capsys)
    three = [str(runs["baseline"]), str(runs["same"]), str(runs["worse"])]
    assert cli.main(["gate", *three]) == 2
    assert "give BASELINE.json CANDIDATE.json" in one_error_line(capsys)
    assert cli.main(["gate", str(tmp_path / "missing.json"), str(runs["same"])]) == 2
    assert "missing.json: results file not found" in one_error_line(capsys)


# ---------------------------------------------------------------------------------------- evalkit report


@pytest.fixture
def gated_results(tmp_path: Path) -> Path:
    """A results.json with a gate section, as `run --gate` writes it, alone in its folder."""
    run = make_run({"original": metrics(), "converted": metrics(psnr=19.5)}, output=str(tmp_path / "run"))
    folder = tmp_path / "run"
    folder.mkdir()
    return save(dataclasses.replace(run, gate=compare_within_run(run)), folder / "results.json")


def test_report_writes_the_requested_formats_to_output(gated_results: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "elsewhere"
    assert cli.main(["report", str(gated_results), "--format", "md,csv", "--output", str(out)]) == 0
    # the files asked for, and the checksum list that makes them one set
    written = sorted(p.name for p in out.iterdir())
    assert written == ["per_sample.csv", "report.md", "results.sha256", "summary.csv"]
    assert sorted(p.name for p in gated_results.parent.iterdir()) == ["results.json"]  # nothing added there
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("Wrote ") and str(out / "report.md") in printed
    assert "| Metric | Original | Converted |" in (out / "report.md").read_text(encoding="utf-8")


def test_report_defaults_to_the_results_folder_and_keeps_its_bytes(gated_results: Path, capsys) -> None:
    before = gated_results.read_bytes()
    assert cli.main(["report", str(gated_results), "--format", "json,md"]) == 0
    assert gated_results.read_bytes() == before  # rewriting the file it read would only reformat it
    assert (gated_results.parent / "report.md").is_file()
    assert str(gated_results) not in capsys.readouterr().out


def test_report_html_shows_the_saved_gate(gated_results: Path, tmp_path: Path) -> None:
    out = tmp_path / "html"
    assert cli.main(["report", str(gated_results), "--format", "html", "--output", str(out)]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Regression gate" in page and "converted PSNR -0.5000 dB" in page
    saved = load_results(gated_results).gate
    assert saved is not None and not saved.passed


@pytest.mark.parametrize("formats", ["md,pdf", ",", "", "HTML"])
def test_report_format_errors_exit_2(gated_results: Path, formats: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "never"
    with pytest.raises(SystemExit) as info:
        cli.main(["report", str(gated_results), "--format", formats, "--output", str(out)])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("evalkit: error: argument --format: expected a comma-separated list of")
    assert not out.exists()


def test_report_bad_input_exits_2(gated_results: Path, tmp_path: Path, capsys) -> None:
    assert cli.main(["report", str(tmp_path / "none.json")]) == 2
    assert "none.json: results file not found" in one_error_line(capsys)
    assert cli.main(["report", str(gated_results), "--gallery", str(tmp_path / "nogallery")]) == 2
    assert "gallery folder not found" in one_error_line(capsys)


# ------------------------------------------------------------------------------------- evalkit run --gate


@pytest.fixture(scope="module")
def standin_inputs(standins, synthetic_data) -> dict[str, Path]:
    """The stand-in models and a few synthetic pairs (conftest: built once), as `evalkit run` needs them."""
    models = standins
    data = synthetic_data(4, [(96, 128), (128, 96), (80, 80), (64, 100)])
    return {
        "root": data.root,
        "pairs": data.pairs,
        "original": models.original,
        "converted": models.converted,
        "verifier": models.verifier,
    }


def run_gate(inputs: dict[str, Path], output: Path, converted: Path) -> int:
    return cli.main(
        [
            "run", str(bundled_config("demo.yaml")),
            "--data-root", str(inputs["root"]), "--pairs", str(inputs["pairs"]),
            "--model", f"original={inputs['original']}", "--model", f"converted={converted}",
            "--verifier", str(inputs["verifier"]),
            "--limit", "3", "--gallery-pairs", "0", "--output", str(output), "--quiet", "--gate",
        ]
    )  # fmt: skip


def test_run_gate_passes_the_fp16_standin(standin_inputs: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "pass"
    assert run_gate(standin_inputs, out, standin_inputs["converted"]) == 0
    printed = capsys.readouterr().out
    assert "Gate (within-run): run (" in printed and "PASS: 5 check(s) passed" in printed
    assert f"{out / 'gate.md'}" in printed.splitlines()[-1]  # the "Wrote ..." line names gate.md
    assert "- Result: **PASS**" in (out / "gate.md").read_text(encoding="utf-8")
    gate = json.loads((out / "results.json").read_text(encoding="utf-8"))["gate"]
    assert gate["passed"] is True and gate["kind"] == "within-run"
    assert {r["model"] for r in gate["rows"]} == {"converted"} and len(gate["rows"]) == 5
    assert gate["thresholds"]["source"] == f"{bundled_config('demo.yaml')} (defaults)"


def test_run_gate_fails_a_broken_model(standin_inputs: dict[str, Path], tmp_path: Path, capsys) -> None:
    # The FP32 model fed the converted model's BGR 0..255 inputs: a conversion gone wrong.
    out = tmp_path / "fail"
    assert run_gate(standin_inputs, out, standin_inputs["original"]) == 1
    printed = capsys.readouterr().out
    assert "FAIL: " in printed and "converted PSNR" in printed
    assert "- Result: **FAIL**" in (out / "gate.md").read_text(encoding="utf-8")
    saved = load_results(out / "results.json").gate
    assert saved is not None and not saved.passed
    assert {r.metric for r in saved.failures} >= {"psnr", "ssim"}
