"""No lost work: the journal, --resume after a failure or kill -9, and --on-error skip."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import start_run_until_journaled

import evalkit
from evalkit.config import bundled_config
from evalkit.data.ade20k import PAIR_FILE_ROLES
from evalkit.errors import InputError
from evalkit.execution.journal import JOURNAL_DIR, Journal, ModelRecord, PairRecord

SIZES = [(96, 128), (128, 96), (80, 80), (120, 160)]


def record(i: int, psnr: float = 12.5) -> PairRecord:
    rng = np.random.default_rng(i)
    models = {
        name: ModelRecord(
            scores={"psnr": psnr, "ssim": 0.25 + i / 100, "ssim_wang": None, "psnr_rgb": None},
            probabilities=rng.random(7, dtype=np.float32),
            features=rng.random(5, dtype=np.float32),
        )
        for name in ("a", "b")
    }
    hashes = {role: f"{i:02d}{role}" for role in PAIR_FILE_ROLES}
    return PairRecord(
        index=i,
        pair_id=f"ADE_val_{i:08d}",
        gt_features=rng.random(5, dtype=np.float32),
        models=models,
        files_sha256=hashes,
    )


def same_record(x: PairRecord, y: PairRecord) -> bool:
    if (x.index, x.pair_id, x.skipped, x.files_sha256) != (y.index, y.pair_id, y.skipped, y.files_sha256):
        return False
    if x.skipped:
        return True
    ok = np.array_equal(x.gt_features, y.gt_features)
    for name in x.models:
        a, b = x.models[name], y.models[name]
        ok &= a.scores == b.scores and np.array_equal(a.probabilities, b.probabilities)
        ok &= np.array_equal(a.features, b.features)
    return bool(ok)


def test_journal_roundtrip_is_bit_exact(tmp_path: Path) -> None:
    j = Journal(tmp_path, {"k": 1}, ["a", "b"], flush_every=2)
    j.start()
    written = [
        record(0),
        record(1, psnr=math.inf),
        PairRecord(2, "ADE_val_2", None, {}, skipped="x.png: not found"),
    ]
    written.append(record(3))
    for r in written:
        j.append(r)
    j.flush()
    again = Journal(tmp_path, {"k": 1}, ["a", "b"]).resume()
    assert len(again) == 4 and all(same_record(x, y) for x, y in zip(written, again, strict=True))
    assert again[1].models["a"].scores["psnr"] == math.inf


def test_torn_write_is_cut_back_to_the_last_good_record(tmp_path: Path) -> None:
    j = Journal(tmp_path, {"k": 1}, ["a", "b"], flush_every=1)
    j.start()
    for i in range(3):
        j.append(record(i))
    jdir = tmp_path / JOURNAL_DIR
    # a kill -9 in the middle of a batch: half a line, and arrays whose checksum no longer matches
    with open(jdir / "records.jsonl", "a") as fh:
        fh.write('{"index": 3, "pair_id": "ADE_va')
    with open(jdir / "arrays.bin", "r+b") as fh:
        fh.seek(-4, os.SEEK_END)
        fh.write(b"\x00\x00\x00\x00")
    again = Journal(tmp_path, {"k": 1}, ["a", "b"], flush_every=1)
    got = again.resume()
    assert [r.index for r in got] == [0, 1]  # record 2's arrays were damaged, so it is redone
    again.append(record(2))
    assert [r.index for r in Journal(tmp_path, {"k": 1}, ["a", "b"]).resume()] == [0, 1, 2]


class Interrupted(Exception):
    pass


def test_an_interrupt_inside_a_flush_never_writes_a_record_twice(tmp_path: Path, monkeypatch) -> None:
    # CI once saw records 0..15 twice: SIGTERM landed after the write, before the buffer was cleared, and
    # the run's `finally` flushed the same buffer again.
    j = Journal(tmp_path, {"k": 1}, ["a", "b"], flush_every=100)
    j.start()
    for i in range(4):
        j.append(record(i))
    real_fsync = os.fsync
    calls = []

    def fsync_then_interrupt(fd: int) -> None:
        real_fsync(fd)
        calls.append(fd)
        if len(calls) == 2:  # records.jsonl written and synced: the worst moment
            raise Interrupted

    monkeypatch.setattr(os, "fsync", fsync_then_interrupt)
    with pytest.raises(Interrupted):
        j.flush()
    j.flush()  # what the pipeline's `finally` does
    lines = (tmp_path / JOURNAL_DIR / "records.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [0, 1, 2, 3]
    assert [r.index for r in Journal(tmp_path, {"k": 1}, ["a", "b"]).resume()] == [0, 1, 2, 3]


SIGTERM_DURING_FLUSH = """
import os, signal, sys
from pathlib import Path
import numpy as np
from evalkit.execution.journal import Journal, ModelRecord, PairRecord

class Interrupted(Exception):
    pass

def raise_interrupted(signum, frame):
    raise Interrupted

signal.signal(signal.SIGTERM, raise_interrupted)
j = Journal(Path(sys.argv[1]), {"k": 1}, ["a"], flush_every=100)
j.start()
for i in range(3):
    model = ModelRecord({"psnr": 1.0}, np.ones(3, np.float32), np.ones(2, np.float32))
    hashes = {r: "x" for r in ("input_mask", "exemplar", "exemplar_mask", "ground_truth")}
    j.append(PairRecord(i, f"p{i}", np.zeros(2, np.float32), {"a": model}, files_sha256=hashes))
real_fsync, sent = os.fsync, []

def signal_then_fsync(fd):
    if not sent:  # SIGTERM arrives between the two files
        sent.append(fd)
        os.kill(os.getpid(), signal.SIGTERM)
    real_fsync(fd)

os.fsync = signal_then_fsync
try:
    j.flush()
except Interrupted:
    print("interrupted after the flush")
"""


def test_sigterm_during_a_flush_waits_until_the_records_are_on_disk(tmp_path: Path) -> None:
    # in a process of its own: a real signal sent to the test runner could reach any of its threads
    command = [sys.executable, "-c", SIGTERM_DURING_FLUSH, str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "interrupted after the flush\n", done.stderr
    assert [r.index for r in Journal(tmp_path, {"k": 1}, ["a"]).resume()] == [0, 1, 2]


def test_journal_of_another_run_is_refused(tmp_path: Path) -> None:
    j = Journal(tmp_path, {"config": {"metrics": {"ssim_constants": "reference"}}}, ["a", "b"])
    j.start()
    other = Journal(tmp_path, {"config": {"metrics": {"ssim_constants": "reference-2020"}}}, ["a", "b"])
    with pytest.raises(InputError, match=r"different run \(config\.metrics\.ssim_constants differs\)"):
        other.resume()


@pytest.fixture(scope="module")
def setup(standins, synthetic_data):
    # shared with other modules: a test that hides a file puts it back
    return standins, synthetic_data(12, SIZES)


def run_api(setup, output: Path | None, **kwargs):
    standins, data = setup
    return evalkit.evaluate(
        bundled_config("demo.yaml"),
        data_root=data.root,
        pairs=data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
        output=output,
        **kwargs,
    )


def metrics_of(result) -> dict:
    return {name: m.metrics.to_dict() for name, m in result.models.items()}


@pytest.fixture(scope="module")
def uninterrupted(setup):
    return run_api(setup, None)


def test_fail_fast_keeps_the_journal_and_resume_is_bit_identical(
    setup, uninterrupted, tmp_path: Path
) -> None:
    _, data = setup
    exemplar = next((data.root / "images" / "training").glob("*.jpg"))
    pairs = data.pairs.read_text().splitlines()
    bad_line = next(i for i, line in enumerate(pairs) if line.split(",")[1] == exemplar.name)
    hidden = tmp_path / "hidden.jpg"
    shutil.move(exemplar, hidden)
    try:
        with pytest.raises(
            InputError, match=rf"{exemplar.name}: exemplar image not found \(pairs line {bad_line + 1}\)"
        ):
            run_api(setup, tmp_path / "out")
        assert not (tmp_path / "out" / "results.json").exists()
        lines = (tmp_path / "out" / JOURNAL_DIR / "records.jsonl").read_text().splitlines()
        assert len(lines) == bad_line  # every pair before the bad one is on disk
    finally:
        shutil.move(hidden, exemplar)
    messages: list[str] = []
    resumed = run_api(setup, tmp_path / "out", resume=True, log=messages.append)
    assert messages == [
        f"resuming: {bad_line} of 12 pairs already done (journal in {tmp_path / 'out' / JOURNAL_DIR})"
    ]
    assert metrics_of(resumed) == metrics_of(uninterrupted)
    for name in resumed.models:
        assert resumed.models[name].samples == uninterrupted.models[name].samples


def test_resume_without_journal_starts_over_and_says_so(setup, uninterrupted, tmp_path: Path) -> None:
    messages: list[str] = []
    result = run_api(setup, tmp_path / "fresh", resume=True, log=messages.append)
    assert messages == [f"no journal in {tmp_path / 'fresh'}: starting from the beginning"]
    assert metrics_of(result) == metrics_of(uninterrupted)


def test_skip_records_bad_pairs_and_reports_them(setup, tmp_path: Path) -> None:
    _, data = setup
    mask = data.root / "annotations" / "validation" / "ADE_val_00000002.png"
    hidden = tmp_path / "m.png"
    shutil.move(mask, hidden)
    try:
        result = run_api(setup, tmp_path / "out", on_error="skip")
    finally:
        shutil.move(hidden, mask)
    assert result.dataset.n_pairs == 11 and result.dataset.n_listed == 12
    assert [s.pair_id for s in result.skipped] == ["ADE_val_00000002"]
    assert result.skipped[0].line == 2 and "label map not found" in result.skipped[0].reason
    assert "ADE_val_00000002" not in [s.pair_id for s in result.models["original"].samples]
    from evalkit.report import write_reports

    paths = write_reports(result, tmp_path / "report")
    assert "N = 11 evaluated / 12 listed" in paths["markdown"].read_text()
    assert json.loads(paths["json"].read_text())["skipped"][0]["pair_id"] == "ADE_val_00000002"


@pytest.mark.slow
def test_kill_9_mid_run_then_resume_gives_the_same_results(setup, synthetic_data, tmp_path: Path) -> None:
    # 40 pairs: the journal flushes every 16, so the kill lands after one or two flushed batches.
    standins, _ = setup
    data = synthetic_data(40, SIZES)
    uninterrupted = run_api((standins, data), None)
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "evalkit", "run", str(bundled_config("demo.yaml")),
        "--data-root", str(data.root), "--pairs", str(data.pairs),
        "--model", f"original={standins.original}", "--model", f"converted={standins.converted}",
        "--verifier", str(standins.verifier), "--output", str(out), "--quiet",
    ]  # fmt: skip
    proc = start_run_until_journaled(cmd, out, 16)
    journal = out / JOURNAL_DIR / "records.jsonl"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(journal.read_text().splitlines())
    assert 16 <= done < 40 and not (out / "results.json").exists()

    resumed = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert "evalkit: resuming:" in resumed.stderr
    data_json = json.loads((out / "results.json").read_text())
    for name, model in uninterrupted.models.items():
        assert data_json["models"][name]["metrics"] == model.metrics.to_dict()
    assert not (out / JOURNAL_DIR).exists()  # removed once the reports are written


def test_a_full_disk_during_a_journal_flush_is_one_line_naming_the_file(tmp_path: Path, monkeypatch) -> None:
    import errno

    j = Journal(tmp_path, {"k": 1}, ["a", "b"], flush_every=100)
    j.start()
    j.append(record(0))
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(InputError) as info:
        j.flush()
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert str(info.value) == (
        f"{tmp_path / JOURNAL_DIR / 'arrays.bin'}: No space left on device (writing the journal; the pairs "
        "journaled before are kept: fix it, then run again with --resume)"
    )
    shutil.rmtree(tmp_path / JOURNAL_DIR)  # the output folder removed under a running run
    j.append(record(1))
    with pytest.raises(InputError, match=r"arrays.bin: No such file or directory \(writing the journal"):
        j.flush()


def test_a_hand_edited_score_ends_the_good_part_of_the_journal(tmp_path: Path) -> None:
    # the arrays have their CRC; the line (scores, file hashes) has its own, so an edited PSNR is redone
    j = Journal(tmp_path, {"k": 1}, ["a", "b"], flush_every=1)
    j.start()
    for i in range(3):
        j.append(record(i))
    path = tmp_path / JOURNAL_DIR / "records.jsonl"
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["scores"]["b"]["psnr"] = 99.0
    path.write_text("\n".join([lines[0], json.dumps(edited), lines[2]]) + "\n")
    assert [r.index for r in Journal(tmp_path, {"k": 1}, ["a", "b"]).resume()] == [0]
