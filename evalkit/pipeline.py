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
from typing import Any, Literal, Protocol

import numpy as np

from evalkit import __version__
from evalkit import config as cfg
from evalkit.data import (
    Pair,
    check_root,
    read_pair,
    read_pairs,
    sha256_file,
)
from evalkit.errors import InputError
from evalkit.journal import Journal, ModelRecord, PairRecord
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
    SkippedPair,
    VerifierInfo,
)
from evalkit.runtime import make_core
from evalkit.translator import Translator, load_translator
from evalkit.verifier import Verifier, load_verifier

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


def _prefetched(
    fn: Callable[[Pair], PairInputs], pairs: Sequence[Pair], depth: int
) -> Iterator[tuple[Pair, PairInputs | InputError]]:
    # OpenCV and Pillow release the GIL while decoding and resizing, so a worker thread keeps the next
    # pairs ready while OpenVINO runs the current one. Order is preserved; a bad pair's error is handed
    # over in its place, so that --on-error skip can go on.
    def safe(pair: Pair) -> PairInputs | InputError:
        try:
            return fn(pair)
        except InputError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-read") as pool:
        queue: deque[tuple[Pair, Future[PairInputs | InputError]]] = deque()
        it = iter(pairs)
        for pair in it:
            queue.append((pair, pool.submit(safe, pair)))
            if len(queue) >= depth:
                break
        while queue:
            pair, future = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(safe, nxt)))
            yield pair, future.result()


def evaluate_pair(
    inputs: PairInputs, translators: Sequence[Translator], verifier: Verifier, spec: cfg.MetricSpec
) -> PairRecord:
    """Run every model and the verifier on one prepared pair (the ground truth is verified once)."""
    gt = inputs.ground_truth
    gt_out = verifier(gt)
    models = {}
    for t in translators:
        image = generate(t, inputs)
        out = verifier(image)
        scores = vars(score_sample(inputs.pair.val_id, image, gt, spec)).copy()
        del scores["pair_id"]
        models[t.spec.name] = ModelRecord(
            scores=scores, probabilities=out.probabilities, features=out.features
        )
    return PairRecord(
        index=inputs.pair.index, pair_id=inputs.pair.val_id, gt_features=gt_out.features, models=models
    )


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


@dataclass(frozen=True)
class ModelOutputs:
    """One model's per-sample scores and verifier outputs over the evaluated pairs, in pair order."""

    samples: tuple[SampleScores, ...]
    probabilities: np.ndarray  #: N x classes float32
    features: np.ndarray  #: N x d float32


def collect(
    records: Sequence[PairRecord], model_names: Sequence[str]
) -> tuple[np.ndarray, dict[str, ModelOutputs]]:
    """Stack the evaluated (not skipped) records into ground-truth features and per-model outputs."""
    done = [r for r in records if r.skipped is None]
    gt_features = np.stack([r.gt_features for r in done])
    outputs = {}
    for name in model_names:
        outputs[name] = ModelOutputs(
            samples=tuple(SampleScores(pair_id=r.pair_id, **r.models[name].scores) for r in done),
            probabilities=np.stack([r.models[name].probabilities for r in done]),
            features=np.stack([r.models[name].features for r in done]),
        )
    return gt_features, outputs


def _extended(out: ModelOutputs, gt_features: np.ndarray, spec: cfg.MetricSpec) -> ExtendedMetrics:
    n = len(out.samples)
    psnr_rgb, _, _ = mean_std_finite([s.psnr_rgb for s in out.samples])
    if n >= IS_SPLITS:
        is_10, is_10_std = inception_score(out.probabilities, splits=IS_SPLITS, seed=spec.seed)
    else:  # fewer images than splits: undefined, reported as n/a rather than silently re-defined
        is_10, is_10_std = float("nan"), float("nan")
    kid_mean, kid_std = kid(gt_features, out.features, seed=spec.seed)
    return ExtendedMetrics(
        ssim_wang=float(np.mean([s.ssim_wang for s in out.samples])),
        psnr_rgb=psnr_rgb,
        is_10=is_10,
        is_10_std=is_10_std,
        kid=kid_mean,
        kid_std=kid_std,
    )


def summarise(out: ModelOutputs, gt_features: np.ndarray, spec: cfg.MetricSpec) -> ModelMetrics:
    """The model's metrics from its per-sample scores and verifier outputs."""
    psnr_mean, psnr_std, identical = mean_std_finite([s.psnr for s in out.samples])
    ssims = np.array([s.ssim for s in out.samples], dtype=np.float64)
    is_mean, _ = inception_score(out.probabilities)
    return ModelMetrics(
        psnr=psnr_mean,
        ssim=float(np.mean(ssims)),
        inception_score=is_mean,
        fid=fid(gt_features, out.features, method=spec.fid_method),
        psnr_std=psnr_std,
        ssim_std=float(np.std(ssims)),
        psnr_identical=identical,
        extended=_extended(out, gt_features, spec) if spec.profile == "all" else None,
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


OnError = Literal["fail", "skip"]


def _check_output_writable(output: Path) -> None:
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".evalkit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"{output}: output directory is not writable ({exc.strerror})") from None


def _fingerprint(
    config: cfg.Config, pairs_sha256: str, model_hashes: dict[str, str], verifier_sha256: str
) -> dict[str, Any]:
    # What must match for a journal to be resumed: everything that changes a per-pair record.
    resolved = cfg.config_to_dict(config)
    for key in ("output", "source"):
        resolved.pop(key, None)
    resolved["dataset"].pop("limit", None)  # a resumed run may evaluate more or fewer pairs
    return {
        "evalkit_version": __version__,
        "config": resolved,
        "pairs_sha256": pairs_sha256,
        "models_sha256": model_hashes,
        "verifier_sha256": verifier_sha256,
    }


def _skipped_record(pair: Pair, reason: str) -> PairRecord:
    return PairRecord(index=pair.index, pair_id=pair.val_id, gt_features=None, models={}, skipped=reason)


def run(
    config: cfg.Config,
    progress: Progress | None = None,
    *,
    resume: bool = False,
    on_error: OnError = "fail",
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Evaluate every model of a complete, validated config.

    With ``config.output`` set, finished pairs are journaled to ``OUTPUT/.evalkit-journal`` as they
    complete, and ``resume=True`` continues the journal of an interrupted run. ``on_error="skip"``
    records a bad pair with its reason and goes on; the default ends the run at the first bad pair
    (the journal is kept, so a resume goes on once the input is fixed).

    Raises
    ------
    InputError
        For any bad input found before or during the run (one line naming the file or key).
    """
    cfg.require_complete(config)
    progress = progress or _NoProgress()
    log = log or (lambda message: None)
    root, pairs_path = config.dataset.root, config.dataset.pairs
    assert root is not None and pairs_path is not None and config.verifier.path is not None
    check_root(root)
    pairs = read_pairs(pairs_path, limit=config.dataset.limit)
    if config.output is not None:
        _check_output_writable(config.output)

    t0 = time.perf_counter()
    core = make_core()
    translators = [load_translator(core, spec, config.runtime) for spec in config.models]
    verifier = load_verifier(core, config.verifier, config.runtime)
    names = [t.spec.name for t in translators]
    model_hashes = {t.spec.name: model_sha256(t.model.path) for t in translators}
    verifier_sha256 = model_sha256(config.verifier.path)
    pairs_sha256 = sha256_file(pairs_path)
    t_load = time.perf_counter() - t0

    journal = None
    records: list[PairRecord] = []
    if config.output is not None:
        fingerprint = _fingerprint(config, pairs_sha256, model_hashes, verifier_sha256)
        journal = Journal(config.output, fingerprint, names)
        if resume and journal.exists():
            records = journal.resume()[: len(pairs)]
            log(f"resuming: {len(records)} of {len(pairs)} pairs already done (journal in {journal.dir})")
        else:
            if resume:
                log(f"no journal in {config.output}: starting from the beginning")
            journal.start()

    progress.start(names, len(pairs))
    for _ in records:
        for name in names:
            progress.advance(name)
    todo = pairs[len(records) :]
    try:
        for pair, inputs in _prefetched(lambda p: prepare_pair(root, p), todo, PREFETCH_DEPTH):
            try:
                if isinstance(inputs, InputError):
                    raise inputs
                record = evaluate_pair(inputs, translators, verifier, config.metrics)
            except InputError as exc:
                if on_error != "skip":
                    raise
                record = _skipped_record(pair, str(exc))
                log(f"skipped {pair.val_id} (pairs line {pair.line}): {exc}")
            records.append(record)
            if journal is not None:
                journal.append(record)
            for name in names:
                progress.advance(name)
    finally:
        # whatever ends the loop (a bad pair, Ctrl-C), what is done stays on disk for --resume
        if journal is not None:
            journal.flush()
        progress.close()
    t_infer = time.perf_counter() - t0 - t_load

    evaluated = sum(1 for r in records if r.skipped is None)
    if evaluated < 2:
        raise InputError(f"{pairs_path}: FID needs at least 2 evaluated pairs, the run has {evaluated}")
    gt_features, outputs = collect(records, names)
    models = {}
    for t in translators:
        out = outputs[t.spec.name]
        models[t.spec.name] = ModelResult(
            name=t.spec.name,
            label=t.spec.label,
            path=str(t.model.path),
            sha256=model_hashes[t.spec.name],
            metrics=summarise(out, gt_features, config.metrics),
            n=len(out.samples),
            samples=out.samples,
        )
    t_metrics = time.perf_counter() - t0 - t_load - t_infer
    skipped = tuple(
        SkippedPair(pair_id=r.pair_id, line=pairs[r.index].line, reason=r.skipped)
        for r in records
        if r.skipped is not None
    )
    return RunResult(
        evalkit_version=__version__,
        config=cfg.config_to_dict(config),
        dataset=DatasetInfo(
            root=str(root),
            pairs=str(pairs_path),
            n_pairs=evaluated,
            pairs_sha256=pairs_sha256,
            n_listed=len(pairs),
        ),
        models=models,
        verifier=VerifierInfo(path=str(config.verifier.path), sha256=verifier_sha256),
        environment=environment(),
        timings={"load_s": t_load, "inference_s": t_infer, "metrics_s": t_metrics},
        skipped=skipped,
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
    resume: bool = False,
    on_error: OnError = "fail",
    log: Callable[[str], None] | None = None,
) -> RunResult:
    """Evaluate the config's models; the library form of ``evalkit run``.

    Parameters
    ----------
    config
        A :class:`evalkit.config.Config` or the path of a YAML config.
    data_root, pairs, models, verifier, limit, output, device, metrics, bootstrap
        Overrides, as the command line's ``--data-root``, ``--pairs``, ``--model NAME=PATH``,
        ``--verifier``, ``--limit``, ``--output``, ``--device``, ``--metrics``, ``--bootstrap``.
        With ``output`` set, finished pairs are journaled to ``OUTPUT/.evalkit-journal`` (the command
        line removes it once the reports are written); writing reports is
        :func:`evalkit.report.write_reports`' job.
    progress, resume, on_error, log
        See :func:`run`.

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
    return run(
        cfg.apply_overrides(conf, overrides), progress=progress, resume=resume, on_error=on_error, log=log
    )
