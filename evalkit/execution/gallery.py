"""The report's gallery: the pairs worth looking at, saved as small images with a manifest.

Which pairs: the ``k`` whose outputs differ most from the reference model's (the largest mean absolute
pixel difference, :func:`mean_abs_difference`, of any other model's image against the reference model's
image), and ``k`` more drawn at random (seeded) from the rest: those whose seeded hash of the pair id is
smallest, so the draw does not depend on which pairs were evaluated in which run or order. The differences
are measured on the images as the run makes them; when the run did not make them all here (a Dask run, or a
run resumed from its journal) or there is only one model, the worst pairs are those with the largest PSNR drop
against the reference model instead (the per-pair scores are all there is), and ``gallery.json`` says which
rule chose (``worst_by``).

Each pair also gets, per candidate model, a difference image against the reference model's output: the
per-pixel absolute difference averaged over the RGB channels, amplified so that the pair's largest
difference (over all candidates, so their images compare) is the top of the scale, ``full_scale`` grey
levels in ``gallery.json``: saved as an 8-bit grey PNG whose value ``v`` means a difference of
``v / 255 * full_scale`` grey levels (saturated at 255). The report colours it (``report.palette``), as it
colours the label maps: the files stay data, and rendering stays in the report.

The images come from the run itself: a :class:`GalleryKeeper` handed to the executor as its ``on_image``
sink keeps, while the pairs stream by, the images of the pairs that can still be chosen (at most the ``k``
worst so far and the ``2k`` smallest hashes so far, plus the pairs in flight), so memory stays flat over
2000 pairs and the models are not run again. Only a chosen pair the keeper never saw (pairs done before a
``--resume``, or a Dask run, whose images stay on the workers) is translated once more, which is
deterministic and gives the same image.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from evalkit import config as cfg
from evalkit.data.ade20k import Pair, pair_files, read_pairs
from evalkit.defaults import GALLERY_PAIRS
from evalkit.execution.pair import PairInputs, generate, prepare_pair
from evalkit.fileio import finite_or_none, write_text_atomic
from evalkit.metrics.registry import per_image_metrics
from evalkit.results import RunResult
from evalkit.runtime.models import compile_translators
from evalkit.runtime.translator import Translator

#: Longest side of a saved gallery image.
THUMBNAIL_SIZE = 320
MANIFEST = "gallery.json"
#: The scores shown under each gallery image: the reference per-image metrics (PSNR, SSIM).
REFERENCE_PER_IMAGE = per_image_metrics(extended=False)


@dataclass(frozen=True)
class GalleryChoice:
    pair_id: str
    reason: str  #: "worst" or "random"
    delta_psnr: float  #: the largest drop of any model against the reference model (dB)


#: ``worst_by`` of ``gallery.json``: the worst pairs have the largest mean absolute pixel difference ...
BY_DIFFERENCE = "mean_abs_difference"
#: ... or, without images of the run (or with one model), the largest PSNR drop.
BY_PSNR_DROP = "psnr_drop"


#: The per-image metric whose drop picks the worst pairs (PSNR: the first reference per-image metric).
DROP_METRIC = REFERENCE_PER_IMAGE[0]


def largest_drop(scores: Mapping[str, Mapping[str, float]], reference: str) -> float:
    """The largest drop (most negative ``model - reference``) of :data:`DROP_METRIC` on one pair over the
    other models; 0 when no difference is finite or there is no other model."""
    others = [n for n in scores if n != reference] or [reference]
    base = scores[reference][DROP_METRIC.key]
    finite = [d for n in others if math.isfinite(d := scores[n][DROP_METRIC.key] - base)]
    return min(finite) if finite else 0.0


def mean_abs_difference(image: np.ndarray, reference: np.ndarray) -> float:
    """The mean absolute pixel difference of two uint8 RGB images of one size, over pixels and channels, in
    grey levels (0..255), computed in float64."""
    return float(difference_map(image, reference).mean(dtype=np.float64))


def difference_map(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """H x W float64: the absolute difference of two uint8 RGB images per pixel, averaged over channels."""
    if image.shape != reference.shape:
        raise ValueError(f"images of different shapes: {image.shape} vs {reference.shape}")
    diff = np.abs(image.astype(np.int16) - reference.astype(np.int16))
    return diff.mean(axis=-1, dtype=np.float64) if diff.ndim == 3 else diff.astype(np.float64)


def candidate_differences(images: Mapping[str, np.ndarray], reference: str) -> dict[str, float]:
    """Each other model's :func:`mean_abs_difference` against the reference model's image of one pair."""
    return {n: mean_abs_difference(img, images[reference]) for n, img in images.items() if n != reference}


def difference_images(
    images: Mapping[str, np.ndarray], reference: str
) -> tuple[float, dict[str, np.ndarray]]:
    """The difference images of one pair: ``(full_scale, {candidate: H x W uint8})``.

    ``full_scale`` is the largest per-pixel difference of any candidate (1 grey level when the images are
    identical), drawn as 255; a pixel's value is ``round(difference / full_scale * 255)``.
    """
    maps = {n: difference_map(img, images[reference]) for n, img in images.items() if n != reference}
    full_scale = max((float(m.max()) for m in maps.values()), default=0.0) or 1.0
    return full_scale, {
        n: np.rint(np.clip(m / full_scale, 0.0, 1.0) * 255.0).astype(np.uint8) for n, m in maps.items()
    }


def worst_by(result: RunResult, differences: Mapping[str, Mapping[str, float]] | None) -> str:
    """Which rule picks the worst pairs: :data:`BY_DIFFERENCE` when every evaluated pair has measured
    differences (the run made all its images here, and there is a model besides the reference), else
    :data:`BY_PSNR_DROP`: after a ``--resume`` the pairs done before it were never measured, and the worst of
    only the rest would not be the worst pairs an uninterrupted run shows."""
    if len(result.models) > 1 and differences:
        ids = [s.pair_id for s in result.models[result.reference_model].samples]
        if ids and all(differences.get(pair_id) for pair_id in ids):
            return BY_DIFFERENCE
    return BY_PSNR_DROP


def draw_rank(pair_id: str, seed: int) -> int:
    """The seeded random rank of a pair for the gallery's random draw (smaller is drawn first)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{pair_id}".encode()).digest()[:8], "big")


def choose_pairs(
    result: RunResult,
    k: int = GALLERY_PAIRS,
    seed: int = 0,
    differences: Mapping[str, Mapping[str, float]] | None = None,
) -> list[GalleryChoice]:
    """The ``k`` worst pairs, then the ``k`` other pairs with the smallest :func:`draw_rank`, in pair order.

    Worst (:func:`worst_by`): with ``differences`` (pair id -> candidate -> :func:`mean_abs_difference`, as
    :meth:`GalleryKeeper.differences` gives), the ``k`` pairs among those with the largest difference of any
    candidate, largest first; else the ``k`` pairs with the largest PSNR drop against the reference model.
    Ties: pair order.
    """
    reference = result.reference_model
    ids = [s.pair_id for s in result.models[reference].samples]
    drops = [
        largest_drop({n: m.samples[i].values for n, m in result.models.items()}, reference)
        for i in range(len(ids))
    ]
    if worst_by(result, differences) == BY_DIFFERENCE:
        assert differences is not None
        measured = [i for i in range(len(ids)) if differences.get(ids[i])]
        largest = {i: max(differences[ids[i]].values()) for i in measured}
        worst = sorted(measured, key=lambda i: (-largest[i], i))[:k]
    else:
        worst = sorted(range(len(ids)), key=lambda i: (drops[i], i))[:k]
    rest = sorted(set(range(len(ids))) - set(worst), key=lambda i: draw_rank(ids[i], seed))
    random = sorted(rest[:k])
    return [GalleryChoice(ids[i], "worst", drops[i]) for i in worst] + [
        GalleryChoice(ids[i], "random", drops[i]) for i in random
    ]


class GalleryKeeper:
    """An image sink for the executor (``on_image``) that keeps the images the gallery may show.

    Thread-safe: the pipelined executor calls it from its worker threads. A pair is considered once every
    model's image of it has arrived; its candidates' :func:`mean_abs_difference` are recorded
    (:meth:`differences`), and its images are kept while it is among the ``k`` largest differences so far
    (with one model: the ``k`` largest PSNR drops) or the ``2k`` smallest draw ranks so far, which are the
    only pairs :func:`choose_pairs` can pick (the ``k`` random pairs are the ``k`` smallest ranks outside the
    ``k`` worst, hence among the ``2k`` smallest).
    Incomplete pairs (a model failed with ``--on-error skip``) are forgotten after :data:`MAX_PENDING`
    newer pairs, so memory stays bounded.
    """

    #: Pairs with some but not all images (in flight); older ones are dropped.
    MAX_PENDING = 256

    def __init__(self, model_names: Sequence[str], reference: str, k: int, seed: int) -> None:
        self.names, self.reference, self.k, self.seed = tuple(model_names), reference, k, seed
        self._lock = threading.Lock()
        self._pending: dict[str, dict[str, tuple[np.ndarray, Mapping[str, float]]]] = {}
        #: (-difference or, with one model, drop; pair index; id): the k worst so far, worst first
        self._worst: list[tuple[float, int, str]] = []
        self._differences: dict[str, dict[str, float]] = {}  #: pair id -> candidate -> mean abs difference
        self._ranked: list[tuple[int, str]] = []  #: (draw rank, id), the 2k smallest ranks
        self._images: dict[str, dict[str, np.ndarray]] = {}

    def __call__(self, pair: Pair, model: str, image: np.ndarray, scores: Mapping[str, float]) -> None:
        with self._lock:
            entry = self._pending.setdefault(pair.val_id, {})
            entry[model] = (image, scores)
            if len(entry) == len(self.names):
                del self._pending[pair.val_id]
                self._consider(pair, entry)
            elif len(self._pending) > self.MAX_PENDING:
                del self._pending[next(iter(self._pending))]

    def _consider(self, pair: Pair, entry: Mapping[str, tuple[np.ndarray, Mapping[str, float]]]) -> None:
        differences = candidate_differences({n: image for n, (image, _) in entry.items()}, self.reference)
        self._differences[pair.val_id] = differences
        if differences:
            badness = -max(differences.values())
        else:
            badness = largest_drop({n: scores for n, (_, scores) in entry.items()}, self.reference)
        self._worst = sorted([*self._worst, (badness, pair.index, pair.val_id)])[: self.k]
        self._ranked = sorted([*self._ranked, (draw_rank(pair.val_id, self.seed), pair.val_id)])[: 2 * self.k]
        wanted = {w[2] for w in self._worst} | {r[1] for r in self._ranked}
        if pair.val_id in wanted:
            self._images[pair.val_id] = {n: image for n, (image, _) in entry.items()}
        for pair_id in set(self._images) - wanted:
            del self._images[pair_id]

    def differences(self) -> dict[str, dict[str, float]]:
        """Pair id -> candidate model -> :func:`mean_abs_difference` against the reference model, for every
        pair whose images all arrived (empty with one model)."""
        with self._lock:
            return {pair_id: dict(d) for pair_id, d in self._differences.items() if d}

    def images(self, pair_id: str) -> Mapping[str, np.ndarray] | None:
        """Every model's generated image of ``pair_id``, if kept."""
        with self._lock:
            return self._images.get(pair_id)


def _save(image: np.ndarray, path: Path) -> str:
    img = Image.fromarray(image)
    img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BICUBIC)
    img.save(path, compress_level=1)  # thumbnails: the fastest zlib level; optimize=True takes ~10x longer
    return path.name


def shrink_by_max(levels: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """``levels`` shrunk by an integer factor to at most ``size`` pixels a side, each pixel the largest of
    its block: an interpolating resize would average a one-pixel error away and lower the brightest value,
    which the page prints as the top of the scale."""
    factor = -(-max(levels.shape) // size)  # ceil
    if factor <= 1:
        return levels
    h, w = levels.shape
    padded = np.zeros((-(-h // factor) * factor, -(-w // factor) * factor), dtype=levels.dtype)
    padded[:h, :w] = levels
    blocks = padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor)
    return blocks.max(axis=(1, 3))


def _save_difference(levels: np.ndarray, path: Path) -> str:
    Image.fromarray(shrink_by_max(levels)).save(path, compress_level=1)
    return path.name


def _save_mask(labels: np.ndarray, path: Path) -> str:
    # Nearest-neighbour only: a label map must keep its class values (the page colourises them).
    img = Image.fromarray(labels)
    img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.NEAREST)
    img.save(path, optimize=True)
    return path.name


def write_gallery(
    config: cfg.Config,
    result: RunResult,
    directory: Path,
    k: int = GALLERY_PAIRS,
    *,
    keeper: GalleryKeeper | None = None,
    compiled_cache: Path | None = None,
    pairs: Sequence[Pair] | None = None,
) -> Path:
    """Write the chosen pairs' images, their difference images and ``gallery.json`` into ``directory``.

    The generated images and the differences that pick the worst pairs come from ``keeper`` (kept during
    the run); a chosen pair it does not have is translated again (the models are compiled once, only then,
    with ``compiled_cache``), and its difference images are made from those, which are the same images.
    ``pairs``: the run's pairs as it read them (see :func:`evalkit.execution.pipeline.run`'s
    ``on_pairs_file``); ``None`` reads the pairs file, which a pipe cannot give a second time.
    """
    assert config.dataset.root is not None and config.dataset.pairs is not None
    root = config.dataset.root
    differences = keeper.differences() if keeper is not None else None
    rule = worst_by(result, differences)
    choices = choose_pairs(result, k=k, seed=config.metrics.seed, differences=differences)
    if pairs is None:
        pairs = read_pairs(config.dataset.pairs, limit=config.dataset.limit)
    by_id: dict[str, Pair] = {p.val_id: p for p in pairs}
    directory.mkdir(parents=True, exist_ok=True)
    translators: list[Translator] = []

    def generated(inputs: PairInputs) -> Mapping[str, np.ndarray]:
        kept = keeper.images(inputs.pair.val_id) if keeper is not None else None
        if kept is not None:
            return kept
        if not translators:
            translators.extend(compile_translators(config, compiled_cache=compiled_cache))
        return {t.spec.name: generate(t, inputs) for t in translators}

    index = {name: {s.pair_id: s for s in m.samples} for name, m in result.models.items()}
    entries = []
    for choice in choices:
        pair = by_id[choice.pair_id]
        inputs = prepare_pair(root, pair, max_pixels=config.dataset.max_pixels)
        files = pair_files(root, pair)
        stem = pair.val_id
        outputs = generated(inputs)
        # "." separates the parts: a model name has none, so a model called "gt" or "x_diff" cannot take
        # another image's file name
        images = {
            "input_mask": _save_mask(
                np.asarray(Image.open(files.input_mask)), directory / f"{stem}.mask.png"
            ),
            "exemplar": _save(
                np.asarray(Image.open(files.exemplar).convert("RGB")), directory / f"{stem}.exemplar.png"
            ),
            "ground_truth": _save(inputs.ground_truth, directory / f"{stem}.gt.png"),
            "models": {
                name: _save(outputs[name], directory / f"{stem}.model.{name}.png") for name in result.models
            },
        }
        scores = {
            name: {m.key: finite_or_none(index[name][stem].values[m.key]) for m in REFERENCE_PER_IMAGE}
            for name in index
        }
        shown = {name: outputs[name] for name in result.models}
        full_scale, levels = difference_images(shown, result.reference_model)
        means = candidate_differences(shown, result.reference_model)
        entry = {
            "pair_id": stem,
            "reason": choice.reason,
            "delta_psnr": finite_or_none(choice.delta_psnr),
            "images": images,
            "scores": scores,
        }
        if levels:
            entry["mean_abs_difference"] = max(means.values())
            entry["differences"] = {
                name: {
                    "image": _save_difference(level, directory / f"{stem}.diff.{name}.png"),
                    "mean_abs_difference": means[name],
                    "full_scale": full_scale,
                }
                for name, level in levels.items()
            }
        entries.append(entry)
    manifest = {"worst_by": rule, "reference_model": result.reference_model, "pairs": entries}
    write_text_atomic(directory / MANIFEST, json.dumps(manifest, indent=1, allow_nan=False) + "\n")
    return directory
