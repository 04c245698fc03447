"""The only place that wires the stages: pairs -> inputs -> models -> images -> verifier -> metrics.

Each pair is read and preprocessed once (in a background thread, ahead of inference) and fed to every
model; the ground truth goes through the verifier once and is shared by every model.
"""

from __future__ import annotations

import hashlib
import platform
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from evalkit import __version__
from evalkit import config as cfg
from evalkit.data import (
    Pair,
    check_root,
    pair_files,
    read_exemplar,
    read_ground_truth,
    read_label_map,
    read_pairs,
    sha256_file,
)
from evalkit.errors import InputError
from evalkit.metrics import fid, inception_score, kid, mean_std_finite, psnr, ssim
from evalkit.postprocess import output_to_image, upscale
from evalkit.preprocess import one_hot, resize_exemplar, resize_label_map
from evalkit.results import (
    DatasetInfo,
    ExtendedMetrics,
    ModelMetrics,
    ModelResult,
    RunResult,
    SampleScores,
    VerifierInfo,
)
from evalkit.runtime import make_core
from evalkit.translator import Translator, load_translator
from evalkit.verifier import load_verifier

#: How many pairs are read and preprocessed ahead of inference.
PREFETCH_DEPTH = 4


class Progress(Protocol):
    """Receives progress events; the CLI shows them as bars, the API ignores them by default."""

    def start(self, model_names: Sequence[str], total: int) -> None: ...
    def advance(self, model_name: str) -> None: ...
    def close(self) -> None: ...


class _NoProgress:
    def start(self, model_names: Sequence[str], total: int) -> None:
        pass

    def advance(self, model_name: str) -> None:
        pass

    def close(self) -> None:
        pass


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
    files = pair_files(root, pair)
    return PairInputs(
        pair=pair,
        mask=one_hot(resize_label_map(read_label_map(files.input_mask, pair))),
        exemplar=resize_exemplar(read_exemplar(files.exemplar, pair)),
        exemplar_mask=one_hot(resize_label_map(read_label_map(files.exemplar_mask, pair))),
        ground_truth=read_ground_truth(files.ground_truth, pair),
    )


def generate(translator: Translator, inputs: PairInputs) -> np.ndarray:
    """The model's image for one pair: uint8 RGB at the ground truth's resolution."""
    raw = translator.translate(inputs.mask, inputs.exemplar, inputs.exemplar_mask)
    height, width = inputs.ground_truth.shape[:2]
    return upscale(output_to_image(raw), width, height)


def _prefetched(fn: Callable[[Pair], PairInputs], pairs: Sequence[Pair], depth: int) -> Iterator[PairInputs]:
    # OpenCV and Pillow release the GIL while decoding and resizing, so one worker thread keeps the
    # next pairs ready while OpenVINO runs the current one. Order is preserved.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-read") as pool:
        queue: deque[Future[PairInputs]] = deque()
        it = iter(pairs)
        for pair in it:
            queue.append(pool.submit(fn, pair))
            if len(queue) >= depth:
                break
        while queue:
            result = queue.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                queue.append(pool.submit(fn, nxt))
            yield result


class _ModelAccumulator:
    """Per-model rows and verifier outputs, in pair order."""

    def __init__(self, n: int, n_classes: int, n_features: int) -> None:
        self.samples: list[SampleScores] = []
        self.probabilities = np.empty((n, n_classes), dtype=np.float32)
        self.features = np.empty((n, n_features), dtype=np.float32)


#: Splits of the extended table's Inception Score (the common GAN-literature protocol).
IS_SPLITS = 10


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


def _extended(acc: _ModelAccumulator, gt_features: np.ndarray, spec: cfg.MetricSpec) -> ExtendedMetrics:
    n = len(acc.samples)
    psnr_rgb, _, _ = mean_std_finite([s.psnr_rgb for s in acc.samples])
    if n >= IS_SPLITS:
        is_10, is_10_std = inception_score(acc.probabilities, splits=IS_SPLITS, seed=spec.seed)
    else:  # fewer images than splits: undefined, reported as n/a rather than silently re-defined
        is_10, is_10_std = float("nan"), float("nan")
    kid_mean, kid_std = kid(gt_features, acc.features, seed=spec.seed)
    return ExtendedMetrics(
        ssim_wang=float(np.mean([s.ssim_wang for s in acc.samples])),
        psnr_rgb=psnr_rgb,
        is_10=is_10,
        is_10_std=is_10_std,
        kid=kid_mean,
        kid_std=kid_std,
    )


def _summarise(acc: _ModelAccumulator, gt_features: np.ndarray, spec: cfg.MetricSpec) -> ModelMetrics:
    psnr_mean, psnr_std, identical = mean_std_finite([s.psnr for s in acc.samples])
    ssims = np.array([s.ssim for s in acc.samples], dtype=np.float64)
    is_mean, _ = inception_score(acc.probabilities)
    return ModelMetrics(
        psnr=psnr_mean,
        ssim=float(np.mean(ssims)),
        inception_score=is_mean,
        fid=fid(gt_features, acc.features, method=spec.fid_method),
        psnr_std=psnr_std,
        ssim_std=float(np.std(ssims)),
        psnr_identical=identical,
        extended=_extended(acc, gt_features, spec) if spec.profile == "all" else None,
    )


def model_sha256(path: Path) -> str:
    """sha256 of a model: of the file, or for an IR of the ``.xml`` bytes followed by the ``.bin`` bytes."""
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        digest = hashlib.sha256()
        for part in (path, path.with_suffix(".bin")):
            with open(part, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()
    return sha256_file(path)


def environment() -> dict[str, Any]:
    """Library versions and the CPU: JPEG decoders and kernels differ between versions."""
    import cv2
    import openvino as ov
    import PIL
    import scipy
    import skimage

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "openvino": ov.get_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-image": skimage.__version__,
        "opencv": cv2.__version__,
        "pillow": PIL.__version__,
    }


def run(config: cfg.Config, progress: Progress | None = None) -> RunResult:
    """Evaluate every model of a complete, validated config.

    Raises
    ------
    InputError
        For any bad input found before or during the run (one line naming the file or key).
    """
    cfg.require_complete(config)
    progress = progress or _NoProgress()
    root, pairs_path = config.dataset.root, config.dataset.pairs
    assert root is not None and pairs_path is not None and config.verifier.path is not None
    check_root(root)
    pairs = read_pairs(pairs_path, limit=config.dataset.limit)

    t0 = time.perf_counter()
    core = make_core()
    translators = [load_translator(core, spec, config.runtime) for spec in config.models]
    verifier = load_verifier(core, config.verifier, config.runtime)
    t_load = time.perf_counter() - t0

    n = len(pairs)
    gt_features: np.ndarray | None = None
    accs: dict[str, _ModelAccumulator] = {}
    progress.start([t.spec.name for t in translators], n)
    try:
        for inputs in _prefetched(lambda p: prepare_pair(root, p), pairs, PREFETCH_DEPTH):
            i = inputs.pair.index
            gt_out = verifier(inputs.ground_truth)
            if gt_features is None:
                gt_features = np.empty((n, gt_out.features.size), dtype=np.float32)
                for t in translators:
                    accs[t.spec.name] = _ModelAccumulator(n, gt_out.probabilities.size, gt_out.features.size)
            gt_features[i] = gt_out.features
            for t in translators:
                image = generate(t, inputs)
                out = verifier(image)
                acc = accs[t.spec.name]
                acc.samples.append(
                    score_sample(inputs.pair.val_id, image, inputs.ground_truth, config.metrics)
                )
                acc.probabilities[i] = out.probabilities
                acc.features[i] = out.features
                progress.advance(t.spec.name)
    finally:
        progress.close()
    t_infer = time.perf_counter() - t0 - t_load
    assert gt_features is not None

    if n < 2:
        raise InputError(f"{pairs_path}: FID needs at least 2 pairs, the run has {n} (check --limit)")
    models = {}
    for t in translators:
        assert t.spec.path is not None
        acc = accs[t.spec.name]
        models[t.spec.name] = ModelResult(
            name=t.spec.name,
            label=t.spec.label,
            path=str(t.spec.path),
            sha256=model_sha256(t.spec.path),
            metrics=_summarise(acc, gt_features, config.metrics),
            n=n,
            samples=tuple(acc.samples),
        )
    t_metrics = time.perf_counter() - t0 - t_load - t_infer
    return RunResult(
        evalkit_version=__version__,
        config=cfg.config_to_dict(config),
        dataset=DatasetInfo(
            root=str(root), pairs=str(pairs_path), n_pairs=n, pairs_sha256=sha256_file(pairs_path)
        ),
        models=models,
        verifier=VerifierInfo(path=str(config.verifier.path), sha256=model_sha256(config.verifier.path)),
        environment=environment(),
        timings={"load_s": t_load, "inference_s": t_infer, "metrics_s": t_metrics},
    )


def evaluate(
    config: cfg.Config | str | Path,
    *,
    data_root: str | Path | None = None,
    pairs: str | Path | None = None,
    models: dict[str, str | Path] | None = None,
    verifier: str | Path | None = None,
    limit: int | None = None,
    output: str | Path | None = None,
    device: str | None = None,
    metrics: cfg.MetricProfile | None = None,
    bootstrap: int | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Evaluate the config's models; the library form of ``evalkit run``.

    Parameters
    ----------
    config
        A :class:`evalkit.config.Config` or the path of a YAML config.
    data_root, pairs, models, verifier, limit, output, device, metrics, bootstrap
        Overrides, as the command line's ``--data-root``, ``--pairs``, ``--model NAME=PATH``,
        ``--verifier``, ``--limit``, ``--output``, ``--device``, ``--metrics``, ``--bootstrap``.
        ``output`` is recorded in the resolved config; writing reports is
        :func:`evalkit.report.write_reports`' job.

    Returns
    -------
    RunResult
        The same record the command line writes as ``results.json``.
    """
    conf = config if isinstance(config, cfg.Config) else cfg.load_config(config)

    def opt(p: str | Path | None) -> Path | None:
        return None if p is None else Path(p).expanduser()

    overrides = cfg.Overrides(
        data_root=opt(data_root),
        pairs=opt(pairs),
        models={k: Path(v).expanduser() for k, v in (models or {}).items()},
        verifier=opt(verifier),
        limit=limit,
        output=opt(output),
        device=device,
        metrics=metrics,
        bootstrap=bootstrap,
    )
    return run(cfg.apply_overrides(conf, overrides), progress=progress)
