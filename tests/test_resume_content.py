"""Resume trusts content, not paths: the journal keeps each pair's four file hashes, and a resumed run
evaluates again every journaled pair whose files changed (and every skipped pair), so its numbers are always
those of a clean run on the files as they are now."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import evaluate_standins
from PIL import Image

from evalkit.data import ade20k
from evalkit.data.ade20k import PAIR_FILE_ROLES, pair_file_hashes, read_pair, read_pairs
from evalkit.errors import InputError
from evalkit.execution import pipeline
from evalkit.execution.journal import JOURNAL_DIR, Journal, ModelRecord, PairRecord
from evalkit.fileio import sha256_file

SIZES = [(96, 128), (128, 96), (80, 80), (120, 160)]


def toy_record(index: int, tag: str) -> PairRecord:
    model = ModelRecord({"psnr": 1.0}, np.ones(3, np.float32), np.ones(2, np.float32))
    hashes = {role: tag for role in PAIR_FILE_ROLES}
    return PairRecord(index, f"p{index}", np.zeros(2, np.float32), {"a": model}, files_sha256=hashes)


def test_a_pair_journaled_twice_is_read_once_the_later_record_winning(tmp_path: Path) -> None:
    journal = Journal(tmp_path, {"k": 1}, ["a"], flush_every=1)
    journal.start()
    for record in (toy_record(0, "old"), toy_record(2, "x"), toy_record(1, "x"), toy_record(0, "new")):
        journal.append(record)
    got = Journal(tmp_path, {"k": 1}, ["a"]).resume()
    assert [r.index for r in got] == [0, 1, 2]  # by pair index, whatever the order they were written in
    assert got[0].files_sha256 == {role: "new" for role in PAIR_FILE_ROLES}


def test_read_pair_hashes_the_bytes_it_decodes(synthetic_data) -> None:
    data = synthetic_data(12, SIZES)
    pair = read_pairs(data.pairs)[3]
    images = read_pair(data.root, pair)
    files = ade20k.pair_files(data.root, pair).by_role()
    assert dict(images.sha256) == {role: sha256_file(path) for role, path in files.items()}
    assert pair_file_hashes(data.root, pair) == dict(images.sha256)


def test_a_file_rewritten_while_it_is_read_is_refused(
    synthetic_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = synthetic_data(12, SIZES)
    root = tmp_path / "root"
    shutil.copytree(data.root, root)
    pair = read_pairs(data.pairs)[0]
    gt = ade20k.pair_files(root, pair).ground_truth
    real_hash = ade20k.sha256_file

    def hash_then_edit(path: Path) -> str:
        digest = real_hash(path)
        if path == gt:  # another writer replaces the file between its hash and its decoding
            Image.new("RGB", Image.open(gt).size, (1, 2, 3)).save(gt, quality=95)
        return digest

    monkeypatch.setattr(ade20k, "sha256_file", hash_then_edit)
    with pytest.raises(InputError, match=rf"^{gt}: changed while evalkit was reading it \(pairs line 1\)"):
        read_pair(root, pair)


@pytest.fixture()
def own_tree(synthetic_data, tmp_path: Path):
    data = synthetic_data(12, SIZES)
    root = tmp_path / "root"
    shutil.copytree(data.root, root)
    return root, data.pairs


def run_on(root: Path, pairs: Path, standins, output: Path | None, **kwargs):
    return evaluate_standins(standins, root, pairs, output, **kwargs)


def same_numbers(a, b) -> bool:
    same = a.dataset.n_pairs == b.dataset.n_pairs
    for name in a.models:
        same &= a.models[name].metrics.to_dict() == b.models[name].metrics.to_dict()
        same &= a.models[name].samples == b.models[name].samples
    return same


def interrupt_after(monkeypatch: pytest.MonkeyPatch, n_records: int) -> None:
    """Make the next run stop like Ctrl-C once ``n_records`` records are journaled."""
    append = Journal.append

    def append_then_interrupt(self: Journal, record: PairRecord) -> None:
        append(self, record)
        self.flush()
        if len((self.dir / "records.jsonl").read_text().splitlines()) >= n_records:
            raise KeyboardInterrupt

    monkeypatch.setattr(Journal, "append", append_then_interrupt)


def repaint(path: Path, colour: tuple[int, int, int]) -> None:
    """Change an image's content, keeping its size and format."""
    with Image.open(path) as img:
        size, mode = img.size, img.mode
    if mode == "L":
        Image.new("L", size, colour[0]).save(path)
    else:
        Image.new("RGB", size, colour).save(path, quality=95)


def test_resume_evaluates_again_the_pairs_whose_files_changed(
    standins, own_tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, pairs_path = own_tree
    pairs = read_pairs(pairs_path)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        interrupt_after(m, 8)
        with pytest.raises(KeyboardInterrupt):
            run_on(root, pairs_path, standins, out)
    # edits to journaled pairs: a ground truth, and a label map (class 0 everywhere: a new input mask)
    edited_gt = ade20k.pair_files(root, pairs[1]).ground_truth
    repaint(edited_gt, (200, 30, 30))
    repaint(ade20k.pair_files(root, pairs[5]).input_mask, (0, 0, 0))
    messages: list[str] = []
    resumed = run_on(root, pairs_path, standins, out, resume=True, log=messages.append)
    assert messages[0] == f"resuming: 6 of 12 pairs already done (journal in {out / JOURNAL_DIR})"
    assert messages[1] == (
        f"2 journaled pair(s) evaluated again: their files changed since (first: {edited_gt})"
    )
    assert same_numbers(resumed, run_on(root, pairs_path, standins, None))


def test_resume_tries_skipped_pairs_again(
    standins, own_tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, pairs_path = own_tree
    pairs = read_pairs(pairs_path)
    mask = ade20k.pair_files(root, pairs[2]).input_mask
    hidden = tmp_path / "hidden.png"
    shutil.move(mask, hidden)
    out = tmp_path / "out"
    with monkeypatch.context() as m:
        interrupt_after(m, 6)
        with pytest.raises(KeyboardInterrupt):
            run_on(root, pairs_path, standins, out, on_error="skip")
    shutil.move(hidden, mask)  # fixed before the resume
    messages: list[str] = []
    resumed = run_on(root, pairs_path, standins, out, resume=True, on_error="skip", log=messages.append)
    assert messages[1:] == ["1 skipped pair(s) tried again"]
    assert not resumed.skipped and same_numbers(resumed, run_on(root, pairs_path, standins, None))


def test_a_record_without_file_hashes_is_not_trusted(tmp_path: Path) -> None:
    # a journal line whose hashes are damaged (hand-edited, or written by a buggy version) ends the good part
    journal = Journal(tmp_path, {"k": 1}, ["a"], flush_every=1)
    journal.start()
    journal.append(toy_record(0, "x"))
    journal.append(toy_record(1, "x"))
    lines = (tmp_path / JOURNAL_DIR / "records.jsonl").read_text().splitlines()
    (tmp_path / JOURNAL_DIR / "records.jsonl").write_text(
        lines[0] + "\n" + lines[1].replace('"sha256": {', '"sha256": {"ground_truth": 7, "x": ') + "\n"
    )
    assert [r.index for r in Journal(tmp_path, {"k": 1}, ["a"]).resume()] == [0]


def test_still_valid_names_the_first_changed_file_of_each_pair(own_tree) -> None:
    root, pairs_path = own_tree
    pairs = read_pairs(pairs_path)
    records = []
    for pair in pairs[:3]:
        hashes = pair_file_hashes(root, pair)
        records.append(PairRecord(pair.index, pair.val_id, None, {}, files_sha256=hashes))
    exemplar = ade20k.pair_files(root, pairs[1]).exemplar
    repaint(exemplar, (9, 9, 9))
    exemplar_mask = ade20k.pair_files(root, pairs[2]).exemplar_mask
    exemplar_mask.unlink()  # a missing file is a change too
    # same content, but through a symbolic link leading out of the data root: a new run would refuse it
    outside = root.parent / "outside.jpg"
    gt = ade20k.pair_files(root, pairs[0]).ground_truth
    shutil.copy(gt, outside)
    gt.unlink()
    gt.symlink_to(outside)
    assert pair_file_hashes(root, pairs[0])["ground_truth"] is None
    gt.unlink()
    shutil.copy(outside, gt)
    kept, changed, retried = pipeline.still_valid(root, pairs, records)
    assert len({p.exemplar_id for p in pairs[:3]}) == 3  # the synthetic pairs share no exemplar
    assert [r.index for r in kept] == [0]
    assert changed == [exemplar, exemplar_mask] and retried == 0


def test_a_ground_truth_rewritten_after_its_read_never_poisons_the_feature_cache(
    standins, own_tree, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cache key is the hash of the bytes the run read, not of a second read: otherwise the features of
    # the old image would be filed under the new image's key and every later run would reuse them.
    from evalkit.execution.executors import make_executor
    from evalkit.execution.pair import PairEvaluator

    root, pairs_path = own_tree
    gt = ade20k.pair_files(root, read_pairs(pairs_path)[6]).ground_truth
    read = PairEvaluator.read

    def read_then_rewrite(self: PairEvaluator, pair):
        inputs = read(self, pair)
        if pair.index == 6:
            repaint(gt, (30, 200, 30))  # another writer, right after the run read the file
        return inputs

    def cached():
        return make_executor("inprocess", cache_root=tmp_path / "cache")

    with monkeypatch.context() as patch:
        patch.setattr(PairEvaluator, "read", read_then_rewrite)
        run_on(root, pairs_path, standins, None, executor=cached())
    reused = run_on(root, pairs_path, standins, None, executor=cached())
    fresh = run_on(root, pairs_path, standins, None, executor=make_executor("inprocess", use_cache=False))
    assert same_numbers(reused, fresh)
