"""One pair's evaluation: read and preprocess once, run every model and the verifier, score the images.

These functions are what a worker does, in this process or on a cluster; they keep no state between pairs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from evalkit import config as cfg
from evalkit.data import Pair, read_pair
from evalkit.journal import ModelRecord, PairRecord
from evalkit.metrics import psnr, ssim
from evalkit.postprocess import output_to_image, upscale
from evalkit.preprocess import one_hot, resize_exemplar, resize_label_map
from evalkit.results import SampleScores
from evalkit.translator import Translator
from evalkit.verifier import Verifier


@dataclass(frozen=True)
class PairInputs:
    """One pair, read and preprocessed once for every model."""

    pair: Pair
    mask: np.ndarray  #: one-hot 151 x 256 x 256 float32
    exemplar: np.ndarray  #: 256 x 256 x 3 uint8 BGR
    exemplar_mask: np.ndarray  #: one-hot 151 x 256 x 256 float32
    ground_truth: np.ndarray  #: H x W x 3 uint8 RGB at its own resolution


def prepare_pair(root: Path, pair: Pair) -> PairInputs:
    """Read the four files of ``pair`` and build the model inputs (reference method)."""
    raw = read_pair(root, pair)
    return PairInputs(
        pair=pair,
        mask=one_hot(resize_label_map(raw.input_mask)),
        exemplar=resize_exemplar(raw.exemplar),
        exemplar_mask=one_hot(resize_label_map(raw.exemplar_mask)),
        ground_truth=raw.ground_truth,
    )


def generate(translator: Translator, inputs: PairInputs) -> np.ndarray:
    """The model's image for one pair: uint8 RGB at the ground truth's resolution."""
    raw = translator.translate(inputs.mask, inputs.exemplar, inputs.exemplar_mask)
    height, width = inputs.ground_truth.shape[:2]
    return upscale(output_to_image(raw), width, height)


def evaluate_pair(
    inputs: PairInputs,
    translators: Sequence[Translator],
    verifier: Verifier,
    spec: cfg.MetricSpec,
    save_images: Path | None = None,
) -> PairRecord:
    """Run every model and the verifier on one prepared pair (the ground truth is verified once).

    With ``save_images``, each generated image (uint8 RGB at ground-truth size, exactly what was scored)
    is written as ``save_images/MODEL/PAIR_ID.png``.
    """
    gt = inputs.ground_truth
    gt_out = verifier(gt)
    models = {}
    for t in translators:
        image = generate(t, inputs)
        if save_images is not None:
            save_image(image, save_images / t.spec.name / f"{inputs.pair.val_id}.png")
        out = verifier(image)
        scores = vars(score_sample(inputs.pair.val_id, image, gt, spec)).copy()
        del scores["pair_id"]
        models[t.spec.name] = ModelRecord(
            scores=scores, probabilities=out.probabilities, features=out.features
        )
    return PairRecord(
        index=inputs.pair.index, pair_id=inputs.pair.val_id, gt_features=gt_out.features, models=models
    )


def save_image(image: np.ndarray, path: Path) -> None:
    """Write a uint8 RGB image as PNG (lossless), atomically: a resumed run never finds half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(image).save(tmp, format="PNG")
    os.replace(tmp, path)


def score_sample(pair_id: str, image: np.ndarray, gt: np.ndarray, spec: cfg.MetricSpec) -> SampleScores:
    """Per-image metrics of one generated image against its ground truth."""
    extended = spec.profile == "all"
    return SampleScores(
        pair_id=pair_id,
        psnr=psnr(image, gt),
        ssim=ssim(image, gt, variant=spec.ssim_constants),
        ssim_wang=ssim(image, gt, variant="wang") if extended else None,
        psnr_rgb=psnr(image, gt, variant="rgb") if extended else None,
    )


def skipped_record(pair: Pair, reason: str) -> PairRecord:
    return PairRecord(index=pair.index, pair_id=pair.val_id, gt_features=None, models={}, skipped=reason)
