"""The report's gallery: which pairs, images kept during the run (models not run twice), the same images
as translating them again."""

from __future__ import annotations

import dataclasses
import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import records
from conftest import standin_config

import evalkit
from evalkit.data.ade20k import Pair
from evalkit.execution import gallery as gallery_module
from evalkit.execution.gallery import GalleryKeeper, choose_pairs, draw_rank, write_gallery


def scored_run(n: int, seed: int = 0):
    """A two-model run with random per-pair PSNRs (some ties and an infinite one)."""
    rng = np.random.default_rng(seed)
    ref = rng.normal(20, 2, n).round(1)
    cand = ref + rng.choice([0.0, -0.5, -1.0, 0.3], n)
    cand[3] = ref[3] = np.inf
    per_pair = {
        "original": records.samples(n, psnr=list(ref), ssim=0.5),
        "converted": records.samples(n, psnr=list(cand), ssim=0.5),
    }
    models = {"original": records.metrics(False), "converted": records.metrics(False)}
    return records.run(models, n=n, model_samples=per_pair), per_pair


def test_choice_is_the_worst_drops_then_the_smallest_draw_ranks() -> None:
    result, per_pair = scored_run(40)
    k = 4
    choices = choose_pairs(result, k=k, seed=7)
    worst = [c for c in choices if c.reason == "worst"]
    drops = {}
    for s, c in zip(per_pair["original"], per_pair["converted"], strict=True):
        d = c.values["psnr"] - s.values["psnr"]
        drops[s.pair_id] = d if np.isfinite(d) else 0.0
    expected_worst = sorted(drops, key=lambda pid: (drops[pid], pid))[:k]  # ids sort as pair order
    assert [c.pair_id for c in worst] == expected_worst
    assert [c.delta_psnr for c in worst] == [drops[p] for p in expected_worst]
    rest = sorted(set(drops) - set(expected_worst), key=lambda pid: draw_rank(pid, 7))
    assert [c.pair_id for c in choices if c.reason == "random"] == sorted(rest[:k])
    assert choose_pairs(result, k=k, seed=8) != choices  # the seed matters


@pytest.mark.parametrize("k", [1, 3])
def test_the_keeper_holds_every_chosen_pair_and_little_else(k: int) -> None:
    """Images arrive model by model, out of order, from two threads, as from the pipelined executor."""
    result, per_pair = scored_run(60, seed=k)
    keeper = GalleryKeeper(["original", "converted"], "original", k=k, seed=0)
    events = [(i, name) for name in ("original", "converted") for i in range(60)]
    random.Random(1).shuffle(events)
    peak = 0

    def feed(part: list[tuple[int, str]]) -> None:
        nonlocal peak
        for i, name in part:
            sample = per_pair[name][i]
            pair = Pair(index=i, line=i + 1, val_id=sample.pair_id, exemplar_id="ADE_train_1")
            keeper(pair, name, np.full((2, 2, 3), i, np.uint8), sample.values)
            peak = max(peak, len(keeper._images))

    threads = [threading.Thread(target=feed, args=(events[j::2],)) for j in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for choice in choose_pairs(result, k=k, seed=0):
        kept = keeper.images(choice.pair_id)
        assert kept is not None, choice
        i = int(choice.pair_id.rsplit("_", 1)[1]) - 1
        assert set(kept) == {"original", "converted"} and int(kept["converted"][0, 0, 0]) == i
    assert peak <= 3 * k + 1


def test_incomplete_pairs_are_forgotten() -> None:
    keeper = GalleryKeeper(["a", "b"], "a", k=1, seed=0)
    for i in range(GalleryKeeper.MAX_PENDING + 50):  # model b fails on every pair (--on-error skip)
        pair = Pair(index=i, line=i + 1, val_id=f"ADE_val_{i:08d}", exemplar_id="x")
        keeper(pair, "a", np.zeros((2, 2, 3), np.uint8), {"psnr": 1.0, "ssim": 0.5})
    assert len(keeper._pending) <= GalleryKeeper.MAX_PENDING + 1


def test_run_does_not_translate_again_and_gives_the_translated_images(
    standins, synthetic_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = synthetic_data(12)
    config = dataclasses.replace(standin_config(standins, data.root, data.pairs), output=tmp_path / "kept")
    real_compile = gallery_module.compile_translators

    def must_not_compile(*args, **kwargs):
        raise AssertionError("the gallery compiled the models again")

    monkeypatch.setattr(gallery_module, "compile_translators", must_not_compile)
    outcome = evalkit.run_and_report(config, gallery_pairs=2)
    kept = outcome.gallery
    assert kept is not None
    manifest = json.loads((kept / "gallery.json").read_text())
    assert len(manifest["pairs"]) == 4

    # The fallback (no keeper: translate the chosen pairs again) writes the very same files.
    monkeypatch.setattr(gallery_module, "compile_translators", real_compile)
    again = write_gallery(
        dataclasses.replace(config, output=tmp_path / "again"), outcome.result, tmp_path / "again", k=2
    )
    assert json.loads((again / "gallery.json").read_text()) == manifest
    for entry in manifest["pairs"]:
        for name in entry["images"]["models"].values():
            assert (kept / name).read_bytes() == (again / name).read_bytes(), name
