"""Property: whatever sequence of interrupted runs, torn journal writes (kill -9), input edits and resumes
happens, the run that finally completes gives exactly the results of one clean run on the final inputs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import evaluate_standins
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from evalkit.data.ade20k import PAIR_FILE_ROLES, pair_files, read_pairs
from evalkit.execution.journal import JOURNAL_DIR, Journal, PairRecord

N_PAIRS = 12
SIZES = [(96, 128), (128, 96), (80, 80), (120, 160)]

interrupt = st.tuples(st.just("interrupt"), st.integers(1, N_PAIRS - 1))  # Ctrl-C after k journaled pairs
tear = st.tuples(st.just("tear"), st.floats(0.0, 1.0))  # kill -9 mid-write: the journal cut at a byte
edit = st.tuples(  # another writer changes one file of one pair
    st.just("edit"), st.integers(0, N_PAIRS - 1), st.sampled_from(PAIR_FILE_ROLES), st.integers(0, 149)
)
actions = st.lists(st.one_of(interrupt, tear, edit), min_size=1, max_size=5)


def evaluate(standins, root: Path, pairs: Path, output: Path | None, **kwargs):
    return evaluate_standins(standins, root, pairs, output, metrics="reference", **kwargs)


def paint(path: Path, value: int) -> None:
    """New content of the same size and kind: a label map gets class ``value``, an image a flat colour."""
    with Image.open(path) as img:
        size, mode = img.size, img.mode
    if path.suffix == ".png":
        Image.new(mode, size, value if mode == "L" else (value,) * len(mode)).save(path)
    else:
        Image.new("RGB", size, (value, 255 - value, value // 2)).save(path, quality=90)


def interrupted_run(standins, root: Path, pairs: Path, out: Path, k: int) -> None:
    append = Journal.append

    def append_then_interrupt(self: Journal, record: PairRecord) -> None:
        append(self, record)
        self.flush()
        if len((self.dir / "records.jsonl").read_bytes().splitlines()) >= k:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Journal, "append", append_then_interrupt)
        try:
            evaluate(standins, root, pairs, out, resume=True)
        except KeyboardInterrupt:
            pass


def torn(out: Path, at: float) -> None:
    for name in ("records.jsonl", "arrays.bin"):
        path = out / JOURNAL_DIR / name
        if path.exists():
            with open(path, "r+b") as fh:
                fh.truncate(int(path.stat().st_size * at))
            at = min(1.0, at + 0.3)  # the two files are cut at different points, as a kill leaves them


@settings(
    max_examples=6,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure is reproducible
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=actions)
def test_any_interleaving_of_kills_edits_and_resumes_ends_as_a_clean_run(
    standins, synthetic_data, tmp_path_factory: pytest.TempPathFactory, steps
) -> None:
    data = synthetic_data(N_PAIRS, SIZES)
    work = tmp_path_factory.mktemp("interleaving")
    root = work / "root"
    shutil.copytree(data.root, root)
    pairs = read_pairs(data.pairs)
    out = work / "out"
    for step in steps:
        if step[0] == "interrupt":
            interrupted_run(standins, root, data.pairs, out, step[1])
        elif step[0] == "tear":
            torn(out, step[1])
        else:
            _, index, role, value = step
            paint(pair_files(root, pairs[index]).by_role()[role], value)
    final = evaluate(standins, root, data.pairs, out, resume=True)
    clean = evaluate(standins, root, data.pairs, None)
    for name in clean.models:
        assert final.models[name].metrics.to_dict() == clean.models[name].metrics.to_dict(), steps
        assert final.models[name].samples == clean.models[name].samples, steps
    assert final.dataset.n_pairs == clean.dataset.n_pairs == N_PAIRS
