"""Provenance is true: the pairs file is read once and the recorded hash is of the bytes parsed (a pipe or a
process substitution works); SIGTERM ends a run like Ctrl-C (journal flushed, one line, exit 143)."""

from __future__ import annotations

import hashlib
import json
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import start_run_until_journaled

import evalkit
from evalkit.config import bundled_config
from evalkit.execution import pipeline
from evalkit.execution.journal import JOURNAL_DIR

SIZES = [(96, 128), (128, 96), (80, 80), (120, 160)]


def run_command(standins, data, pairs: str, out: Path) -> list[str]:
    return [
        sys.executable, "-m", "evalkit", "run", str(bundled_config("demo.yaml")),
        "--data-root", str(data.root), "--pairs", pairs,
        "--model", f"original={standins.original}", "--model", f"converted={standins.converted}",
        "--verifier", str(standins.verifier), "--output", str(out), "--quiet",
    ]  # fmt: skip


def test_process_substitution_runs_and_records_the_hash_of_its_bytes(
    standins, synthetic_data, tmp_path: Path
) -> None:
    data = synthetic_data(12, SIZES)
    out = tmp_path / "out"
    cmd = shlex.join(run_command(standins, data, "PAIRS", out)).replace("PAIRS", f"<(cat {data.pairs})")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    dataset = json.loads((out / "results.json").read_text())["dataset"]
    assert dataset["pairs_sha256"] == hashlib.sha256(data.pairs.read_bytes()).hexdigest()
    assert dataset["pairs"].startswith("/dev/fd/") and dataset["n_listed"] == 12
    assert (out / "gallery" / "gallery.json").is_file()  # the gallery did not read the pipe a second time


def test_a_pairs_file_changed_during_the_run_cannot_change_the_recorded_hash(
    standins, synthetic_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = synthetic_data(12, SIZES)
    pairs = tmp_path / "pairs.txt"
    parsed = data.pairs.read_bytes()
    pairs.write_bytes(parsed)
    hash_model = pipeline.model_sha256

    def rewrite_then_hash(path: Path) -> str:
        # after the checks read the pairs file, before any inference: another writer edits it
        pairs.write_bytes(b"\n".join(parsed.splitlines()[:5]) + b"\n")
        return hash_model(path)

    monkeypatch.setattr(pipeline, "model_sha256", rewrite_then_hash)
    result = evalkit.evaluate(
        bundled_config("demo.yaml"),
        data_root=data.root,
        pairs=pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
        output=tmp_path / "out",
        metrics="reference",
    )
    assert pairs.read_bytes() != parsed
    assert result.dataset.pairs_sha256 == hashlib.sha256(parsed).hexdigest()
    assert result.dataset.n_listed == 12 and result.dataset.n_pairs == 12


@pytest.mark.slow
def test_sigterm_flushes_the_journal_says_how_to_resume_and_resume_completes(
    standins, synthetic_data, tmp_path: Path
) -> None:
    data = synthetic_data(40, SIZES)
    uninterrupted = evalkit.evaluate(
        bundled_config("demo.yaml"),
        data_root=data.root,
        pairs=data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
    )
    out = tmp_path / "out"
    cmd = run_command(standins, data, str(data.pairs), out)
    proc = start_run_until_journaled(cmd, out, 16, stderr=subprocess.PIPE)
    journal = out / JOURNAL_DIR / "records.jsonl"
    seen = len(journal.read_text().splitlines())
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    # one line says it (before it, only the cache's usual log line; no traceback)
    assert stderr.strip().splitlines()[-1] == (
        "evalkit: interrupted (SIGTERM); resume with the same command plus --resume"
    )
    assert stderr.count("interrupted") == 1 and "Traceback" not in stderr
    lines = journal.read_text().splitlines()
    assert seen <= len(lines) < 40 and not (out / "results.json").exists()
    assert [json.loads(line)["index"] for line in lines] == list(range(len(lines)))  # whole records

    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"evalkit: resuming: {len(lines)} of 40 pairs already done" in resumed.stderr
    results = json.loads((out / "results.json").read_text())
    for name, model in uninterrupted.models.items():
        assert results["models"][name]["metrics"] == model.metrics.to_dict()
        assert results["models"][name]["n"] == model.n
