"""The only place that wires the stages: pairs -> inputs -> models -> images -> verifier -> metrics.

Each pair is read and preprocessed once (in a background thread, ahead of inference) and fed to every
model; the ground truth goes through the verifier once and is shared by every model.
"""

from __future__ import annotations

import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from evalkit import __version__
from evalkit import config as cfg
from evalkit.data.ade20k import (
    check_root,
    read_pairs,
    sha256_file,
)
from evalkit.errors import InputError
from evalkit.execution.check import output_problem
from evalkit.execution.inprocess import Executor, InProcessExecutor, OnError, step_names
from evalkit.execution.journal import Journal, PairRecord
from evalkit.metrics import fid, inception_score, kid, mean_std_finite
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
from evalkit.runtime.core import make_core, model_sha256
from evalkit.runtime.translator import read_translator_model
from evalkit.runtime.verifier import read_verifier_model
from evalkit.stats.comparison import DEFAULT_CONFIDENCE, paired_delta, set_deltas


class Progress(Protocol):
    """Receives progress events; the CLI shows them as bars, the API ignores them by default.

    ``start`` names the steps (each model, then ``"verifier"``) and the number of pairs; ``advance(step)``
    is called once per pair and step as that step of the pair is done.
    """

    def start(self, steps: Sequence[str], total: int) -> None: ...
    def advance(self, step: str) -> None: ...
    def close(self) -> None: ...


class _NoProgress:
    def start(self, steps: Sequence[str], total: int) -> None:
        pass

    def advance(self, step: str) -> None:
        pass

    def close(self) -> None:
        pass


#: Splits of the extended table's Inception Score (the common GAN-literature protocol).
IS_SPLITS = 10


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


def _plain(value: Any) -> Any:
    # JSON numbers only: NaN (e.g. no interval when the bootstrap is off) becomes null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def compare_models(
    gt_features: np.ndarray, outputs: dict[str, ModelOutputs], spec: cfg.MetricSpec, reference: str
) -> dict[str, Any]:
    """Paired comparison of every model with ``reference``: per-sample PSNR/SSIM deltas with bootstrap
    intervals and Wilcoxon p-values, and bootstrap intervals of the IS/FID/KID differences (the
    ``comparison`` section of ``results.json``)."""
    ref = outputs[reference]
    models: dict[str, Any] = {}
    for name, out in outputs.items():
        if name == reference:
            continue
        entries: dict[str, Any] = {}
        for key, higher in (("psnr", True), ("ssim", True)):
            delta = paired_delta(
                key.upper(),
                np.array([getattr(s, key) for s in ref.samples]),
                np.array([getattr(s, key) for s in out.samples]),
                higher_is_better=higher,
                n_resamples=spec.bootstrap,
                seed=spec.seed,
            )
            entries[key] = {k: _plain(v) for k, v in asdict(delta).items()} | {
                "sentence": delta.sentence(name, reference)
            }
        set_results = set_deltas(
            gt_features,
            ref.features,
            out.features,
            ref.probabilities,
            out.probabilities,
            n_resamples=spec.bootstrap,
            seed=spec.seed,
            kid_seed=spec.seed,
            fid_method=spec.fid_method,
        )
        for key, delta in set_results.items():
            entries[key] = {k: _plain(v) for k, v in asdict(delta).items()} | {
                "sentence": delta.sentence(name, reference)
            }
        models[name] = entries
    return {
        "reference_model": reference,
        "bootstrap": spec.bootstrap,
        "seed": spec.seed,
        "confidence": DEFAULT_CONFIDENCE,
        "models": models,
    }


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
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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


def _fingerprint(
    config: cfg.Config, pairs_sha256: str, model_hashes: dict[str, str], verifier_sha256: str
) -> dict[str, Any]:
    # What must match for a journal to be resumed: everything that changes a per-pair record.
    resolved = cfg.config_to_dict(config)
    for key in ("output", "source"):
        resolved.pop(key, None)
    resolved["dataset"].pop("limit", None)  # a resumed run may evaluate more or fewer pairs
    for speed_only in ("streams", "requests", "reader_threads"):  # change speed, never a record
        resolved["runtime"].pop(speed_only, None)
    return {
        "evalkit_version": __version__,
        "config": resolved,
        "pairs_sha256": pairs_sha256,
        "models_sha256": model_hashes,
        "verifier_sha256": verifier_sha256,
    }


def run(
    config: cfg.Config,
    progress: Progress | None = None,
    *,
    resume: bool = False,
    on_error: OnError = "fail",
    log: Callable[[str], None] | None = None,
    executor: Executor | None = None,
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
        problem = output_problem(config.output)
        if problem:
            raise InputError(problem)

    t0 = time.perf_counter()
    # Model files and interfaces are checked here, before the journal starts, whichever executor runs.
    core = make_core()
    for spec in config.models:
        read_translator_model(core, spec)
    read_verifier_model(core, config.verifier)
    del core
    names = [m.name for m in config.models]
    model_hashes = {m.name: model_sha256(m.path) for m in config.models if m.path is not None}
    verifier_sha256 = model_sha256(config.verifier.path)
    pairs_sha256 = sha256_file(pairs_path)

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

    def deliver(record: PairRecord) -> None:
        if record.skipped is not None:
            log(f"skipped {record.pair_id} (pairs line {pairs[record.index].line}): {record.skipped}")
        records.append(record)
        if journal is not None:
            journal.append(record)

    steps = step_names(config)
    progress.start(steps, len(pairs))
    for _ in records:
        for step in steps:
            progress.advance(step)
    try:
        (executor or InProcessExecutor()).evaluate(
            config, pairs[len(records) :], deliver, on_error=on_error, on_step=progress.advance
        )
    finally:
        # whatever ends the run (a bad pair, Ctrl-C), what is done stays on disk for --resume
        if journal is not None:
            journal.flush()
        progress.close()
    t_infer = time.perf_counter() - t0

    evaluated = sum(1 for r in records if r.skipped is None)
    if evaluated < 2:
        raise InputError(f"{pairs_path}: FID needs at least 2 evaluated pairs, the run has {evaluated}")
    gt_features, outputs = collect(records, names)
    models = {}
    for spec in config.models:
        out = outputs[spec.name]
        models[spec.name] = ModelResult(
            name=spec.name,
            label=spec.label,
            path=str(spec.path),
            sha256=model_hashes[spec.name],
            metrics=summarise(out, gt_features, config.metrics),
            n=len(out.samples),
            samples=out.samples,
        )
    comparison = None
    if config.metrics.profile == "all" and len(config.models) > 1:
        reference = config.metrics.reference_model or config.models[0].name
        comparison = compare_models(gt_features, outputs, config.metrics, reference)
    t_metrics = time.perf_counter() - t0 - t_infer
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
        timings={"evaluation_s": t_infer, "metrics_s": t_metrics},
        skipped=skipped,
        comparison=comparison,
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
    executor: Executor | None = None,
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
    progress, resume, on_error, log, executor
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
        cfg.apply_overrides(conf, overrides),
        progress=progress,
        resume=resume,
        on_error=on_error,
        log=log,
        executor=executor,
    )
