"""Outputs never land on inputs (issue 12, point 4): `--output`, `--save-images`, `--cache-dir` and the
gallery folder may not be the data root or inside it, a model's or the verifier's folder, or the pairs file's
folder itself (exit 2, one line, before any inference); a saved image never
replaces a file evalkit did not write."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from evalkit import cli
from evalkit.data.ade20k import read_pairs_file
from evalkit.errors import InputError
from evalkit.execution import inprocess
from evalkit.execution.pair import IMAGES_MARKER, keep_image

DEMO = str(REPO / "configs" / "demo.yaml")


@pytest.fixture
def no_inference(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("inference started")

    monkeypatch.setattr(inprocess.InProcessExecutor, "evaluate", refuse)


def _argv(command: str, standins, root: Path, pairs: Path, *extra: str) -> list[str]:
    return [
        command, DEMO, "--quiet", "--data-root", str(root), "--pairs", str(pairs),
        "--model", f"original={standins.original}", "--model", f"converted={standins.converted}",
        "--verifier", str(standins.verifier), *extra,
    ]  # fmt: skip


def _error(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    "case",
    ["output=root", "output in root", "save-images in root", "output=model folder", "cache-dir=verifier dir"],
)
def test_an_output_on_an_input_exits_2_in_one_line_before_inference(
    case: str, standins, synthetic_data, tmp_path: Path, capsys, no_inference
) -> None:
    data = synthetic_data(4)
    out = tmp_path / "out"
    flags, named, expected = {
        "output=root": (["--output", str(data.root)], data.root, "--output is the data root"),
        "output in root": (
            ["--output", str(data.root / "x")], data.root / "x", "--output is inside the data root"
        ),
        "save-images in root": (
            ["--output", str(out), "--save-images", str(data.root / "imgs")],
            data.root / "imgs",
            "--save-images is inside the data root",
        ),
        "output=model folder": (
            ["--output", str(standins.original.parent)],
            standins.original.parent,
            "--output is the folder of model 'original'",
        ),
        "cache-dir=verifier dir": (
            ["--output", str(out), "--cache-dir", str(standins.verifier.parent)],
            standins.verifier.parent,
            "--cache-dir is the folder of",
        ),
    }[case]
    before = sorted(data.root.rglob("*"))
    try:
        code = cli.main(_argv("run", standins, data.root, data.pairs, *flags))
    finally:  # the data set is shared: put it back as it was
        if case == "save-images in root":
            shutil.rmtree(data.root / "imgs", ignore_errors=True)
    assert code == cli.EXIT_BAD_INPUT
    line = _error(capsys)
    assert line.startswith(f"evalkit: error: {named}: {expected}"), line
    assert not (out / ".evalkit-journal").exists()
    assert sorted(data.root.rglob("*")) == before  # nothing written among the inputs, not even a folder


def test_the_pairs_files_folder_is_refused_but_a_new_sub_folder_of_it_is_fine(
    standins, synthetic_data, tmp_path: Path, capsys, no_inference
) -> None:
    data = synthetic_data(4)
    lists = tmp_path / "lists"
    lists.mkdir()
    pairs = Path(shutil.copy(data.pairs, lists / "pairs.txt"))  # a sub-folder is created: not the shared one
    assert cli.main(_argv("run", standins, data.root, pairs, "--output", str(lists))) == cli.EXIT_BAD_INPUT
    assert _error(capsys).startswith(f"evalkit: error: {lists}: --output is the folder of the pairs file")
    assert cli.main(_argv("check", standins, data.root, pairs, "--output", str(lists / "new"))) == cli.EXIT_OK
    assert "evalkit check: OK (4 pairs" in capsys.readouterr().out


def test_check_lists_each_output_on_an_input(standins, synthetic_data, tmp_path: Path, capsys) -> None:
    data = synthetic_data(4)
    argv = _argv(
        "check", standins, data.root, data.pairs,
        "--output", str(data.root), "--cache-dir", str(standins.verifier.parent),
    )  # fmt: skip
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"{data.root}: --output is the data root" in err
    assert f"{data.root / 'gallery'}: gallery folder is inside the data root" in err
    assert f"{standins.verifier.parent}: --cache-dir is the folder of" in err


def test_an_unrelated_png_in_save_images_is_never_overwritten(
    standins, synthetic_data, tmp_path: Path, capsys, no_inference
) -> None:
    data = synthetic_data(4)
    first = read_pairs_file(data.pairs).pairs[0]
    theirs = tmp_path / "imgs" / "converted" / f"{first.val_id}.png"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"someone else's picture")
    argv = _argv(
        "run", standins, data.root, data.pairs, "--output", str(tmp_path / "out"),
        "--save-images", str(tmp_path / "imgs"),
    )  # fmt: skip
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    assert _error(capsys).startswith(f"evalkit: error: {theirs}: exists and was not written by evalkit")
    assert theirs.read_bytes() == b"someone else's picture"
    assert not (tmp_path / "imgs" / IMAGES_MARKER).exists()


def test_keep_image_replaces_only_images_in_a_folder_evalkit_owns(synthetic_data, tmp_path: Path) -> None:
    pair = read_pairs_file(synthetic_data(4).pairs).pairs[0]
    image = np.zeros((4, 4, 3), np.uint8)
    theirs = tmp_path / "theirs" / "m" / f"{pair.val_id}.png"
    theirs.parent.mkdir(parents=True)
    theirs.write_bytes(b"x")
    with pytest.raises(InputError, match="exists and was not written by evalkit"):
        keep_image(image, tmp_path / "theirs", "m", pair)
    assert theirs.read_bytes() == b"x"
    ours = tmp_path / "ours"
    keep_image(image, ours, "m", pair)  # a new folder: evalkit's from its first image
    assert (ours / IMAGES_MARKER).is_file()
    keep_image(image + 1, ours, "m", pair)  # a resumed or repeated run replaces its own image
    assert (ours / "m" / f"{pair.val_id}.png").stat().st_size > 0
