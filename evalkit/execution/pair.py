"""One pair's evaluation: read and preprocess once, run every model and the verifier, score the images.

This is what a worker does, in this process or on a cluster; nothing is kept between pairs.
:class:`PairEvaluator` holds what a pair needs besides itself (data root, compiled models, metric settings,
the ground-truth cache, where to save images); :meth:`PairEvaluator.records` is the one synchronous pair
loop, run by the sequential executor and by every Dask worker. The pipelined executor schedules the same
steps (:meth:`PairEvaluator.read`, :func:`finish_image`, :meth:`PairEvaluator.score`,
:func:`model_record`, :func:`pair_record`, the same :class:`~evalkit.execution.cache.GroundTruthCache`)
over threads and infer requests, so every executor gives the same bits.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from evalkit import config as cfg
from evalkit import defaults
from evalkit.data.ade20k import Pair, read_pair
from evalkit.data.postprocess import output_to_image, upscale
from evalkit.data.preprocess import resize_exemplar, resize_label_map
from evalkit.errors import InputError
from evalkit.execution.cache import GroundTruthCache
from evalkit.execution.journal import ModelRecord, PairRecord
from evalkit.fileio import atomic_path
from evalkit.metrics.registry import per_image_metrics
from evalkit.runtime.models import ModelSet
from evalkit.runtime.translator import Translator
from evalkit.runtime.verifier import VerifierOutput
from evalkit.stats.aggregate import metric_settings


@dataclass(frozen=True)
class PairInputs:
    """One pair, read and resized once for every model (each model's own convention is applied later)."""

    pair: Pair
    mask: np.ndarray  #: 256 x 256 uint8 labels (nearest-neighbour resized input mask)
    exemplar: np.ndarray  #: 256 x 256 x 3 uint8 BGR
    exemplar_mask: np.ndarray  #: 256 x 256 uint8 labels
    ground_truth: np.ndarray  #: H x W x 3 uint8 RGB at its own resolution
    files_sha256: Mapping[str, str]  #: the four files' SHA-256 by role (what the journal's resume checks)


def prepare_pair(root: Path, pair: Pair, *, max_pixels: int = defaults.MAX_PIXELS) -> PairInputs:
    """Read the four files of ``pair`` and resize them as the reference does (one-hot comes later, in
    :meth:`evalkit.runtime.translator.Translator.feed` or in the model)."""
    raw = read_pair(root, pair, max_pixels=max_pixels)
    return PairInputs(
        pair=pair,
        mask=resize_label_map(raw.input_mask),
        exemplar=resize_exemplar(raw.exemplar),
        exemplar_mask=resize_label_map(raw.exemplar_mask),
        ground_truth=raw.ground_truth,
        files_sha256=raw.sha256,
    )


def finish_image(raw: np.ndarray, ground_truth: np.ndarray) -> np.ndarray:
    """A raw translation output (``[1,] 3 x 256 x 256``) as uint8 RGB at the ground truth's resolution."""
    height, width = ground_truth.shape[:2]
    return upscale(output_to_image(raw), width, height)


def generate(translator: Translator, inputs: PairInputs) -> np.ndarray:
    """The model's image for one pair: uint8 RGB at the ground truth's resolution."""
    raw = translator.translate(inputs.mask, inputs.exemplar, inputs.exemplar_mask)
    return finish_image(raw, inputs.ground_truth)


def sample_scores(image: np.ndarray, gt: np.ndarray, spec: cfg.MetricSpec) -> dict[str, float]:
    """The per-image metrics of one generated image against its ground truth, as a journal record holds
    them: registry key -> value, for every per-image metric of the run's profile."""
    settings = metric_settings(spec)
    return {m.key: m.compute(image, gt, settings) for m in per_image_metrics(spec.profile == "all")}


def model_record(scores: dict[str, float | None], out: VerifierOutput) -> ModelRecord:
    """One model's record on one pair: its scores and the verifier's outputs on its image."""
    return ModelRecord(scores=scores, probabilities=out.probabilities, features=out.features)


def saved_image_path(directory: Path, model_name: str, pair: Pair) -> Path:
    """Where ``--save-images`` keeps one model's image of one pair."""
    return directory / model_name / f"{pair.val_id}.png"


#: Written into a ``--save-images`` folder with its first image: the images there are evalkit's to replace.
IMAGES_MARKER = ".evalkit-images"


def keep_image(image: np.ndarray, directory: Path, model_name: str, pair: Pair) -> None:
    """Save one model's image of one pair in the ``--save-images`` folder ``directory``.

    An image is replaced only in a folder evalkit owns (:data:`IMAGES_MARKER`, written here with the
    first image): an existing file in any other folder was not written by evalkit and is never
    overwritten (the run's checks refuse such a folder before inference; this is the last guard).
    ``model_name`` is a validated config name (letters, digits, '-', '_'), safe as a path component.

    Raises
    ------
    InputError
        The image's path exists in a folder without the marker.
    """
    path = saved_image_path(directory, model_name, pair)
    marker = directory / IMAGES_MARKER
    if not marker.is_file():
        if path.exists():
            raise InputError(
                f"{path}: exists and was not written by evalkit; --save-images never overwrites it"
            )
        directory.mkdir(parents=True, exist_ok=True)
        marker.touch()
    save_image(image, path)


def save_image(image: np.ndarray, path: Path) -> None:
    """Write a uint8 RGB image as PNG (lossless), atomically: a resumed run never finds half a file."""
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def pair_record(
    pair: Pair, files_sha256: Mapping[str, str], gt_out: VerifierOutput, models: Mapping[str, ModelRecord]
) -> PairRecord:
    """The journal record of an evaluated pair: the ground truth's features, each model's record and the
    hashes of the files they came from."""
    return PairRecord(
        index=pair.index,
        pair_id=pair.val_id,
        gt_features=gt_out.features,
        models=dict(models),
        files_sha256=dict(files_sha256),
    )


def skipped_record(pair: Pair, reason: str) -> PairRecord:
    """The journal record of a pair skipped (``--on-error skip``) for ``reason``."""
    return PairRecord(index=pair.index, pair_id=pair.val_id, gt_features=None, models={}, skipped=reason)


#: Receives ``(pair, model name, generated image, its per-image scores)`` for every scored image.
ImageSink = Callable[[Pair, str, np.ndarray, Mapping[str, float]], None]

#: What an executor does at a bad input: raise at once (``"fail"``) or record the pair as skipped.
OnError = Literal["fail", "skip"]
#: How many pairs are read and preprocessed ahead of inference (the synchronous loop).
PREFETCH_DEPTH = 4


@dataclass
class PairEvaluator:
    """Everything evaluating a pair needs besides the pair; its methods are the steps every executor runs.

    Parameters
    ----------
    root
        The data root (``dataset.root``).
    models
        The compiled models (:func:`evalkit.runtime.models.compile_models`).
    metrics
        The run's metric settings.
    ground_truths
        The ground-truth feature cache of this run (``None``: every ground truth is verified).
    save_images
        If given, every generated image (uint8 RGB at ground-truth size, exactly what was scored) is kept
        as ``save_images/MODEL/PAIR_ID.png`` (``--save-images``).
    on_image
        If given, called with every generated image and its scores as soon as it is scored (the report's
        gallery keeps a few this way instead of running the models again); may be called from several
        threads at once.
    max_pixels
        ``dataset.max_pixels``: an image of a pair declaring more pixels is refused before it is decoded.
    """

    root: Path
    models: ModelSet
    metrics: cfg.MetricSpec
    ground_truths: GroundTruthCache | None = None
    save_images: Path | None = None
    on_image: ImageSink | None = None
    max_pixels: int = defaults.MAX_PIXELS  #: ``dataset.max_pixels``

    def read(self, pair: Pair) -> PairInputs:
        """Read and resize ``pair`` (raises :class:`~evalkit.errors.InputError` for a bad input)."""
        return prepare_pair(self.root, pair, max_pixels=self.max_pixels)

    def cached_ground_truth(self, inputs: PairInputs) -> tuple[str | None, VerifierOutput | None]:
        """The cache key of a read pair's ground truth and its cached verifier outputs, if any."""
        if self.ground_truths is None:
            return None, None
        return self.ground_truths.lookup(inputs.files_sha256["ground_truth"])

    def keep_ground_truth(self, key: str | None, out: VerifierOutput) -> None:
        """Store a ground truth's verifier outputs computed after a miss (once its pair succeeded)."""
        if self.ground_truths is not None:
            self.ground_truths.store(key, out)

    def score(self, model_name: str, image: np.ndarray, inputs: PairInputs) -> dict[str, float]:
        """One model's generated image of one pair: saved if asked, then scored against the ground truth."""
        if self.save_images is not None:
            keep_image(image, self.save_images, model_name, inputs.pair)
        scores = sample_scores(image, inputs.ground_truth, self.metrics)
        if self.on_image is not None:
            self.on_image(inputs.pair, model_name, image, scores)
        return scores

    def evaluate(self, inputs: PairInputs) -> PairRecord:
        """Run every model and the verifier on one prepared pair, one synchronous request at a time.

        The ground truth is verified once, or not at all when the cache has it; a verified ground truth
        is stored in the cache once every model succeeded on the pair.
        """
        verifier = self.models.verifier
        key, cached = self.cached_ground_truth(inputs)
        gt_out = cached if cached is not None else verifier(inputs.ground_truth)
        models = {}
        for t in self.models.translators:
            image = generate(t, inputs)
            scores = self.score(t.spec.name, image, inputs)
            models[t.spec.name] = model_record(scores, verifier(image))
        if cached is None:
            self.keep_ground_truth(key, gt_out)
        return pair_record(inputs.pair, inputs.files_sha256, gt_out, models)

    def records(self, pairs: Sequence[Pair], on_error: OnError) -> Iterator[PairRecord]:
        """The records of ``pairs`` in order, one pair after the other (inputs read a few pairs ahead).

        A bad pair raises its :class:`~evalkit.errors.InputError` (``on_error="fail"``; every record before
        it was yielded) or is yielded as a skipped record (``"skip"``).
        """
        stream = prefetched(self.read, pairs, PREFETCH_DEPTH)
        with contextlib.closing(stream):  # an early end stops the reader thread now, not when collected
            for pair, inputs in stream:
                try:
                    if isinstance(inputs, InputError):
                        raise inputs
                    record = self.evaluate(inputs)
                except InputError as exc:
                    if on_error != "skip":
                        raise
                    record = skipped_record(pair, str(exc))
                yield record


def prefetched(
    read: Callable[[Pair], PairInputs], pairs: Sequence[Pair], depth: int
) -> Iterator[tuple[Pair, PairInputs | InputError]]:
    """Each pair with its inputs read by ``read`` on a thread ``depth`` pairs ahead, in pair order.

    A bad pair's :class:`~evalkit.errors.InputError` is handed over in place of its inputs, so that
    ``--on-error skip`` can go on. Close the iterator to stop reading early.
    """

    # OpenCV and Pillow release the GIL while decoding and resizing, so a worker thread keeps the next
    # pairs ready while OpenVINO runs the current one.
    def safe(pair: Pair) -> PairInputs | InputError:
        try:
            return read(pair)
        except InputError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-read") as pool:
        pending: deque[tuple[Pair, Future[PairInputs | InputError]]] = deque()
        it = iter(pairs)
        for pair in it:
            pending.append((pair, pool.submit(safe, pair)))
            if len(pending) >= depth:
                break
        try:
            while pending:
                pair, future = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(safe, nxt)))
                yield pair, future.result()
        finally:  # closed early (a bad pair in fail mode): do not read what nobody will use
            for _, future in pending:
                future.cancel()
