"""One pair's evaluation: read and preprocess once, run every model and the verifier, score the images.

These functions are what a worker does, in this process or on a cluster; they keep no state between pairs.
:func:`evaluate_pair` runs one pair synchronously (the sequential executor, Dask workers); the pipelined
executor runs the same steps (:func:`finish_image`, :func:`sample_scores`, :func:`model_record`) spread
over threads and infer requests, so both give the same bits.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from evalkit import config as cfg
from evalkit.data.ade20k import Pair, read_pair
from evalkit.data.postprocess import output_to_image, upscale
from evalkit.data.preprocess import resize_exemplar, resize_label_map
from evalkit.execution.journal import ModelRecord, PairRecord
from evalkit.metrics import psnr, ssim
from evalkit.results import SampleScores
from evalkit.runtime.translator import Translator
from evalkit.runtime.verifier import Verifier, VerifierOutput


@dataclass(frozen=True)
class PairInputs:
    """One pair, read and resized once for every model (each model's own convention is applied later)."""

    pair: Pair
    mask: np.ndarray  #: 256 x 256 uint8 labels (nearest-neighbour resized input mask)
    exemplar: np.ndarray  #: 256 x 256 x 3 uint8 BGR
    exemplar_mask: np.ndarray  #: 256 x 256 uint8 labels
    ground_truth: np.ndarray  #: H x W x 3 uint8 RGB at its own resolution


def prepare_pair(root: Path, pair: Pair) -> PairInputs:
    """Read the four files of ``pair`` and resize them as the reference does (one-hot comes later, in
    :meth:`evalkit.runtime.translator.Translator.feed` or in the model)."""
    raw = read_pair(root, pair)
    return PairInputs(
        pair=pair,
        mask=resize_label_map(raw.input_mask),
        exemplar=resize_exemplar(raw.exemplar),
        exemplar_mask=resize_label_map(raw.exemplar_mask),
        ground_truth=raw.ground_truth,
    )


def finish_image(raw: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """A raw translation output (``[1,] 3 x 256 x 256``) as uint8 RGB at the ground truth's resolution."""
    height, width = ground_truth.shape[:2]
    return upscale(output_to_image(raw), width, height)


def generate(translator: Translator, inputs: PairInputs) -> np.ndarray:
    """The model's image for one pair: uint8 RGB at the ground truth's resolution."""
    raw = translator.translate(inputs.mask, inputs.exemplar, inputs.exemplar_mask)
    return finish_image(raw, inputs.ground_truth)


def evaluate_pair(
    inputs: PairInputs,
    translators: Sequence[Translator],
    verifier: Verifier,
    spec: cfg.MetricSpec,
    save_images: Path | None = None,
    gt_output: VerifierOutput | None = None,
) -> PairRecord:
    """Run every model and the verifier on one prepared pair (the ground truth is verified once).

    With ``save_images``, each generated image (uint8 RGB at ground-truth size, exactly what was scored)
    is written as ``save_images/MODEL/PAIR_ID.png``. ``gt_output``, when given (from the feature cache),
    is the verifier's output on the ground truth, which is then not verified again.
    """
    gt = inputs.ground_truth
    gt_out = gt_output if gt_output is not None else verifier(gt)
    models = {}
    for t in translators:
        image = generate(t, inputs)
        if save_images is not None:
            save_image(image, saved_image_path(save_images, t.spec.name, inputs.pair))
        out = verifier(image)
        models[t.spec.name] = model_record(sample_scores(inputs.pair.val_id, image, gt, spec), out)
    return PairRecord(
        index=inputs.pair.index, pair_id=inputs.pair.val_id, gt_features=gt_out.features, models=models
    )


def sample_scores(
    pair_id: str, image: np.ndarray, gt: np.ndarray, spec: cfg.MetricSpec
) -> dict[str, float | None]:
    """The per-image scores of one generated image as a journal record holds them (no ``pair_id``)."""
    scores = vars(score_sample(pair_id, image, gt, spec)).copy()
    del scores["pair_id"]
    return scores


def model_record(scores: dict[str, float | None], out: VerifierOutput) -> ModelRecord:
    """One model's record on one pair: its scores and the verifier's outputs on its image."""
    return ModelRecord(scores=scores, probabilities=out.probabilities, features=out.features)


def saved_image_path(directory: Path, model_name: str, pair: Pair) -> Path:
    """Where ``--save-images`` keeps one model's image of one pair."""
    return directory / model_name / f"{pair.val_id}.png"


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
