"""The only place that wires the stages: pairs -> inputs -> models -> images -> verifier -> metrics.

Each pair is read and preprocessed once (in a background thread, ahead of inference) and fed to every
model; the ground truth goes through the verifier once and is shared by every model.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np

from evalkit import __version__
from evalkit import config as cfg
from evalkit.data.ade20k import PAIR_FILE_ROLES, Pair, PairsFile, pair_file_hashes, pair_files
from evalkit.errors import InputError
from evalkit.execution.check import executor_outputs, require_runnable
from evalkit.execution.inprocess import Executor, InProcessExecutor, OnError, step_names
from evalkit.execution.journal import Journal, PairRecord, journal_exists, remove_journal
from evalkit.execution.lock import output_lock
from evalkit.results import (
    DatasetInfo,
    ModelResult,
    RunResult,
    SampleScores,
    SkippedPair,
    VerifierInfo,
)
from evalkit.runtime.core import model_sha256
from evalkit.stats.aggregate import ModelOutputs, compare_models, summarise
from evalkit.stats.sequential import SequentialGate, look_data

#: Fewest pairs a run can summarise: FID's covariances need two images.
MIN_PAIRS = 2


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


class ConsoleProgress:
    """The command line's progress display: a tqdm bar per step (each model, the verifier) on a terminal,
    each with its own pairs/s and ETA; periodic one-line logs otherwise (CI logs stay readable).

    Parameters
    ----------
    stream
        Where to write (default: ``sys.stderr`` at the time of construction).
    interval_s
        Seconds between two log lines when ``stream`` is not a terminal (the last line always comes).
    """

    def __init__(self, stream: TextIO | None = None, interval_s: float = 10.0) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.interval_s = interval_s
        self.bars: dict[str, Any] = {}
        self.done: dict[str, int] = {}

    def start(self, steps: Sequence[str], total: int) -> None:
        self.total = total
        self.t0 = self.last = time.monotonic()
        self.done = dict.fromkeys(steps, 0)
        if self.stream.isatty():
            from tqdm import tqdm

            width = max(len(n) for n in steps)
            self.bars = {
                name: tqdm(
                    total=total,
                    desc=name.ljust(width),
                    unit="pair",
                    position=i,
                    file=self.stream,
                    dynamic_ncols=True,
                    leave=True,
                )
                for i, name in enumerate(steps)
            }

    def advance(self, step: str) -> None:
        self.done[step] += 1
        if self.bars:
            self.bars[step].update(1)
            return
        now = time.monotonic()
        finished = all(v == self.total for v in self.done.values())
        if now - self.last >= self.interval_s or finished:
            self.last = now
            elapsed = max(now - self.t0, 1e-9)
            parts = ", ".join(f"{k} {v}/{self.total} ({v / elapsed:.2f}/s)" for k, v in self.done.items())
            print(f"evalkit: {parts}, {now - self.t0:.0f} s", file=self.stream, flush=True)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def progress_display(progress: Progress | bool | None) -> Progress:
    """What receives a run's progress: ``True`` -> a :class:`ConsoleProgress` on stderr (the command
    line's display); ``None`` or ``False`` -> nothing (the library's default); a :class:`Progress` as is."""
    if progress is True:
        return ConsoleProgress()
    if progress is None or progress is False:
        return _NoProgress()
    return progress


def collect(
    records: Sequence[PairRecord], model_names: Sequence[str]
) -> tuple[np.ndarray, dict[str, ModelOutputs]]:
    """Stack the evaluated (not skipped) records into ground-truth features and per-model outputs."""
    done = [r for r in records if r.skipped is None]
    gt_features = np.stack([r.gt_features for r in done])
    outputs = {}
    for name in model_names:
        outputs[name] = ModelOutputs(
            samples=tuple(SampleScores(pair_id=r.pair_id, values=dict(r.models[name].scores)) for r in done),
            probabilities=np.stack([r.models[name].probabilities for r in done]),
            features=np.stack([r.models[name].features for r in done]),
        )
    return gt_features, outputs


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


def still_valid(
    root: Path, pairs: Sequence[Pair], journaled: Sequence[PairRecord]
) -> tuple[list[PairRecord], list[Path], int]:
    """Which journaled records a resumed run can keep: those whose four files still have the hashes recorded.

    Returns
    -------
    kept
        The records to keep (their pairs are not evaluated again).
    changed
        The first changed file of each record dropped for a content change, in pair order (logged).
    retried
        How many skipped pairs are dropped to be tried again (their files may have been fixed since).

    Notes
    -----
    A resume trusts content, not paths: each kept pair's files are read and hashed again (about what reading
    them for evaluation costs, a small fraction of a translation; see ``benchmarks/resume_check.py``).
    """
    kept: list[PairRecord] = []
    changed: list[Path] = []
    retried = 0
    for record in journaled:
        pair = pairs[record.index]
        if record.skipped is not None:
            retried += 1
            continue
        now = pair_file_hashes(root, pair)
        recorded = record.files_sha256 or {}
        stale = [role for role in PAIR_FILE_ROLES if recorded.get(role) != now[role]]
        if record.pair_id != pair.val_id or stale:
            changed.append(pair_files(root, pair).by_role()[stale[0] if stale else PAIR_FILE_ROLES[0]])
        else:
            kept.append(record)
    return kept, changed, retried


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
    progress: Progress | bool | None = None,
    *,
    resume: bool = False,
    fresh: bool = False,
    on_error: OnError = "fail",
    log: Callable[[str], None] | None = None,
    executor: Executor | None = None,
    journal: bool = True,
    on_pairs_file: Callable[[PairsFile], None] | None = None,
    hold_lock: ExitStack | None = None,
    outputs: Mapping[str, Path | None] | None = None,
) -> RunResult:
    """Evaluate every model of a complete, validated config (the engine of every entry point).

    Before any inference, the checks of :func:`evalkit.execution.check.pre_run_problems` run (data root,
    pairs file, output folder when journaling, models, verifier), whichever executor runs; the first
    problem ends the run. With ``journal`` and ``config.output`` set, the run holds the output folder's
    lock (:func:`evalkit.execution.lock.output_lock`: one writer per folder) and finished pairs are
    journaled to ``OUTPUT/.evalkit-journal`` as they complete; ``resume=True`` continues the journal of an
    interrupted run, ``fresh=True`` discards it, and a journal found with neither is refused (never
    silently deleted). ``on_error="skip"`` records a bad pair with its reason and goes on; the default
    ends the run at the first bad pair (the journal is kept, so a resume goes on once the input is fixed).
    ``progress``: see :func:`progress_display` (``True``: the command line's display on stderr; off by
    default). The pairs file is read once, by the checks; ``results.json``'s ``pairs_sha256`` and the
    journal's fingerprint are the hash of the bytes parsed, and ``on_pairs_file`` receives the record
    (pairs + hash) for a caller that needs the pairs again (the gallery), so nothing reads the file twice.
    ``hold_lock``: the output folder's lock goes into this stack, so that the caller keeps the folder
    until it closes the stack (its reports written); by default it is released on return.
    ``outputs``: the run's other output folders (flag -> folder; default: the executor's
    ``--save-images`` and cache folders, :func:`evalkit.execution.check.executor_outputs`), refused
    before inference when they land on an input.

    Raises
    ------
    InputError
        For any bad input found before or during the run (one line naming the file or key); another run
        holding the output folder; a journal in it without ``resume`` or ``fresh``.
    """
    if resume and fresh:
        raise InputError("--resume and --fresh: choose one (continue the journal, or discard it)")
    journal_dir = config.output if journal else None
    t0 = time.perf_counter()
    if outputs is None:
        outputs = executor_outputs(executor)
    # the one read of the pairs file
    pairs_file = require_runnable(config, output=journal_dir, outputs=outputs)
    if on_pairs_file is not None:
        on_pairs_file(pairs_file)
    log = log or (lambda message: None)
    if journal_dir is None:
        return _run(config, pairs_file, progress, resume, on_error, log, executor, None, t0)
    with ExitStack() as own:  # taken after the cheap checks: a bad data root creates no folder
        (hold_lock or own).enter_context(output_lock(journal_dir))
        if not resume and journal_exists(journal_dir):
            if not fresh:
                raise InputError(
                    f"{journal_dir}: holds the journal of an unfinished run; pass --resume to continue it "
                    "or --fresh to discard it"
                )
            remove_journal(journal_dir)
            log(f"discarded the journal of an unfinished run in {journal_dir} (--fresh)")
        return _run(config, pairs_file, progress, resume, on_error, log, executor, journal_dir, t0)


def _run(
    config: cfg.Config,
    pairs_file: PairsFile,
    progress: Progress | bool | None,
    resume: bool,
    on_error: OnError,
    log: Callable[[str], None],
    executor: Executor | None,
    journal_dir: Path | None,
    t0: float,
) -> RunResult:
    # run()'s work once the checks are done and the output folder (if any) is held
    display = progress_display(progress)
    root, pairs_path = config.dataset.root, config.dataset.pairs
    assert root is not None and pairs_path is not None and config.verifier.path is not None
    pairs = pairs_file.pairs
    if len(pairs) < MIN_PAIRS:  # known before any inference: say so now, not after the run
        raise InputError(f"{pairs_path}: FID needs at least {MIN_PAIRS} pairs, the run lists {len(pairs)}")
    names = [m.name for m in config.models]
    model_hashes = {m.name: model_sha256(m.path) for m in config.models if m.path is not None}
    verifier_sha256 = model_sha256(config.verifier.path)
    pairs_sha256 = pairs_file.sha256  # of the bytes parsed, not of a second read
    sequential = _sequential_gate(config, len(pairs))
    if sequential is not None:  # the seeded order, renumbered: records, journal and looks follow it
        pairs = tuple(replace(pairs[int(i)], index=k) for k, i in enumerate(sequential.order))

    pair_journal = None
    records: list[PairRecord] = []
    if journal_dir is not None:
        fingerprint = _fingerprint(config, pairs_sha256, model_hashes, verifier_sha256)
        if sequential is not None:  # a resume must continue the same order and looks
            fingerprint["sequential"] = sequential.fingerprint()
        pair_journal = Journal(journal_dir, fingerprint, names)
        if resume and pair_journal.exists():
            journaled = [r for r in pair_journal.resume() if r.index < len(pairs)]
            records, changed, retried = still_valid(root, pairs, journaled)
            log(
                f"resuming: {len(records)} of {len(pairs)} pairs already done "
                f"(journal in {pair_journal.dir})"
            )
            if changed:
                log(
                    f"{len(changed)} journaled pair(s) evaluated again: their files changed since "
                    f"(first: {changed[0]})"
                )
            if retried:
                log(f"{retried} skipped pair(s) tried again")
        else:
            if resume:
                log(f"no journal in {journal_dir}: starting from the beginning")
            pair_journal.start()

    def deliver(record: PairRecord) -> None:
        if record.skipped is not None:
            line = f"pairs line {pairs[record.index].line}"
            where = "" if line in record.skipped else f" ({line})"  # a reading error names it already
            log(f"skipped {record.pair_id}{where}: {record.skipped}")
        records.append(record)
        if pair_journal is not None:
            pair_journal.append(record)

    steps = step_names(config)
    display.start(steps, len(pairs))
    for _ in records:
        for step in steps:
            display.advance(step)
    done = {r.index for r in records}
    todo = [p for p in pairs if p.index not in done]
    try:
        if sequential is None:
            (executor or InProcessExecutor()).evaluate(
                config, todo, deliver, on_error=on_error, on_step=display.advance
            )
        else:
            runner = executor or InProcessExecutor()
            _evaluate_in_looks(
                sequential,
                pairs,
                records,
                lambda chunk: runner.evaluate(
                    config, chunk, deliver, on_error=on_error, on_step=display.advance
                ),
                names,
                log,
            )
    finally:
        # whatever ends the run (a bad pair, Ctrl-C), what is done stays on disk for --resume
        if pair_journal is not None:
            pair_journal.flush()
        display.close()
    t_infer = time.perf_counter() - t0
    records.sort(key=lambda r: r.index)  # pairs evaluated again on resume come after the rest

    evaluated = sum(1 for r in records if r.skipped is None)
    if evaluated < MIN_PAIRS:
        raise InputError(
            f"{pairs_path}: FID needs at least {MIN_PAIRS} evaluated pairs, the run has {evaluated}"
        )
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
        comparison = compare_models(
            gt_features,
            outputs,
            config.metrics,
            config.reference_model,
            gate=config.gate,
            reference_metrics=models[config.reference_model].metrics,
        )
    t_metrics = time.perf_counter() - t0 - t_infer
    skipped = tuple(
        SkippedPair(pair_id=r.pair_id, line=pairs[r.index].line, reason=r.skipped)
        for r in records
        if r.skipped is not None
    )
    return RunResult(
        evalkit_version=__version__,
        config=config,
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
        sequential=None if sequential is None else sequential.outcome(evaluated),  # skipped pairs not counted
    )


def _sequential_gate(config: cfg.Config, n_listed: int) -> SequentialGate | None:
    """The run's sequential gate (``config.sequential``), ``None`` for an ordinary run."""
    if config.sequential is None:
        return None
    names = [m.name for m in config.models]
    if len(names) < 2:
        raise InputError(
            f"{config.source}: key 'sequential': sequential gating compares models with the reference "
            f"model; the config has only {names}"
        )
    reference = config.reference_model
    candidates = [n for n in names if n != reference]
    return SequentialGate(config.sequential, config.gate, config.metrics, reference, candidates, n_listed)


def _evaluate_in_looks(
    gate: SequentialGate,
    pairs: Sequence[Pair],
    records: list[PairRecord],
    evaluate: Callable[[Sequence[Pair]], None],
    names: Sequence[str],
    log: Callable[[str], None],
) -> None:
    """Evaluate the pairs in the gate's order, look by look, until it stops.

    Looks already covered by ``records`` (a resumed run's journal) are replayed on them, so a resumed run
    decides as an uninterrupted one; the run ends right at the look that stops it.
    """

    def evaluate_up_to(n: int) -> None:
        done = {r.index for r in records}
        todo = [p for p in pairs[:n] if p.index not in done]
        if todo:
            evaluate(todo)

    for number, n in enumerate(gate.looks[:-1], start=1):
        evaluate_up_to(n)
        window = sorted((r for r in records if r.index < n and r.skipped is None), key=lambda r: r.index)
        if len(window) < MIN_PAIRS:
            gate.looks_made = number  # nothing to judge yet; the look still counts in the plan
            continue
        gt_features, outputs = collect(window, names)
        if gate.look(number, look_data(gt_features, outputs)):
            decided = ", ".join(
                f"{d.model} {d.metric} {d.verdict}" for d in gate.outcome(len(window)).decisions
            )
            log(
                f"sequential gate: stopped at look {number}, after {len(window)} evaluated of {len(pairs)} "
                f"pairs ({decided})"
            )
            return
    evaluate_up_to(len(pairs))

