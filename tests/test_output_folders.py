"""Folders a user names for output: a `--save-images` folder that cannot take files is bad input before any
inference (exit 2, one line), and the library's `write_reports` takes a folder as a string like
`run_and_report` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import records

from evalkit import cli, write_reports
from evalkit.errors import InputError
from evalkit.execution.executors import make_executor


@pytest.mark.parametrize("kind", ["inprocess", "dask"])
def test_save_images_on_a_file_is_bad_input_before_any_work(kind: str, tmp_path: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("")
    workers = 1 if kind == "dask" else None
    with pytest.raises(InputError, match=r"taken: --save-images folder is a file, not a folder") as info:
        make_executor(kind, use_cache=False, save_images=a_file, workers=workers)  # type: ignore[arg-type]
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=r"taken/sub: --save-images folder is not writable"):
        make_executor(kind, use_cache=False, save_images=a_file / "sub", workers=workers)  # type: ignore[arg-type]


def test_run_with_save_images_on_a_file_exits_2_in_one_line(tmp_path: Path, capsys) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("")
    config = tmp_path / "c.yaml"
    config.write_text("models: {a: {path: a.xml}}\nverifier: {path: v.xml}\n")
    argv = ["run", str(config), "--save-images", str(a_file), "--output", str(tmp_path / "out")]
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"evalkit: error: {a_file}: --save-images folder is a file, not a folder"]
    assert not (tmp_path / "out").exists()


def test_save_images_folder_is_checked_not_created(tmp_path: Path) -> None:
    # a run refused later (e.g. the folder is inside the data root) must leave no folder behind; the first
    # saved image creates it
    executor = make_executor("inprocess", use_cache=False, save_images=tmp_path / "new" / "images")
    assert executor.save_images == tmp_path / "new" / "images"  # type: ignore[attr-defined]
    assert not (tmp_path / "new").exists()


def test_write_reports_takes_a_string_folder(tmp_path: Path, monkeypatch) -> None:
    run = records.run({"original": records.metrics(), "converted": records.metrics(psnr=19.0)})
    monkeypatch.chdir(tmp_path)
    paths = write_reports(run, "reports/x")
    assert paths["json"] == Path("reports/x/results.json")
    assert json.loads((tmp_path / "reports/x/results.json").read_text())["models"]["converted"]["metrics"][
        "psnr"
    ] == pytest.approx(19.0)
    assert (tmp_path / "reports/x/report.md").read_text().startswith("# evalkit report")
