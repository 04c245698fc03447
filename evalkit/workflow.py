"""The one workflow of a run: evaluate -> gallery -> gate -> reports -> journal removal.

``evalkit run``, ``evalkit demo`` and the library all come through here; the command line only parses
arguments, calls these functions, prints and maps errors to exit codes.

- :func:`evaluate` runs the models and returns the :class:`~evalkit.results.RunResult` (nothing written,
  unless ``output`` is given for a journal that survives an interruption).
- :func:`run_and_report` is ``evalkit run``: the whole job, reports written into one folder.
- :func:`run_demo` is ``evalkit demo``: builds the stand-ins and the synthetic data, then
  :func:`run_and_report`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, is_dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from evalkit import config as cfg
from evalkit import defaults
from evalkit.data.ade20k import PairsFile
from evalkit.errors import InputError
from evalkit.execution import pipeline
from evalkit.execution.check import GALLERY_FOLDER, GALLERY_KEY, RESULT_SET_NAMES, executor_outputs
from evalkit.execution.inprocess import Executor, InProcessExecutor, OnError
from evalkit.execution.pipeline import Progress
from evalkit.fileio import file_set
from evalkit.results import GateReport, RunResult

if TYPE_CHECKING:
    from evalkit.compress import CompressedModel, MaxDrop, Mode
    from evalkit.data.ade20k import Pair

__all__ = [
    "CompressOutcome",
    "RunOutcome",
    "check_gate_ci_files",
    "compress_and_report",
    "configure",
    "demo_cache_dir",
    "demo_inputs_ready",
    "evaluate",
    "run_and_report",
    "run_demo",
    "step_summary_file",
    "write_gate_ci_files",
]

#: The environment variable GitHub Actions sets to the file whose Markdown is shown on the job's page.
STEP_SUMMARY_ENV = "GITHUB_STEP_SUMMARY"

#: What ``evalkit run`` writes besides the gallery and ``gate.md``.
RUN_REPORT_FORMATS = ("md", "csv", "html", "json")


def _path(p: str | Path | None) -> Path | None:
    return None if p is None else Path(p).expanduser()


def configure(
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
    sequential: bool = False,
    alpha: float | None = None,
    look_every: int | None = None,
) -> cfg.Config:
    """A config with the library's overrides applied (the same as the command line's flags).

    Parameters
    ----------
    config
        A :class:`evalkit.config.Config` or the path of a YAML config.
    data_root, pairs, models, verifier, limit, output, device, metrics, bootstrap
        As ``--data-root``, ``--pairs``, ``--model NAME=PATH`` (a mapping NAME -> PATH), ``--verifier``,
        ``--limit``, ``--output``, ``--device``, ``--metrics``, ``--bootstrap``; ``None`` keeps the
        config's value.
    sequential, alpha, look_every
        As ``--sequential``, ``--alpha``, ``--look-every``: sequential gating (for
        :func:`run_and_report` with ``gate=True``), with the config's ``sequential:`` settings or these.

    Raises
    ------
    InputError
        A bad config file or override (one line naming the file and key, or the flag).
    """
    conf = config if isinstance(config, cfg.Config) else cfg.load_config(config)
    overrides = cfg.Overrides(
        data_root=_path(data_root),
        pairs=_path(pairs),
        models={k: Path(v).expanduser() for k, v in (models or {}).items()},
        verifier=_path(verifier),
        limit=limit,
        output=_path(output),
        device=device,
        metrics=metrics,
        bootstrap=bootstrap,
        sequential=sequential,
        alpha=alpha,
        look_every=look_every,
    )
    return cfg.apply_overrides(conf, overrides)


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
    progress: Progress | bool | None = None,
    resume: bool = False,
    fresh: bool = False,
    on_error: OnError = "fail",
    log: Callable[[str], None] | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Evaluate the config's models and return the run's record; writes no report.

    Parameters
    ----------
    config
        A :class:`evalkit.config.Config` or the path of a YAML config.
    data_root, pairs, models, verifier, limit, output, device, metrics, bootstrap
        Overrides, see :func:`configure`.
    output
        Also the folder of the journal: only when ``output`` is given (or ``resume=True``, which then
        uses the config's ``output``) are finished pairs journaled to ``OUTPUT/.evalkit-journal``, so that
        an interrupted run can be resumed. Without it nothing is written anywhere. The journal stays
        after the run: :func:`run_and_report` removes it once the reports are written.
    progress
        ``True``: show the command line's progress display on stderr (a bar per model and one for the
        verifier on a terminal, periodic log lines otherwise); off by default (``None``). Or any
        :class:`evalkit.execution.pipeline.Progress`, which receives the events.
    resume
        Continue the journal of an interrupted run (a missing journal starts from the beginning).
    fresh
        Discard the journal of an interrupted run and start from the beginning (``--fresh``). With
        neither ``resume`` nor ``fresh``, a journal in the output folder is refused (never silently
        deleted).
    on_error
        ``"fail"``: the first bad pair raises; ``"skip"``: recorded with its reason, the run goes on.
    log
        Receives one-line messages (resuming, skipped pairs, the feature cache's counts).
    executor
        Runs the pairs; default the in-process pipelined executor without a feature cache.

    Returns
    -------
    RunResult
        The record ``evalkit run`` writes as ``results.json``.

    Raises
    ------
    InputError
        Any bad input (one line naming the file, pairs line or key); with a journal: another run holding
        the output folder, or a journal there without ``resume`` or ``fresh``.
    """
    conf = configure(
        config,
        data_root=data_root,
        pairs=pairs,
        models=models,
        verifier=verifier,
        limit=limit,
        output=output,
        device=device,
        metrics=metrics,
        bootstrap=bootstrap,
    )
    if conf.sequential is not None:
        raise InputError(
            f"{conf.source}: key 'sequential': sequential gating stops a gated run; use "
            "run_and_report(..., gate=True)"
        )
    return pipeline.run(
        conf,
        progress=progress,
        resume=resume,
        fresh=fresh,
        on_error=on_error,
        log=log,
        executor=executor,
        journal=output is not None or resume,
    )


def step_summary_file(environ: dict[str, str] | None = None) -> Path | None:
    """The file named by ``$GITHUB_STEP_SUMMARY`` (``None`` when unset or empty, i.e. outside GitHub CI)."""
    value = (os.environ if environ is None else environ).get(STEP_SUMMARY_ENV, "")
    return Path(value) if value else None


def _refuse_unwritable(path: Path, label: str, *, append: bool) -> None:
    if path.is_dir():
        raise InputError(f"{label}: is a folder, not a file")
    if append and path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{label}: cannot write (no permission)")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:  # missing folders are created when written
        folder = folder.parent
    if not folder.is_dir():
        raise InputError(f"{label}: cannot write ({folder} is not a folder)")
    if not os.access(folder, os.W_OK | os.X_OK) and not (append and path.exists()):
        raise InputError(f"{label}: cannot write (folder {folder} is not writable)")


def _summary_label(path: Path) -> str:
    return f"{STEP_SUMMARY_ENV}={path}"


def check_gate_ci_files(junit_xml: str | Path | None = None, step_summary: str | Path | None = None) -> None:
    """Refuse, before any work, a JUnit XML path or step summary file that cannot be written.

    Parameters
    ----------
    junit_xml, step_summary
        As for :func:`write_gate_ci_files`; ``None`` is not checked.

    Raises
    ------
    InputError
        A path that is a folder or lies where nothing can be written (one line naming the file).
    """
    if junit_xml is not None:
        _refuse_unwritable(Path(junit_xml), str(junit_xml), append=False)
    if step_summary is not None:
        _refuse_unwritable(Path(step_summary), _summary_label(Path(step_summary)), append=True)


def write_gate_ci_files(
    reports: GateReport | Sequence[GateReport],
    *,
    junit_xml: str | Path | None = None,
    step_summary: str | Path | None = None,
) -> dict[str, Path]:
    """Write the gate for a CI system: a JUnit XML file, and/or its Markdown table appended to a summary.

    Parameters
    ----------
    reports
        The gate reports (``evalkit gate`` may make two: against a run and against the published table).
    junit_xml
        Write :func:`evalkit.report.junit.render_junit_xml` here (atomically; missing folders created).
    step_summary
        Append :func:`evalkit.report.gate.render_gate_markdown` to this file (what GitHub Actions shows on
        the job's page; see :func:`step_summary_file`). Appended, never overwritten: other steps write
        there too.

    Returns
    -------
    dict of str to Path
        ``junit`` and/or ``step_summary``: the files written.

    Raises
    ------
    InputError
        A path that cannot be written (one line naming the file).
    """
    from evalkit.fileio import write_text_atomic
    from evalkit.report.gate import render_gate_markdown
    from evalkit.report.junit import render_junit_xml

    reports = (reports,) if isinstance(reports, GateReport) else tuple(reports)
    check_gate_ci_files(junit_xml, step_summary)
    written: dict[str, Path] = {}
    if junit_xml is not None:
        path = Path(junit_xml)
        try:
            write_text_atomic(path, render_junit_xml(reports))
        except OSError as exc:
            raise InputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        written["junit"] = path
    if step_summary is not None:
        path = Path(step_summary)
        markdown = "\n".join(render_gate_markdown(r) for r in reports)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a+b") as fh:
                # A blank line first, so the table never runs into what an earlier step left there.
                fh.seek(0, os.SEEK_END)
                if fh.tell() > 0:
                    fh.seek(fh.tell() - 1)
                    separator = b"\n" if fh.read(1) == b"\n" else b"\n\n"
                else:
                    separator = b""
                fh.write(separator + markdown.encode("utf-8"))
        except OSError as exc:
            raise InputError(f"{_summary_label(path)}: cannot write ({exc.strerror or exc})") from None
        written["step_summary"] = path
    return written


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_and_report` did: the run's record, the gate's verdicts and the files written."""

    result: RunResult  #: as written to ``results.json`` (with the gate's verdicts when gated)
    output: Path  #: the report folder
    paths: dict[str, Path]  #: by kind: summary, per_sample, markdown, html, json, then gate, junit if written
    gallery: Path | None = None  #: the gallery folder (``None``: no gallery asked for)

    @property
    def gate(self) -> GateReport | None:
        """The gate's verdicts (``None`` when not gated)."""
        return self.result.gate

    @property
    def passed(self) -> bool:
        """False only when the gate found a regression (the command line's exit code 1)."""
        return self.result.gate is None or self.result.gate.passed


def run_and_report(
    config: cfg.Config | str | Path,
    output: str | Path | None = None,
    *,
    gate: bool = False,
    gallery_pairs: int = defaults.GALLERY_PAIRS,
    resume: bool = False,
    fresh: bool = False,
    on_error: OnError = "fail",
    progress: Progress | bool | None = None,
    log: Callable[[str], None] | None = None,
    executor: Executor | None = None,
    junit_xml: str | Path | None = None,
    step_summary: str | Path | None = None,
) -> RunOutcome:
    """The whole job of ``evalkit run``: evaluate, gallery, gate, reports, then remove the journal.

    Writes into ``output``: ``gallery/`` (unless ``gallery_pairs`` is 0), ``gate.md`` (with ``gate``),
    ``summary.csv``, ``per_sample.csv``, ``report.md``, ``report.html`` and ``results.json`` (last: its
    presence means the reports are complete). Finished pairs are journaled in
    ``output/.evalkit-journal`` during the run, so that ``resume=True`` continues an interrupted one;
    the journal is removed once the reports are written. The whole job, reports included, holds the
    folder's lock (:func:`evalkit.execution.lock.output_lock`, taken after the cheap checks of the
    inputs): a second run on it is refused at once.

    Parameters
    ----------
    config
        A :class:`evalkit.config.Config` (overrides applied, e.g. with :func:`configure`) or the path of
        a YAML config.
    output
        The report folder; default the config's ``output``, else :data:`evalkit.defaults.OUTPUT`.
    gate
        Compare every model with the reference model under the config's ``gate:`` thresholds (the
        built-in ones when it has none), record the verdicts in the results and write ``gate.md``.
        With the config's ``sequential`` set (``sequential:``, or :func:`configure`'s ``sequential=True``)
        the pairs are evaluated in a seeded random order and the run stops as soon as the gate's verdict is
        known (:mod:`evalkit.stats.sequential`); it needs ``gate``.
    gallery_pairs
        The report's gallery shows this many pairs whose outputs differ most from the reference model's
        (largest mean absolute pixel difference; the largest PSNR drop when the run did not measure every
        pair: a resumed or Dask run) and as
        many random ones, each candidate with its difference image.
    resume, fresh, on_error, progress, log, executor
        As for :func:`evaluate`.
    junit_xml
        With ``gate``: also write the verdicts as JUnit XML to this file (see :func:`write_gate_ci_files`).
    step_summary
        With ``gate``: also append the Markdown gate table to this file (``evalkit run`` passes
        :func:`step_summary_file`, i.e. ``$GITHUB_STEP_SUMMARY``).

    Returns
    -------
    RunOutcome
        ``outcome.passed`` is False when the gate found a regression.

    Raises
    ------
    InputError
        Any bad input (one line naming the file, pairs line or key); the journal is kept for a resume.
        ``junit_xml`` or ``step_summary`` without ``gate``, or one that cannot be written, another run
        holding ``output``, or a journal there without ``resume`` or ``fresh``, is refused before any
        inference.
    """

    for name, value in (("junit_xml", junit_xml), ("step_summary", step_summary)):
        if value is not None and not gate:
            raise InputError(f"{name}: only with gate=True (there are no verdicts to write)")
    check_gate_ci_files(junit_xml, step_summary)  # now, not after hours of inference
    conf = config if isinstance(config, cfg.Config) else cfg.load_config(config)
    if conf.sequential is not None and not gate:
        raise InputError(
            f"{conf.source}: key 'sequential' (--sequential): sequential gating needs --gate (gate=True)"
        )
    folder = _path(output) or conf.output or Path(defaults.OUTPUT)
    conf = replace(conf, output=folder)
    with ExitStack() as held:  # the pipeline puts the folder's lock here: held until the last report
        return _run_and_report_locked(
            conf, folder, gate, gallery_pairs, resume, fresh, on_error, progress, log, executor,
            junit_xml, step_summary, held,
        )


def _run_and_report_locked(
    conf: cfg.Config,
    folder: Path,
    gate: bool,
    gallery_pairs: int,
    resume: bool,
    fresh: bool,
    on_error: OnError,
    progress: Progress | bool | None,
    log: Callable[[str], None] | None,
    executor: Executor | None,
    junit_xml: str | Path | None,
    step_summary: str | Path | None,
    held: ExitStack,
) -> RunOutcome:
    from evalkit.execution.gallery import GalleryKeeper
    from evalkit.execution.journal import remove_journal

    executor = executor or InProcessExecutor()
    keeper = None
    if gallery_pairs > 0 and is_dataclass(executor) and hasattr(executor, "on_image"):
        # The gallery's images are kept as the run makes them, so the models do not run twice.
        names = [m.name for m in conf.models]
        keeper = GalleryKeeper(names, conf.reference_model, gallery_pairs, conf.metrics.seed)
        executor = replace(executor, on_image=keeper)  # type: ignore[type-var]
    read: list[PairsFile] = []
    result = pipeline.run(
        conf,
        progress=progress,
        resume=resume,
        fresh=fresh,
        on_error=on_error,
        log=log,
        executor=executor,
        journal=True,
        hold_lock=held,
        on_pairs_file=read.append,  # the gallery's pairs: the file is read once (it may be a pipe)
        outputs={
            **executor_outputs(executor),
            GALLERY_KEY: folder / GALLERY_FOLDER if gallery_pairs > 0 else None,
        },
    )
    try:
        with file_set(folder, RESULT_SET_NAMES, last="results.json") as staging:
            result, staged = _write_result_set(
                conf, result, staging, gate, gallery_pairs, keeper, executor, read[0].pairs
            )
    except OSError as exc:
        raise InputError(
            f"{exc.filename or folder}: {exc.strerror or exc} (while writing the results; {folder} keeps "
            "the previous complete set or none, and the journal: run again with --resume)"
        ) from None
    paths = {kind: folder / path.relative_to(staging) for kind, path in staged.items()}
    gallery = folder / GALLERY_FOLDER if gallery_pairs > 0 else None
    if result.gate is not None:
        ci_paths = write_gate_ci_files(result.gate, junit_xml=junit_xml, step_summary=step_summary)
        if "junit" in ci_paths:
            paths["junit"] = ci_paths["junit"]
    remove_journal(folder)  # the reports are complete: nothing left to resume
    return RunOutcome(result=result, output=folder, paths=paths, gallery=gallery)


def _write_result_set(
    conf: cfg.Config,
    result: RunResult,
    staging: Path,
    gate: bool,
    gallery_pairs: int,
    keeper: object,
    executor: Executor,
    pairs: Sequence[Pair],
) -> tuple[RunResult, dict[str, Path]]:
    # Every file of the run's set, into the staging folder of `file_set`: gallery, gate.md, reports.
    from evalkit.execution.gallery import write_gallery
    from evalkit.fileio import write_text_atomic
    from evalkit.report import write_reports

    gallery = None
    if gallery_pairs > 0:
        t_gallery = time.perf_counter()
        gallery = write_gallery(
            conf,
            result,
            staging / GALLERY_FOLDER,
            k=gallery_pairs,
            keeper=keeper,  # type: ignore[arg-type]
            compiled_cache=getattr(executor, "compiled_cache", None),
            pairs=pairs,
        )
        result = replace(result, timings={**result.timings, "gallery_s": time.perf_counter() - t_gallery})
    gate_path = None
    if gate:
        from evalkit.gate import compare_within_run
        from evalkit.report.gate import render_gate_markdown

        report = compare_within_run(result, conf.gate)
        if result.sequential is not None:  # the verdicts of its looks replace the gate's
            from evalkit.gate.engine import apply_sequential

            report = apply_sequential(report, result.sequential)
        result = replace(result, gate=report)
        gate_path = staging / "gate.md"
        write_text_atomic(gate_path, render_gate_markdown(result.gate))
    paths = write_reports(
        result, staging, formats=RUN_REPORT_FORMATS, gate=result.gate, gallery_dir=gallery
    )
    if gate_path is not None:
        paths["gate"] = gate_path
    return result, paths


def render_results(
    results_file: str | Path,
    output: str | Path | None = None,
    *,
    formats: Sequence[str] = RUN_REPORT_FORMATS,
    gallery: str | Path | None = None,
) -> dict[str, Path]:
    """What ``evalkit report`` does: render the reports of a ``results.json`` again, as one result set.

    Into the results file's own folder (the default), the folder's set is renewed: the files asked for are
    rendered again, the others (``results.json`` with its bytes, the gallery, ``gate.md``) are kept, and
    ``SHA256SUMS`` lists them all. Into another folder, the files asked for form a set of their own; a
    folder that holds another run's set is refused, so two runs' files never mix.

    Returns
    -------
    dict
        The paths written, by kind (as :func:`evalkit.report.write_reports`).

    Raises
    ------
    InputError
        A bad results file, a missing gallery folder, a folder holding another run's set, or a write that
        failed (the folder then keeps its previous set).
    """
    import shutil
    from pathlib import PurePosixPath

    from evalkit.fileio import SET_CHECKSUMS, set_listing, sha256_file
    from evalkit.report import write_reports
    from evalkit.results import load_results

    results_file = Path(results_file)
    result = load_results(results_file)
    folder = _path(output) or results_file.parent
    gallery_dir = _path(gallery) or results_file.parent / GALLERY_FOLDER
    if gallery is not None and not gallery_dir.is_dir():
        raise InputError(f"{gallery_dir}: gallery folder not found")
    from evalkit.execution.lock import output_lock

    own = folder.resolve() == results_file.parent.resolve() and results_file.name == "results.json"
    with output_lock(folder):  # not while a run (or another report) writes there
        listed_results = set_listing(folder).get("results.json")
        if not own and listed_results not in (None, sha256_file(results_file)):
            raise InputError(
                f"{folder}: holds the result set of another run ({SET_CHECKSUMS}); choose another --output "
                "(files of two runs never share a folder)"
            )
        try:
            last = "results.json" if own or "json" in formats else None
            with file_set(folder, RESULT_SET_NAMES, last=last) as staging:
                asked = [f for f in formats if not (own and f == "json")]  # keep the file read, byte for byte
                staged = write_reports(
                    result, staging, formats=asked, gallery_dir=gallery_dir, gate=result.gate,
                    results_file=results_file,
                )  # fmt: skip
                if own:  # the rest of the set stays: hard links, so nothing is copied
                    for name in {PurePosixPath(n).parts[0] for n in set_listing(folder)} | {"results.json"}:
                        source, kept = folder / name, staging / name
                        if kept.exists() or not source.exists():
                            continue
                        if source.is_dir():
                            shutil.copytree(source, kept, copy_function=os.link)
                        else:
                            os.link(source, kept)
        except OSError as exc:
            raise InputError(
                f"{exc.filename or folder}: {exc.strerror or exc} (while writing the reports; {folder} keeps "
                "its previous set)"
            ) from None
    return {kind: folder / path.relative_to(staging) for kind, path in staged.items()}


def demo_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where :func:`run_demo` builds the stand-ins and the data (``CACHE/demo``, see ``--cache-dir``)."""
    from evalkit.execution.cache import cache_root

    return cache_root(_path(cache_dir)) / "demo"


def demo_inputs_ready(cache_dir: str | Path | None = None, n_pairs: int = defaults.DEMO_PAIRS) -> bool:
    """True when :func:`run_demo` would reuse the stand-ins and the ``n_pairs`` synthetic pairs already
    built in :func:`demo_cache_dir` (nothing to build).

    The files, as :func:`run_demo` leaves them (``DEMO = demo_cache_dir(cache_dir)``): the stand-ins
    ``DEMO/models/{original,converted,verifier}.xml`` and the data set
    ``DEMO/data-N/ADEChallengeData2016`` with its pairs file ``DEMO/data-N/ade20k_ref_test.txt``.
    """
    from evalkit.demo.dataset import synthetic_ready
    from evalkit.demo.models import standins_ready

    build = demo_cache_dir(cache_dir)
    return standins_ready(build / "models") and synthetic_ready(build / f"data-{n_pairs}", n_pairs=n_pairs)


def run_demo(
    output: str | Path = defaults.DEMO_OUTPUT,
    *,
    cache_dir: str | Path | None = None,
    n_pairs: int = defaults.DEMO_PAIRS,
    progress: Progress | bool | None = None,
    log: Callable[[str], None] | None = None,
    compress: bool = False,
) -> RunOutcome:
    """``evalkit demo``: the stand-in models on a synthetic data set, through :func:`run_and_report`.

    The stand-ins and ``n_pairs`` synthetic pairs are built once in :func:`demo_cache_dir` (reused while
    they match), evalkit's caches in ``cache_dir`` are used as by ``evalkit run``, and the reports go to
    ``output`` (default ``./evalkit-demo``, not ``reports/demo/``: that is the committed example, changed
    only when someone regenerates it with ``evalkit demo --output reports/demo``).

    Parameters
    ----------
    output
        The report folder (``--output``).
    cache_dir
        evalkit's cache folder (``--cache-dir``; default ``$EVALKIT_CACHE_DIR`` or ``~/.cache/evalkit``).
    n_pairs
        Synthetic pairs (``--pairs``).
    progress, log
        As for :func:`evaluate`.
    compress
        ``evalkit demo --compress``: also make ``original-int8`` with NNCF (calibrated on the synthetic
        pairs) and evaluate and gate it through :func:`compress_and_report` (needs ``evalkit[compress]``).

    Returns
    -------
    RunOutcome
        As :func:`run_and_report`'s.
    """
    from evalkit.demo.dataset import build_synthetic_ade20k
    from evalkit.demo.models import save_standins
    from evalkit.execution.executors import make_executor

    build = demo_cache_dir(cache_dir)
    standins = save_standins(build / "models")
    data = build_synthetic_ade20k(build / f"data-{n_pairs}", n_pairs=n_pairs)
    config = configure(
        cfg.bundled_config("demo.yaml"),
        data_root=data.root,
        pairs=data.pairs,
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
    )
    # The bundled config's absolute path depends on where evalkit is installed: record it relative to the
    # current folder when it lies below it, as the other paths are (a committed demo report then does not
    # depend on the machine beyond its environment block).
    source = Path(config.source)
    if source.is_absolute() and source.is_relative_to(Path.cwd()):
        config = replace(config, source=str(source.relative_to(Path.cwd())))
    # evalkit run's default executor, with the same caches (the demo goes the way of a real run)
    executor = make_executor("inprocess", cache_root=_path(cache_dir), log=log)
    # fresh: a demo interrupted earlier is started again (its journal is a minute of stand-in work, and
    # demo has no --resume)
    if compress:
        return compress_and_report(
            config, "original", "int8", output, fresh=True, progress=progress, log=log, executor=executor
        ).run
    return run_and_report(config, output, fresh=True, progress=progress, log=log, executor=executor)


@dataclass(frozen=True)
class CompressOutcome:
    """What :func:`compress_and_report` did: the compressed model, the run that evaluated it and the
    ``max_drop`` check against the full evaluation."""

    run: RunOutcome  #: the run of the source, the compressed model and the config's other models, gated
    model: CompressedModel  #: the compressed IR, its sidecar JSON, calibration pairs, reverted operations
    max_drop: MaxDrop | None = None  #: the accuracy-control bound, if one was given
    drop: float | None = None  #: the measured drop in the bound's terms (its unit, or a fraction)

    @property
    def bound_missed(self) -> str | None:
        """One line: by how much the full evaluation missed ``max_drop`` (``None``: met, or no bound)."""
        bound = self.max_drop
        if bound is None or self.drop is None or self.drop <= bound.value:
            return None
        return (
            f"--max-drop {bound.text}: missed by {bound.describe(self.drop - bound.value)} (the full "
            f"evaluation measured a {bound.metric.name} drop of {bound.describe(self.drop)} over "
            f"{self.run.result.dataset.n_pairs} pairs)"
        )

    @property
    def passed(self) -> bool:
        """False when the gate found a regression or the bound was missed (the command line's exit code 1)."""
        return self.run.passed and self.bound_missed is None


def _remaining_pairs_file(pairs: Sequence[Pair], leave_out: Sequence[Pair], path: Path) -> Path:
    # The run reads a pairs file: the evaluation pairs are written as lines of one (fields 1 and 2, the
    # only ones read), in their original order.
    from evalkit.fileio import write_text_atomic

    left_out = {p.index for p in leave_out}
    lines = [f"{p.val_id}.jpg,{p.exemplar_id}.jpg\n" for p in pairs if p.index not in left_out]
    write_text_atomic(path, "".join(lines))
    return path


def compress_and_report(
    config: cfg.Config | str | Path,
    source: str,
    mode: Mode = "int8",
    output: str | Path | None = None,
    *,
    max_drop: str | MaxDrop | None = None,
    calibration_pairs: int = defaults.CALIBRATION_PAIRS,
    exclude_calibration: bool = False,
    gallery_pairs: int = defaults.GALLERY_PAIRS,
    fresh: bool = False,
    on_error: OnError = "fail",
    progress: Progress | bool | None = None,
    log: Callable[[str], None] | None = None,
    executor: Executor | None = None,
) -> CompressOutcome:
    """``evalkit compress``: make ``SOURCE-MODE`` with NNCF, evaluate it beside its source, gate it.

    Writes the compressed IR and its sidecar JSON into ``output/models/``
    (:func:`evalkit.compress.compress_model`), then runs :func:`run_and_report` into ``output`` with the
    compressed model added right after its source, the source as the reference model (the deltas, the
    paired comparison and the gate are against it) and the gate on.

    Parameters
    ----------
    config
        A :class:`evalkit.config.Config` (overrides applied, e.g. with :func:`configure`) or a YAML path.
    source
        The model key to compress.
    mode
        ``"int8"`` (post-training quantization) or ``"int8-weights"`` (weight-only).
    output
        The report folder; default the config's ``output``, else :data:`evalkit.defaults.OUTPUT`.
    max_drop
        ``"METRIC=VALUE"`` (``psnr=0.1``, ``fid=2%``) or a parsed :class:`evalkit.compress.MaxDrop`: NNCF's
        accuracy control with evalkit's metric, then checked against the full evaluation.
    calibration_pairs
        Pairs drawn (seeded by ``metrics.seed``) from the run's pairs for calibration.
    exclude_calibration
        Evaluate on the other pairs only (written to ``output/models/SOURCE-int8.evaluation_pairs.txt``);
        by default the calibration pairs stay in the evaluation set and the compressed model's label says so.
    gallery_pairs, fresh, on_error, progress, log, executor
        As for :func:`run_and_report` (``on_error`` applies to the evaluation; calibration always fails
        at a bad pair).

    Returns
    -------
    CompressOutcome
        ``passed`` is False when the gate found a regression or ``max_drop`` was missed.

    Raises
    ------
    InputError
        NNCF absent (how to install it), an unknown model key or mode, a malformed ``max_drop``, an empty
        calibration or evaluation set, or any bad input of the run; all before NNCF starts.

    Notes
    -----
    The measured drop is the full evaluation's, never NNCF's estimate on its validation subset (the
    calibration pairs). Accuracy control can always fall back to float, so a bound of 0 or more is never
    out of NNCF's reach on its subset; on the full set it can be missed, and a negative bound always is.
    Every model of the run is gated against the source, as ``run --gate`` gates against the reference.
    """
    from evalkit.compress import (
        check_request,
        compress_model,
        draw_calibration_pairs,
        parse_max_drop,
        require_nncf,
    )
    from evalkit.execution.check import require_runnable
    from evalkit.execution.pipeline import MIN_PAIRS

    require_nncf()
    bound = parse_max_drop(max_drop) if isinstance(max_drop, str) else max_drop
    conf = config if isinstance(config, cfg.Config) else cfg.load_config(config)
    check_request(conf, source, mode, bound)
    if exclude_calibration and mode != "int8":
        raise InputError("--exclude-calibration: only with --mode int8 (weight compression uses no data)")
    folder = _path(output) or conf.output or Path(defaults.OUTPUT)
    conf = replace(conf, output=folder)
    # every input checked before NNCF starts; DIR/models is an output like any other: never an input's folder
    models_folder = {"the compressed models' folder": folder / "models"}
    pairs = require_runnable(conf, output=folder, outputs=models_folder).pairs
    calibration = ()
    if mode == "int8":  # an empty calibration set is refused here, before NNCF starts
        calibration = draw_calibration_pairs(pairs, calibration_pairs, conf.metrics.seed)
    if exclude_calibration and len(pairs) - len(calibration) < MIN_PAIRS:
        raise InputError(
            f"--exclude-calibration: {len(calibration)} calibration pairs of {len(pairs)} leave "
            f"{len(pairs) - len(calibration)} to evaluate; FID needs at least {MIN_PAIRS}"
        )
    if bound is not None and bound.relative and len(calibration) < MIN_PAIRS:
        raise InputError(
            f"--calibration-pairs {len(calibration)}: --max-drop {bound.text} validates {bound.metric.name} "
            f"on the calibration pairs, and it needs at least {MIN_PAIRS}"
        )
    from evalkit.execution.journal import journal_exists
    from evalkit.execution.lock import output_lock

    with output_lock(folder):  # from the compressed model's files to the last report: one writer
        if journal_exists(folder) and not fresh:  # before NNCF: the model would be made for nothing
            raise InputError(
                f"{folder}: holds the journal of an unfinished run; compress cannot resume it (the model "
                "would be made again): pass --fresh to discard it, or choose another --output"
            )
        made = compress_model(
            conf,
            source,
            mode,
            folder / "models",
            pairs,
            calibration_pairs=calibration_pairs,
            max_drop=bound,
            evaluated_with_calibration=not exclude_calibration,
            quiet=not progress,
            log=log,
        )
        models: list[cfg.ModelSpec] = []
        for spec in conf.models:
            models += [spec, made.spec] if spec.name == source else [spec]
        run_conf = replace(
            conf, models=tuple(models), metrics=replace(conf.metrics, reference_model=source)
        )
        if exclude_calibration:
            # beside the model, not in the output folder itself (a run's output may not hold its pairs file)
            evaluation = made.sidecar.with_suffix(".evaluation_pairs.txt")
            _remaining_pairs_file(pairs, made.calibration, evaluation)
            run_conf = replace(run_conf, dataset=replace(run_conf.dataset, pairs=evaluation, limit=None))
        outcome = run_and_report(
            run_conf,
            folder,
            gate=True,
            gallery_pairs=gallery_pairs,
            fresh=fresh,
            on_error=on_error,
            progress=progress,
            log=log,
            executor=executor,
        )
    drop = None
    if bound is not None:
        metrics = outcome.result.models
        key = bound.metric.key
        drop = bound.drop(metrics[source].metrics.get(key), metrics[made.spec.name].metrics.get(key))
    return CompressOutcome(run=outcome, model=made, max_drop=bound, drop=drop)
