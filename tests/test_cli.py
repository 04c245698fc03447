"""The command line as a user runs it: exit codes, one-line errors, help, and the demo from any directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit import cli

REPO = Path(__file__).resolve().parents[1]


def evalkit_cmd(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "evalkit", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_demo_runs_from_any_directory(tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = evalkit_cmd("demo", "--cache-dir", str(tmp_path / "cache"), "--quiet", cwd=work)
    assert proc.returncode == 0, proc.stderr
    out = work / "reports" / "demo"
    for name in ("results.json", "summary.csv", "per_sample.csv", "report.md"):
        assert (out / name).is_file(), name
    data = json.loads((out / "results.json").read_text())
    assert data["dataset"]["n_pairs"] == 32
    assert set(data["models"]) == {"original", "converted"}
    assert "| Metric | Original model (stand-in, FP32) | Converted model (stand-in, FP16) |" in proc.stdout


def test_bad_config_key_exits_2_with_one_line(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("models: {a: {path: a.xml}}\nverifier: {path: v.xml}\nruntme: {}\n")
    proc = evalkit_cmd("run", str(config), cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "c.yaml: key 'runtme': unknown key; did you mean 'runtime'?" in lines[0]


def test_missing_model_file_exits_2_naming_it(tmp_path: Path) -> None:
    data = tmp_path / "ADEChallengeData2016"
    for sub in ("images/training", "images/validation", "annotations/training", "annotations/validation"):
        (data / sub).mkdir(parents=True)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("ADE_val_1.jpg,ADE_train_1.jpg\n")
    proc = evalkit_cmd(
        "run",
        str(REPO / "configs" / "cocosnet.yaml"),
        "--data-root",
        str(data),
        "--pairs",
        str(pairs),
        "--model",
        f"original={tmp_path / 'missing.onnx'}",
        "--model",
        f"converted={tmp_path / 'c.xml'}",
        "--verifier",
        str(tmp_path / "v.xml"),
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"evalkit: error: {tmp_path / 'missing.onnx'}: translation (original) model file not found"
    )


def test_unknown_model_name_and_usage_errors_exit_2(tmp_path: Path) -> None:
    proc = evalkit_cmd(
        "run", str(REPO / "configs" / "cocosnet.yaml"), "--model", "orignal=x.onnx", cwd=tmp_path
    )
    assert proc.returncode == 2 and "did you mean 'original'?" in proc.stderr
    assert evalkit_cmd("run", cwd=tmp_path).returncode == 2
    assert evalkit_cmd("run", "c.yaml", "--limit", "0", cwd=tmp_path).returncode == 2
    assert evalkit_cmd("run", "c.yaml", "--model", "noequals", cwd=tmp_path).returncode == 2


def test_internal_error_exits_3_and_debug_shows_traceback(monkeypatch, capsys, tmp_path: Path) -> None:
    import evalkit.execution.pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(evalkit.execution.pipeline, "run", boom)
    config = tmp_path / "x.yaml"
    config.write_text("models: {a: {path: a.xml}}\nverifier: {path: v.xml}\n")
    assert cli.main(["run", str(config)]) == cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaboom" in err and "--debug" in err and "Traceback" not in err
    assert cli.main(["--debug", "run", str(config)]) == cli.EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (
            "run",
            [
                "--data-root",
                "--pairs",
                "--model",
                "--verifier",
                "--limit",
                "--output",
                "--device",
                "--quiet",
                "--no-cache",
                "--cache-dir",
            ],
        ),
        ("demo", ["--output", "--cache-dir", "--pairs", "--quiet"]),
    ],
)
def test_help_explains_every_option(command: str, options: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in options:
        assert option in text


def test_feature_cache_second_run_reuses_no_cache_bypasses_clear_empties(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = evalkit_cmd("demo", "--cache-dir", str(cache), "--pairs", "6", "--output", "o1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    features = cache / "features"
    assert f"feature cache {features}: 0 ground truths reused, 6 computed" in first.stderr
    # stderr is not a terminal here: progress comes as log lines with every step's count and rate
    assert "original 6/6" in first.stderr and "verifier 6/6" in first.stderr
    second = evalkit_cmd("demo", "--cache-dir", str(cache), "--pairs", "6", "--output", "o2", cwd=tmp_path)
    assert f"feature cache {features}: 6 ground truths reused, 0 computed" in second.stderr

    def metrics(out: str) -> dict:
        return {
            k: v["metrics"]
            for k, v in json.loads((tmp_path / out / "results.json").read_text())["models"].items()
        }

    assert metrics("o1") == metrics("o2")

    demo = cache / "demo"
    run_args = [
        "run", str(REPO / "configs" / "demo.yaml"),
        "--data-root", str(demo / "data-6" / "ADEChallengeData2016"),
        "--pairs", str(demo / "data-6" / "ade20k_ref_test.txt"),
        "--model", f"original={demo / 'models' / 'original.xml'}",
        "--model", f"converted={demo / 'models' / 'converted.xml'}",
        "--verifier", str(demo / "models" / "verifier.xml"),
        "--output", "o3", "--quiet",
    ]  # fmt: skip
    other = tmp_path / "other-cache"
    bypass = evalkit_cmd(*run_args, "--no-cache", "--cache-dir", str(other), cwd=tmp_path)
    assert bypass.returncode == 0, bypass.stderr
    assert "feature cache" not in bypass.stderr and not other.exists()
    assert metrics("o3") == metrics("o1")

    cleared = evalkit_cmd("cache", "clear", "--cache-dir", str(cache), cwd=tmp_path)
    assert cleared.returncode == 0
    assert cleared.stdout.strip() == f"evalkit cache clear: removed 6 entries from {features}"
    assert not list(features.glob("*/*.feat"))
