"""The command line as a user runs it: exit codes, one-line errors, help, and the demo from any directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evalkit import cli, defaults

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


@pytest.mark.slow
def test_demo_runs_from_any_directory(tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = evalkit_cmd("demo", "--cache-dir", str(tmp_path / "cache"), "--quiet", cwd=work)
    assert proc.returncode == 0, proc.stderr
    out = work / defaults.DEMO_OUTPUT  # not reports/demo: that is the committed example
    assert sorted(p.name for p in work.iterdir()) == [defaults.DEMO_OUTPUT]
    for name in ("results.json", "summary.csv", "per_sample.csv", "report.md", "report.html"):
        assert (out / name).is_file(), name
    assert (out / "gallery" / "gallery.json").is_file() and not (out / ".evalkit-journal").exists()
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
    # the stand-ins and data are built once: the second demo says it reuses them, not that it builds them
    assert "evalkit demo: building stand-in models and 6 synthetic pairs" in first.stderr
    assert "evalkit demo: reusing stand-in models and 6 synthetic pairs" in second.stderr
    assert "building" not in second.stderr

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


def test_check_lists_a_bad_data_root_a_missing_model_and_a_bad_verifier_at_once(
    standins, tmp_path: Path, capsys
) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("ADE_val_1.jpg,ADE_train_1.jpg\n")
    code = cli.main([
        "check", str(REPO / "configs" / "demo.yaml"),
        "--data-root", str(tmp_path / "no-such-root"), "--pairs", str(pairs),
        "--model", f"original={standins.original}", "--model", f"converted={tmp_path / 'missing.xml'}",
        "--verifier", str(tmp_path / "verifier.onnx"), "--output", str(tmp_path / "out"),
    ])  # fmt: skip
    assert code == cli.EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[-1] == "evalkit check: 3 problem(s)"
    problems = lines[:-1]
    assert len(problems) == 3 and all(line.startswith("evalkit: error: ") for line in problems)
    assert str(tmp_path / "no-such-root") in problems[0]
    assert problems[1] == (
        f"evalkit: error: {tmp_path / 'missing.xml'}: translation (converted) model file not found"
    )
    assert problems[2].startswith(f"evalkit: error: {tmp_path / 'verifier.onnx'}: ")


def test_run_stops_at_the_first_problem_before_any_inference(standins, tmp_path: Path, capsys) -> None:
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("ADE_val_1.jpg,ADE_train_1.jpg\n")
    code = cli.main([
        "run", str(REPO / "configs" / "demo.yaml"), "--quiet",
        "--data-root", str(tmp_path / "no-such-root"), "--pairs", str(pairs),
        "--model", f"original={standins.original}", "--model", f"converted={tmp_path / 'missing.xml'}",
        "--verifier", str(tmp_path / "verifier.onnx"), "--output", str(tmp_path / "out"),
    ])  # fmt: skip
    assert code == cli.EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path / "no-such-root") in lines[0]
    assert not (tmp_path / "out").exists()  # nothing written: the output folder is checked after the data


def test_one_pair_is_refused_before_any_inference(
    standins, synthetic_data, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FID needs two images: known from the pairs file, so said before the models run (no journal left)."""
    from evalkit.execution import inprocess

    def no_inference(*args, **kwargs):
        raise AssertionError("inference started")

    monkeypatch.setattr(inprocess.InProcessExecutor, "evaluate", no_inference)
    data = synthetic_data(4)
    code = cli.main([
        "run", str(REPO / "configs" / "demo.yaml"), "--quiet", "--limit", "1",
        "--data-root", str(data.root), "--pairs", str(data.pairs), "--verifier", str(standins.verifier),
        "--model", f"original={standins.original}", "--model", f"converted={standins.converted}",
        "--output", str(tmp_path / "out"),
    ])  # fmt: skip
    assert code == cli.EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"evalkit: error: {data.pairs}: FID needs at least 2 pairs, the run lists 1"]
    assert not (tmp_path / "out" / ".evalkit-journal").exists()


def test_run_help_lists_every_file_the_run_writes(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    description = text[: text.index("positional arguments")]
    for written in ("results.json", "summary.csv", "per_sample.csv", "report.md", "report.html", "gallery/"):
        assert written in description, written
    assert "gate.md with --gate" in description and "with --junit-xml FILE also FILE" in description


def test_check_accepts_every_run_option_but_lists_only_those_it_uses(
    standins, synthetic_data, tmp_path: Path, capsys
) -> None:
    data = synthetic_data(4)
    paths = [
        "--data-root", str(data.root), "--pairs", str(data.pairs),
        "--model", f"original={standins.original}", "--model", f"converted={standins.converted}",
        "--verifier", str(standins.verifier), "--output", str(tmp_path / "out"),
    ]  # fmt: skip
    run_only = [
        "--metrics", "all", "--bootstrap", "10", "--gallery-pairs", "2", "--save-images", str(tmp_path / "i"),
        "--executor", "inprocess", "--shard-size", "4", "--resume", "--on-error", "skip", "--no-cache",
        "--cache-dir", str(tmp_path / "c"), "--quiet", "--gate", "--junit-xml", str(tmp_path / "j.xml"),
    ]  # fmt: skip
    assert cli.main(["check", str(REPO / "configs" / "demo.yaml"), *paths, *run_only]) == 0
    assert "evalkit check: OK (4 pairs" in capsys.readouterr().out
    assert not (tmp_path / "j.xml").exists() and not (tmp_path / "i").exists()  # accepted, not acted on
    with pytest.raises(SystemExit):
        cli.main(["check", "--help"])
    text = capsys.readouterr().out
    for used in ("--data-root", "--pairs", "--model", "--verifier", "--limit", "--output", "--device"):
        assert used in text, used
    unused = [
        "--metrics", "--bootstrap", "--gallery-pairs", "--save-images", "--executor", "--scheduler",
        "--workers", "--shard-size", "--resume", "--fresh", "--on-error", "--no-cache", "--cache-dir",
        "--quiet", "--gate", "--junit-xml",
    ]  # fmt: skip
    for option in unused:
        assert option not in text, option


def test_help_prints_the_defaults_of_evalkit_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert f"else {defaults.BOOTSTRAP}; 0 turns them off" in text
    assert f"(default {defaults.GALLERY_PAIRS}; 0 = no gallery)" in text
    assert f"else ./{defaults.OUTPUT})" in text and f"else '{defaults.METRIC_PROFILE}')" in text
    with pytest.raises(SystemExit):
        cli.main(["demo", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"(default: ./{defaults.DEMO_OUTPUT};" in text and f"(default {defaults.DEMO_PAIRS})" in text


def _checkout_state() -> dict[str, int] | None:
    """Every path git reports (tracked changes, untracked and ignored files, one by one) and every tracked
    file under reports/, with its modification time; ``None`` outside a git checkout."""
    try:
        proc = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=all"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        tracked = subprocess.run(
            ["git", "ls-files", "reports"], cwd=REPO, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0 or tracked.returncode != 0:
        return None
    # Python's bytecode and the tools' own caches are not what this test is about.
    noise = ("__pycache__/", ".hypothesis/", ".pytest_cache/", ".ruff_cache/", ".egg-info/", ".venv/")
    lines = [line for line in proc.stdout.splitlines() if not any(n in line for n in noise)]
    entries = [(line, line[3:]) for line in lines] + [(f"tracked {r}", r) for r in tracked.stdout.split()]
    return {key: (REPO / rel).stat().st_mtime_ns if (REPO / rel).exists() else -1 for key, rel in entries}


def test_runs_from_the_checkout_leave_it_as_it_was(standins, synthetic_data, tmp_path: Path) -> None:
    # The test suite runs from the checkout: neither the library, `evalkit run`, `evalkit check` nor
    # `evalkit demo` may write into it (no journal in a config's output, no rewritten reports/demo/).
    before = _checkout_state()
    if before is None:
        pytest.skip("not in a git checkout")
    import evalkit

    data = synthetic_data(4, [(96, 128), (128, 96)])
    paths = {
        "data_root": data.root,
        "pairs": data.pairs,
        "models": {"original": standins.original, "converted": standins.converted},
        "verifier": standins.verifier,
    }
    result = evalkit.evaluate(REPO / "configs" / "demo.yaml", metrics="reference", **paths)
    assert result.dataset.n_pairs == 4
    flags = [
        "--data-root", str(data.root), "--pairs", str(data.pairs), "--verifier", str(standins.verifier),
        "--model", f"original={standins.original}", "--model", f"converted={standins.converted}",
    ]  # fmt: skip
    assert cli.main(["check", str(REPO / "configs" / "demo.yaml"), *flags, "--output", str(tmp_path)]) == 0
    out = tmp_path / "run"
    assert cli.main(["run", str(REPO / "configs" / "demo.yaml"), *flags, "--output", str(out), "--quiet",
                     "--metrics", "reference", "--gallery-pairs", "1"]) == 0  # fmt: skip
    assert (out / "results.json").is_file() and not (out / ".evalkit-journal").exists()
    demo = evalkit_cmd("demo", "--pairs", "4", "--quiet", "--cache-dir", str(tmp_path / "c"), cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / defaults.DEMO_OUTPUT / "results.json").is_file()
    assert _checkout_state() == before


def test_a_config_without_settings_takes_evalkit_defaults() -> None:
    from evalkit.config import MetricSpec, RuntimeSpec, parse_config

    config = parse_config({"models": {"a": {"path": "a.xml"}}, "verifier": {"path": "v.xml"}})
    expected_metrics = (defaults.SSIM_CONSTANTS, defaults.FID_METHOD, defaults.METRIC_PROFILE,
                        defaults.BOOTSTRAP, defaults.SEED)  # fmt: skip
    for spec in (config.metrics, MetricSpec()):
        assert (spec.ssim_constants, spec.fid_method, spec.profile, spec.bootstrap, spec.seed) == (
            expected_metrics
        )
    for runtime in (config.runtime, RuntimeSpec()):
        assert (runtime.device, runtime.reader_threads, runtime.one_hot) == (
            defaults.DEVICE, defaults.READER_THREADS, defaults.ONE_HOT
        )  # fmt: skip
    assert config.output == Path(defaults.OUTPUT)
