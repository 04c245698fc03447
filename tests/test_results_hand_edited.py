"""A results.json edited by hand (or cut short, or mixed from two runs) is refused by `evalkit report` and
`evalkit gate` with one line naming the file and the problem (exit 2), never a traceback (exit 3) or a report
whose headings and deltas disagree."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import records

from evalkit import cli
from evalkit.results import load_results, save_results


def two_model_run() -> dict[str, Any]:
    """The JSON of a run of two models with samples and a comparison against the first one."""
    models = {"original": records.metrics(), "converted": records.metrics(psnr=19.5)}
    comparison = records.comparison(
        "original", {"converted": {"psnr": records.paired_entry("PSNR", -0.6, -0.4)}}
    )
    per_pair = records.samples(10, psnr=20.0, ssim=0.5, ssim_wang=0.7, psnr_rgb=18.0)
    run = records.run(
        models, comparison=comparison, model_samples={"original": per_pair, "converted": per_pair}
    )
    return run.to_dict()


def _parent(data: Any, path: str) -> tuple[Any, Any]:
    """The container holding the last key of dotted ``path`` (digits index lists), and that key."""
    keys: list[Any] = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        data = data[key]
    return data, keys[-1]


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        parent, key = _parent(data, path)
        parent[key] = value

    return edit


def _delete(path: str) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        parent, key = _parent(data, path)
        del parent[key]

    return edit


EDITS = {
    "models is a list": (_set("models", []), "'models' is not a mapping"),
    "models emptied": (_set("models", {}), "are not the config's models"),
    "timings is a string": (_set("timings", "x"), "'timings' is not a mapping"),
    "comparison entry is a number": (_set("comparison.models.converted.psnr", 5), "is not a mapping"),
    "comparison of a model not in the run": (
        _set("comparison.models.ghost", {}),
        "comparison.models has ['ghost']",
    ),
    "comparison against another reference": (
        _set("comparison.reference_model", "converted"),
        "comparison.reference_model 'converted' is not metrics.reference_model 'original'",
    ),
    "samples of one model dropped": (_set("models.original.samples", []), "different numbers of samples"),
    "sample without its psnr": (_delete("models.original.samples.0.psnr"), "has no 'psnr'"),
    "samples disagree with n": (_set("models.original.n", 11), "10 samples but n = 11"),
    "skipped is a string": (_set("skipped", "x"), "'skipped' is not a list"),
    "gate section cut": (_set("gate", {"kind": "runs"}), "not an evalkit gate section"),
}


def _edit(data: dict[str, Any], name: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    edit, _ = EDITS[name]
    edit(data)
    return data


def test_the_unedited_run_loads(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(two_model_run()))
    assert list(load_results(path).models) == ["original", "converted"]


@pytest.mark.parametrize("name", list(EDITS))
def test_report_and_gate_refuse_a_hand_edited_file_in_one_line(name: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_edit(two_model_run(), name)))
    for argv in (["report", str(path), "--output", str(tmp_path / "out")], ["gate", str(path), str(path)]):
        assert cli.main(argv) == cli.EXIT_BAD_INPUT, argv
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"evalkit: error: {path}: ")
        assert EDITS[name][1] in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("bogus", 1, "key 'metrics.bogus': unknown key"),
        ("reference_model", "nope", "key 'metrics.reference_model': expected one of original, converted"),
    ],
)
def test_a_bad_config_section_names_the_results_file_not_the_yaml(
    key: str, value: Any, problem: str, tmp_path: Path, capsys
) -> None:
    data = two_model_run()
    data["config"]["source"] = "/somewhere/configs/cocosnet.yaml"
    data["config"]["metrics"][key] = value
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    assert cli.main(["report", str(path), "--output", str(tmp_path / "out")]) == cli.EXIT_BAD_INPUT
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"evalkit: error: {path}: config: {problem}")
    assert "\n" not in line and "cocosnet.yaml" not in line


def test_a_valid_config_section_keeps_its_source(tmp_path: Path) -> None:
    data = two_model_run()
    data["config"]["source"] = "/somewhere/configs/cocosnet.yaml"
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    assert load_results(path).config.source == "/somewhere/configs/cocosnet.yaml"


def test_a_file_without_samples_still_loads(tmp_path: Path) -> None:
    """A stripped file (no per-pair samples) still gates, as before the typed record."""
    data = two_model_run()
    for model in data["models"].values():
        del model["samples"]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    result = load_results(path)
    assert all(m.samples == () for m in result.models.values())
    save_results(result, tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text())["models"]["original"]["samples"] == []
