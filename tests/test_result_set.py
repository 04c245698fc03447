"""A result set is all new or all old: a run's files are staged, then put in place with results.json last and
a results.sha256 list that says which files belong to it. A full disk, a read-only folder or a kill during
writing leaves the previous complete set (or none), never a mix under a results.json."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import one_error_line

from evalkit import cli, fileio, report
from evalkit.config import bundled_config
from evalkit.execution.check import RESULT_SET_NAMES
from evalkit.execution.journal import JOURNAL_DIR
from evalkit.fileio import SET_CHECKSUMS, file_set, set_listing

SIZES = [(96, 128), (128, 96), (80, 80), (120, 160)]


def write_set(folder: Path, files: dict[str, str]) -> None:
    with file_set(folder, RESULT_SET_NAMES, last="results.json") as staging:
        for name, text in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".evalkit-lock")
    }


def verified_set(folder: Path) -> dict[str, bytes] | None:
    """The files of the complete set in ``folder`` (each checked against results.sha256), or None when the
    folder holds no complete set (no results.json). Fails on a mix: a results.json whose list disagrees."""
    if not (folder / "results.json").exists():
        return None
    files = {}
    for line in (folder / SET_CHECKSUMS).read_text().splitlines():
        digest, name = line.split("  ", 1)
        data = (folder / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{name} is not of its results.json's set"
        files[name] = data
    assert "results.json" in files
    return files


OLD = {"results.json": "old run", "report.md": "old report", "gate.md": "old gate", "gallery/a.png": "old a"}
NEW = {"results.json": "new run", "report.md": "new report", "gallery/b.png": "new b"}


def test_a_new_set_replaces_the_old_one_whole(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    write_set(folder, OLD)
    (folder / "notes.txt").write_text("the user's own file")
    write_set(folder, NEW)
    got = verified_set(folder)
    assert got is not None and {k: v.decode() for k, v in got.items()} == NEW
    assert not (folder / "gate.md").exists() and not (folder / "gallery" / "a.png").exists()  # old set's only
    assert (folder / "notes.txt").read_text() == "the user's own file"  # never listed, never touched
    assert not list(folder.glob(".evalkit-staging-*"))
    if shutil.which("sha256sum"):  # the list is in coreutils' format
        subprocess.run(["sha256sum", "--quiet", "-c", SET_CHECKSUMS], cwd=folder, check=True)


def test_a_full_disk_part_way_leaves_the_old_set(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    write_set(folder, OLD)
    before = snapshot(folder)
    with pytest.raises(OSError) as caught:
        with file_set(folder, RESULT_SET_NAMES, last="results.json") as staging:
            fileio.write_text_atomic(staging / "report.md", "new report")
            # a writer that runs out of space part way (write() itself names no file: atomic_path adds it)
            with fileio.atomic_path(staging / "summary.csv") as tmp, open(tmp, "w") as fh:
                fh.write("half")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    # named by where it was going, not by the staging folder
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(folder / "summary.csv")
    assert snapshot(folder) == before  # no staging folder left either


@pytest.mark.parametrize("fail_at", range(28))  # a clean switch of OLD -> NEW takes fewer steps
def test_a_kill_at_any_step_of_the_switch_leaves_the_old_set_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    folder = tmp_path / "out"
    write_set(folder, OLD)
    steps = []
    real = {name: getattr(os, name) for name in ("replace", "unlink", "fsync")}

    def step(name):
        def counted(*args, **kwargs):
            steps.append(name)
            if len(steps) == fail_at + 1:
                raise KeyboardInterrupt  # the process dies here
            return real[name](*args, **kwargs)

        return counted

    for name in real:
        monkeypatch.setattr(os, name, step(name))
    try:
        write_set(folder, NEW)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    if fail_at == 27:
        assert len(steps) < 27  # the clean switch ended before: the range tried a kill at every step
    seen = verified_set(folder)  # asserts the set is whole whenever results.json is there
    assert seen is None or {k: v.decode() for k, v in seen.items()} in (OLD, NEW)
    write_set(folder, NEW)  # the next run (under the folder's lock) cleans up and completes
    assert {k: v.decode() for k, v in verified_set(folder).items()} == NEW
    assert not list(folder.glob(".evalkit-staging-*"))


def test_a_hand_edited_list_cannot_delete_outside_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "out"
    write_set(folder, OLD)
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    with open(folder / SET_CHECKSUMS, "a") as fh:
        fh.write(f"{'0' * 64}  ../precious.txt\n{'0' * 64}  {outside}\n")
    assert "../precious.txt" not in set_listing(folder) and str(outside) not in set_listing(folder)
    write_set(folder, NEW)
    assert outside.read_text() == "keep"


def test_a_checksum_list_not_written_by_evalkit_never_deletes_what_it_lists(tmp_path: Path) -> None:
    # a data set's own SHA256SUMS, or a user's: only names of a result set are ever removed or replaced
    folder = tmp_path / "out"
    (folder / "photos").mkdir(parents=True)
    (folder / "photos" / "p1.jpg").write_text("p")
    (folder / "thesis.tex").write_text("x")
    (folder / SET_CHECKSUMS).write_text(f"{'0' * 64}  thesis.tex\n{'0' * 64}  photos/p1.jpg\n")
    write_set(folder, NEW)
    assert (folder / "thesis.tex").read_text() == "x" and (folder / "photos" / "p1.jpg").read_text() == "p"


def test_a_file_of_the_user_inside_the_gallery_stops_the_switch_before_anything_is_removed(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "out"
    write_set(folder, OLD)
    (folder / "gallery" / "notes.txt").write_text("mine")
    before = snapshot(folder)
    with pytest.raises(OSError, match="not written by evalkit") as caught:
        write_set(folder, NEW)
    assert caught.value.filename == str(folder / "gallery" / "notes.txt")
    assert snapshot(folder) == before
    # a first run into a folder whose `gallery` is the user's own
    other = tmp_path / "first"
    (other / "gallery").mkdir(parents=True)
    (other / "gallery" / "holiday.jpg").write_text("jpg")
    with pytest.raises(OSError, match="not written by evalkit"):
        write_set(other, NEW)
    assert (other / "gallery" / "holiday.jpg").read_text() == "jpg" and not (other / "results.json").exists()


# ------------------------------------------------------------------------------------------ whole runs


def run_argv(standins, data, out: Path, converted: str = "converted") -> list[str]:
    """``evalkit run`` of the demo config; ``converted`` names the stand-in that plays the converted model."""
    return [
        "run", str(bundled_config("demo.yaml")), "--data-root", str(data.root), "--pairs", str(data.pairs),
        "--model", f"original={standins.original}", "--model", f"converted={getattr(standins, converted)}",
        "--verifier", str(standins.verifier), "--output", str(out), "--quiet",
    ]  # fmt: skip


def test_a_full_disk_while_writing_reports_keeps_the_previous_run_and_the_journal(
    standins, synthetic_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    data = synthetic_data(12, SIZES)
    out = tmp_path / "out"
    assert cli.main(run_argv(standins, data, out)) == 0
    previous = snapshot(out)
    assert verified_set(out) is not None and "gallery/gallery.json" in previous
    capsys.readouterr()

    real_write = report.write_text_atomic

    def full_disk_at_per_sample(path: Path, text: str, **kwargs) -> None:
        if path.name == "per_sample.csv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real_write(path, text, **kwargs)

    monkeypatch.setattr(report, "write_text_atomic", full_disk_at_per_sample)
    # another run (other models) into the same folder: the disk fills while it writes the reports
    argv = [*run_argv(standins, data, out, converted="original_baked"), "--no-cache"]  # no cache log line
    assert cli.main(argv) == cli.EXIT_BAD_INPUT
    line = one_error_line(capsys)
    assert "per_sample.csv: No space left on device (while writing the results;" in line
    assert "run again with --resume" in line
    assert {k: v for k, v in snapshot(out).items() if not k.startswith(JOURNAL_DIR)} == previous
    assert (out / JOURNAL_DIR / "meta.json").is_file()

    monkeypatch.undo()
    assert cli.main([*argv, "--resume"]) == 0
    renewed = verified_set(out)
    assert renewed is not None and renewed != {k: previous[k] for k in renewed if k in previous}
    models = json.loads(renewed["results.json"])["models"]
    assert models["converted"]["path"] == str(standins.original_baked) and not (out / JOURNAL_DIR).exists()


def test_report_renews_its_own_folder_set_and_refuses_another_runs(
    standins, synthetic_data, tmp_path: Path, capsys
) -> None:
    data = synthetic_data(12, SIZES)
    out = tmp_path / "out"
    assert cli.main(run_argv(standins, data, out)) == 0
    results_bytes = (out / "results.json").read_bytes()
    gallery_before = snapshot(out / "gallery")
    (out / "report.md").write_text("stale")  # not of the set any more
    assert cli.main(["report", str(out / "results.json"), "--format", "md"]) == 0
    renewed = verified_set(out)  # the whole set checks again: report.md re-rendered, the rest kept
    assert renewed is not None and renewed["results.json"] == results_bytes
    assert snapshot(out / "gallery") == gallery_before and b"stale" not in renewed["report.md"]

    other = tmp_path / "other"
    assert cli.main(run_argv(standins, data, other)) == 0
    capsys.readouterr()
    assert cli.main(["report", str(out / "results.json"), "--output", str(other)]) == cli.EXIT_BAD_INPUT
    assert f"{other}: holds the result set of another run (results.sha256); choose another --output" in (
        one_error_line(capsys)
    )
    # rendering the same results again into a folder it rendered before is no mix
    again = tmp_path / "again"
    for _ in range(2):
        assert cli.main(["report", str(out / "results.json"), "--output", str(again)]) == 0
    assert verified_set(again) is not None


def test_a_run_into_a_folder_whose_gallery_is_the_users_exits_2_before_inference(
    standins, synthetic_data, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from evalkit.execution.inprocess import InProcessExecutor

    def no_inference(*args, **kwargs):
        raise AssertionError("inference started")

    monkeypatch.setattr(InProcessExecutor, "evaluate", no_inference)
    data = synthetic_data(12, SIZES)
    out = tmp_path / "out"
    (out / "gallery").mkdir(parents=True)
    (out / "gallery" / "holiday.jpg").write_text("jpg")
    assert cli.main([*run_argv(standins, data, out), "--no-cache"]) == cli.EXIT_BAD_INPUT
    assert one_error_line(capsys) == (
        f"evalkit: error: {out / 'gallery' / 'holiday.jpg'}: not written by evalkit (not listed in "
        f"{out / SET_CHECKSUMS}); move it away or choose another --output"
    )
    assert (out / "gallery" / "holiday.jpg").read_text() == "jpg" and not (out / JOURNAL_DIR).exists()
