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

from evalkit import config as cfg
from evalkit import defaults
from evalkit.data.ade20k import PairsFile
from evalkit.errors import InputError
from evalkit.execution import pipeline
from evalkit.execution.check import GALLERY_FOLDER, GALLERY_KEY, executor_outputs
from evalkit.execution.inprocess import Executor, InProcessExecutor, OnError
from evalkit.execution.pipeline import Progress
from evalkit.results import GateReport, RunResult

__all__ = [
    "RunOutcome",
    "check_gate_ci_files",
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
    from evalkit.execution.gallery import GalleryKeeper, write_gallery
    from evalkit.execution.journal import remove_journal
    from evalkit.fileio import write_text_atomic
    from evalkit.report import write_reports

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
    gallery = None
    if gallery_pairs > 0:
        compiled_cache = getattr(executor, "compiled_cache", None)
        t_gallery = time.perf_counter()
        gallery = write_gallery(
            conf,
            result,
            folder / GALLERY_FOLDER,
            k=gallery_pairs,
            keeper=keeper,
            compiled_cache=compiled_cache,
            pairs=read[0].pairs,
        )
        result = replace(result, timings={**result.timings, "gallery_s": time.perf_counter() - t_gallery})
    gate_path = None
    ci_paths: dict[str, Path] = {}
    if gate:
        from evalkit.gate import compare_within_run
        from evalkit.report.gate import render_gate_markdown

        result = replace(result, gate=compare_within_run(result, conf.gate))
        assert result.gate is not None
        gate_path = folder / "gate.md"
        write_text_atomic(gate_path, render_gate_markdown(result.gate))
        ci_paths = write_gate_ci_files(result.gate, junit_xml=junit_xml, step_summary=step_summary)
    paths = write_reports(
        result, folder, formats=RUN_REPORT_FORMATS, gate=result.gate, gallery_dir=gallery
    )
    if gate_path is not None:
        paths["gate"] = gate_path
    if "junit" in ci_paths:
        paths["junit"] = ci_paths["junit"]
    remove_journal(folder)  # the reports are complete: nothing left to resume
    return RunOutcome(result=result, output=folder, paths=paths, gallery=gallery)


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
    return run_and_report(config, output, fresh=True, progress=progress, log=log, executor=executor)
