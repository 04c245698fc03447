"""The report's gallery: the pairs worth looking at, regenerated after the run and saved as small images.

Which pairs: the ``k`` with the largest PSNR drop of any model against the reference model, and ``k``
more drawn at random (seeded) from the rest. The run does not keep every generated image (memory stays
flat over 2000 pairs), so the few gallery pairs are run through the models once more; that is
deterministic, and a handful of pairs costs nothing next to the run.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from evalkit import config as cfg
from evalkit.data.ade20k import Pair, pair_files, read_pairs
from evalkit.defaults import GALLERY_PAIRS
from evalkit.execution.pair import generate, prepare_pair
from evalkit.fileio import finite_or_none, write_text_atomic
from evalkit.metrics.registry import per_image_metrics
from evalkit.results import RunResult
from evalkit.runtime.core import make_core
from evalkit.runtime.translator import load_translator

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


def choose_pairs(result: RunResult, k: int = GALLERY_PAIRS, seed: int = 0) -> list[GalleryChoice]:
    """The ``k`` pairs with the largest PSNR drop against the reference model, then ``k`` random others."""
    names = list(result.models)
    reference = result.reference_model
    ref_samples = result.models[reference].samples
    others = [n for n in names if n != reference] or [reference]
    drops = []
    for i, s in enumerate(ref_samples):
        deltas = [result.models[n].samples[i].psnr - s.psnr for n in others]
        finite = [d for d in deltas if math.isfinite(d)]
        drops.append(min(finite) if finite else 0.0)
    order = sorted(range(len(drops)), key=lambda i: (drops[i], i))
    worst = order[:k]
    rest = [i for i in range(len(drops)) if i not in set(worst)]
    rng = np.random.default_rng(seed)
    random = sorted(rng.choice(rest, size=min(k, len(rest)), replace=False).tolist()) if rest else []
    return [GalleryChoice(ref_samples[i].pair_id, "worst", drops[i]) for i in worst] + [
        GalleryChoice(ref_samples[i].pair_id, "random", drops[i]) for i in random
    ]


def _save(image: np.ndarray, path: Path) -> str:
    img = Image.fromarray(image)
    img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.BICUBIC)
    img.save(path, compress_level=1)  # thumbnails: the fastest zlib level; optimize=True takes ~10x longer
    return path.name


def _save_mask(labels: np.ndarray, path: Path) -> str:
    # Nearest-neighbour only: a label map must keep its class values (the page colourises them).
    img = Image.fromarray(labels)
    img.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.NEAREST)
    img.save(path, optimize=True)
    return path.name


def write_gallery(config: cfg.Config, result: RunResult, directory: Path, k: int = GALLERY_PAIRS) -> Path:
    """Regenerate the chosen pairs and write their images and ``gallery.json`` into ``directory``."""
    assert config.dataset.root is not None and config.dataset.pairs is not None
    root = config.dataset.root
    choices = choose_pairs(result, k=k, seed=config.metrics.seed)
    by_id: dict[str, Pair] = {
        p.val_id: p for p in read_pairs(config.dataset.pairs, limit=config.dataset.limit)
    }
    directory.mkdir(parents=True, exist_ok=True)
    core = make_core()
    translators = [load_translator(core, spec, config.runtime) for spec in config.models]
    index = {name: {s.pair_id: s for s in m.samples} for name, m in result.models.items()}
    entries = []
    for choice in choices:
        pair = by_id[choice.pair_id]
        inputs = prepare_pair(root, pair)
        files = pair_files(root, pair)
        stem = pair.val_id
        images = {
            "input_mask": _save_mask(
                np.asarray(Image.open(files.input_mask)), directory / f"{stem}_mask.png"
            ),
            "exemplar": _save(
                np.asarray(Image.open(files.exemplar).convert("RGB")), directory / f"{stem}_exemplar.png"
            ),
            "ground_truth": _save(inputs.ground_truth, directory / f"{stem}_gt.png"),
            "models": {
                t.spec.name: _save(generate(t, inputs), directory / f"{stem}_{t.spec.name}.png")
                for t in translators
            },
        }
        scores = {
            name: {m.key: finite_or_none(index[name][stem].values[m.key]) for m in REFERENCE_PER_IMAGE}
            for name in index
        }
        entries.append(
            {
                "pair_id": stem,
                "reason": choice.reason,
                "delta_psnr": finite_or_none(choice.delta_psnr),
                "images": images,
                "scores": scores,
            }
        )
    write_text_atomic(directory / MANIFEST, json.dumps({"pairs": entries}, indent=1, allow_nan=False) + "\n")
    return directory
