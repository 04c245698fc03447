"""The report's gallery: which pairs (largest difference from the reference model), difference images,
images kept during the run (models not run twice), the same images as translating them again."""

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
from evalkit.execution.gallery import (
    BY_DIFFERENCE,
    BY_PSNR_DROP,
    GalleryKeeper,
    choose_pairs,
    difference_images,
    draw_rank,
    mean_abs_difference,
    write_gallery,
)


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
            image = np.full((2, 2, 3), i, np.uint8)
            if name == "converted":
                image[1, 1] = (i * 37) % 256  # a difference from the reference that varies by pair
            keeper(pair, name, image, sample.values)
            peak = max(peak, len(keeper._images))

    threads = [threading.Thread(target=feed, args=(events[j::2],)) for j in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    differences = keeper.differences()
    assert len(differences) == 60
    for choice in choose_pairs(result, k=k, seed=0, differences=differences):
        kept = keeper.images(choice.pair_id)
        assert kept is not None, choice
        i = int(choice.pair_id.rsplit("_", 1)[1]) - 1
        assert set(kept) == {"original", "converted"} and int(kept["converted"][0, 0, 0]) == i
    assert peak <= 3 * k + 1


def feed_images(keeper: GalleryKeeper, images: dict[str, list[np.ndarray]], n: int) -> None:
    for i in range(n):
        pair = Pair(index=i, line=i + 1, val_id=f"ADE_val_{i + 1:08d}", exemplar_id="x")
        for name, per_pair in images.items():
            keeper(pair, name, per_pair[i], {"psnr": 20.0, "ssim": 0.5})


def test_the_worst_pairs_have_the_largest_mean_abs_difference_of_any_candidate() -> None:
    """Hand-made images: two candidates; the PSNR scores are all equal, so only the images can decide."""
    n, k = 10, 3
    # Mean abs difference against the reference, per pair, of candidates a and b (a tie at 6.0: pair order).
    diff_a = [0, 1, 6, 0, 2, 0, 9, 0, 0, 1]
    diff_b = [0, 0, 0, 5, 0, 6, 0, 0, 8, 0]
    reference = [np.full((4, 4, 3), 100, np.uint8) for _ in range(n)]
    a = [np.full((4, 4, 3), 100 + d, np.uint8) for d in diff_a]
    b = []
    for d in diff_b:  # b's difference is in one channel of a quarter of the pixels: mean d over all
        image = np.full((4, 4, 3), 100, np.uint8)
        image[:2, :2, 0] = 100 - 12 * d
        b.append(image)
    keeper = GalleryKeeper(["ref", "a", "b"], "ref", k=k, seed=0)
    feed_images(keeper, {"ref": reference, "a": a, "b": b}, n)
    differences = keeper.differences()
    assert differences["ADE_val_00000004"] == {"a": 0.0, "b": 5.0}
    assert mean_abs_difference(b[3], reference[3]) == 5.0
    models = {name: records.metrics(False) for name in ("ref", "a", "b")}
    samples = {name: records.samples(n, psnr=20.0, ssim=0.5) for name in models}
    result = records.run(models, n=n, model_samples=samples, reference_model="ref")
    choices = choose_pairs(result, k=k, seed=0, differences=differences)
    worst = [c.pair_id for c in choices if c.reason == "worst"]
    assert worst == ["ADE_val_00000007", "ADE_val_00000009", "ADE_val_00000003"]  # 9, 8, 6 (tie: 3 < 6)
    assert all(keeper.images(c.pair_id) is not None for c in choices)
    # Without differences (a Dask run or a resumed one): today's PSNR-drop rule, all drops 0 here.
    by_drop = [c.pair_id for c in choose_pairs(result, k=k, seed=0) if c.reason == "worst"]
    assert by_drop == ["ADE_val_00000001", "ADE_val_00000002", "ADE_val_00000003"]
    # A resumed run measured only the pairs of its second part: the worst of those are not the worst pairs
    # (pair 7, the worst, was done before the resume), so the PSNR-drop rule chooses, and says so.
    resumed = {pair_id: d for pair_id, d in differences.items() if pair_id >= "ADE_val_00000008"}
    assert gallery_module.worst_by(result, resumed) == BY_PSNR_DROP
    resumed_choices = choose_pairs(result, k=k, seed=0, differences=resumed)
    assert [c.pair_id for c in resumed_choices if c.reason == "worst"] == by_drop
    assert gallery_module.worst_by(result, differences) == BY_DIFFERENCE
    # One model: nothing to compare, so the keeper measures nothing and the PSNR rule stays.
    alone = GalleryKeeper(["ref"], "ref", k=k, seed=0)
    feed_images(alone, {"ref": reference}, n)
    assert alone.differences() == {}


def test_difference_image_values_and_scale() -> None:
    reference = np.zeros((2, 2, 3), np.uint8)
    small = reference.copy()
    small[0, 1] = 3  # 3 in every channel: 3 grey levels
    small[1, 0] = (6, 0, 0)  # 6 in one channel: 2 grey levels
    small[1, 1] = 12
    large = reference.copy()
    large[0, 0] = (24, 24, 24)
    large[1, 1] = (255, 0, 0)  # 85 grey levels: the pair's largest difference, the top of the scale
    images = {"ref": reference, "small": small, "large": large}
    full_scale, levels = difference_images(images, "ref")
    assert full_scale == 85.0
    assert set(levels) == {"small", "large"}  # one per candidate, none for the reference
    np.testing.assert_array_equal(levels["small"], [[0, 9], [6, 36]])  # round(d / 85 * 255) = 3 d
    np.testing.assert_array_equal(levels["large"], [[72, 0], [0, 255]])
    assert levels["small"].dtype == np.uint8
    assert mean_abs_difference(small, reference) == (0 + 3 + 2 + 12) / 4
    identical, same = difference_images({"ref": reference, "c": reference.copy()}, "ref")
    assert identical == 1.0 and not same["c"].any()  # no difference: all black, a scale of 1 grey level


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
    keepers: list[GalleryKeeper] = []

    class RecordingKeeper(GalleryKeeper):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            keepers.append(self)

    monkeypatch.setattr(gallery_module, "GalleryKeeper", RecordingKeeper)
    outcome = evalkit.run_and_report(config, gallery_pairs=2)
    kept = outcome.gallery
    assert kept is not None
    manifest = json.loads((kept / "gallery.json").read_text())
    assert len(manifest["pairs"]) == 4
    assert manifest["worst_by"] == BY_DIFFERENCE
    for entry in manifest["pairs"]:
        assert set(entry["differences"]) == {"converted"}  # one difference image per candidate
        assert entry["mean_abs_difference"] == entry["differences"]["converted"]["mean_abs_difference"]
    worst = [e["mean_abs_difference"] for e in manifest["pairs"] if e["reason"] == "worst"]
    assert worst == sorted(worst, reverse=True)

    def files(entry: dict) -> list[str]:
        diffs = [d["image"] for d in entry["differences"].values()]
        return [*entry["images"]["models"].values(), *diffs]

    # The fallback for pairs the keeper has no images of translates them again: the very same files.
    monkeypatch.setattr(gallery_module, "compile_translators", real_compile)
    config_again = dataclasses.replace(config, output=tmp_path / "again")
    (keeper,) = keepers
    assert len(keeper.differences()) == 12
    keeper._images.clear()  # it measured every pair but has none of their images
    again = write_gallery(config_again, outcome.result, tmp_path / "again", k=2, keeper=keeper)
    assert json.loads((again / "gallery.json").read_text()) == manifest
    for entry in manifest["pairs"]:
        for name in files(entry):
            assert (kept / name).read_bytes() == (again / name).read_bytes(), name

    # No keeper at all (a Dask run, a resumed one): the PSNR-drop rule, said so; the difference
    # images of the pairs both galleries show are the same bytes.
    alone = write_gallery(config_again, outcome.result, tmp_path / "alone", k=2)
    by_drop = json.loads((alone / "gallery.json").read_text())
    assert by_drop["worst_by"] == BY_PSNR_DROP
    shown = {e["pair_id"]: e for e in manifest["pairs"]}
    common = [e for e in by_drop["pairs"] if e["pair_id"] in shown]
    assert common
    for entry in common:
        assert entry["differences"] == shown[entry["pair_id"]]["differences"]
        for name in files(entry):
            assert (kept / name).read_bytes() == (alone / name).read_bytes(), name


def test_a_one_pixel_difference_survives_the_thumbnail(tmp_path: Path) -> None:
    """The difference thumbnail keeps each block's largest value: the brightest pixel is the printed top of
    the scale, and a single wrong pixel stays visible."""
    levels = np.zeros((600, 401), np.uint8)
    levels[333, 17] = 255
    levels[10:20, 300:310] = 100
    small = gallery_module.shrink_by_max(levels)
    assert max(small.shape) <= gallery_module.THUMBNAIL_SIZE
    assert small.max() == 255 and (small == 255).sum() == 1
    assert (small == 100).any()
    tiny = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert gallery_module.shrink_by_max(tiny) is tiny  # small images are kept as they are


def test_model_names_like_the_gallerys_own_images_take_no_other_images_file(
    standins, synthetic_data, tmp_path: Path
) -> None:
    # models called "gt" and "gt_diff": without a separator no name can hold, their files would be those of
    # the ground truth and of model gt's difference image, and the gallery would show the wrong picture
    data = synthetic_data(12)
    config = standin_config(standins, data.root, data.pairs)
    first, second = config.models
    models = (dataclasses.replace(first, name="gt"), dataclasses.replace(second, name="gt_diff"))
    metrics = dataclasses.replace(config.metrics, reference_model=None)  # the first model, "gt"
    config = dataclasses.replace(config, models=models, metrics=metrics)
    outcome = evalkit.run_and_report(dataclasses.replace(config, output=tmp_path / "out"), gallery_pairs=1)
    assert outcome.gallery is not None
    for entry in json.loads((outcome.gallery / "gallery.json").read_text())["pairs"]:
        images = entry["images"]
        names = [images["input_mask"], images["exemplar"], images["ground_truth"], *images["models"].values()]
        names += [d["image"] for d in entry["differences"].values()]
        assert len(set(names)) == len(names), names
