"""Command line: argument parsing and exit codes only; everything else is called.

Exit codes: 0 success, 1 reserved for a failed gate, 2 bad input or usage (one line naming the
file/line/key), 3 internal error (traceback with ``--debug``), 130 interrupted by Ctrl-C (SIGINT), 143 by
SIGTERM (both flush the journal and say how to resume).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalkit import __version__, defaults
from evalkit.config import Overrides
from evalkit.errors import InputError

if TYPE_CHECKING:
    from evalkit.workflow import RunOutcome

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3
EXIT_SIGINT = 128 + signal.SIGINT  #: 130, the shell's code for a Ctrl-C
EXIT_SIGTERM = 128 + signal.SIGTERM  #: 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, turned into Ctrl-C's exception so that it takes the same path: every ``finally`` runs
    (the journal is flushed, worker pools are shut down) and ``main`` prints one line."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def _terminate_like_ctrl_c() -> tuple[bool, Any]:
    # A handler can be installed from the main thread only (main() may be called from another one, e.g. a
    # test); returns whether it was, and the handler to put back (main() is also called in-process).
    if threading.current_thread() is not threading.main_thread():
        return False, None
    return True, signal.signal(signal.SIGTERM, _raise_terminated)


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints the usage too)
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"evalkit: error: {message}\n")


def _model_override(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path).expanduser()


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


#: The options of 'evalkit run' that change what 'evalkit check' checks; it accepts the others too (one
#: command line serves both) but does not list them in its help.
_CHECK_OPTIONS = frozenset(
    {"--data-root", "--pairs", "--model", "--verifier", "--limit", "--output", "--device"}
)


def _add_run_options(p: argparse.ArgumentParser, *, for_check: bool = False) -> None:
    def add(flag: str, **kwargs: object) -> None:
        if for_check and flag not in _CHECK_OPTIONS:
            kwargs["help"] = argparse.SUPPRESS
        p.add_argument(flag, **kwargs)  # type: ignore[arg-type]

    add(
        "--data-root",
        type=Path,
        metavar="DIR",
        help="the ADEChallengeData2016 folder itself (overrides dataset.root)",
    )
    add(
        "--pairs",
        type=Path,
        metavar="FILE",
        help="CoCosNet pairs file, e.g. ade20k_ref_test.txt (overrides dataset.pairs)",
    )
    add(
        "--model",
        type=_model_override,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="path of the config's model NAME (repeatable); IR .xml, .onnx or any format OpenVINO reads",
    )
    add(
        "--verifier",
        type=Path,
        metavar="PATH",
        help="googlenet-v3 (Inception-V3) verifier model (overrides verifier.path)",
    )
    add("--limit", type=_positive_int, metavar="N", help="evaluate only the first N pairs")
    add(
        "--output",
        type=Path,
        metavar="DIR",
        help="where results.json, summary.csv, per_sample.csv, report.md, report.html, gallery/ and gate.md "
        f"go (default: the config's 'output', else ./{defaults.OUTPUT})",
    )
    add("--device", metavar="NAME", help=f"OpenVINO device (default {defaults.DEVICE})")
    add(
        "--metrics",
        choices=("reference", "all"),
        help="'reference': only the four reference metrics; 'all': also the extended table (Wang SSIM, RGB "
        "PSNR, IS over 10 splits, KID) and the paired comparison with the reference model (default: the "
        f"config's 'metrics.profile', else '{defaults.METRIC_PROFILE}')",
    )
    add(
        "--bootstrap",
        type=int,
        metavar="N",
        help="bootstrap resamples of the paired comparison's intervals (default: the config's "
        f"'metrics.bootstrap', else {defaults.BOOTSTRAP}; 0 turns them off)",
    )
    add(
        "--gallery-pairs",
        type=int,
        default=defaults.GALLERY_PAIRS,
        metavar="K",
        help="report.html shows the K pairs whose outputs differ most from the reference model's and K "
        f"random ones (default {defaults.GALLERY_PAIRS}; 0 = no gallery)",
    )
    add(
        "--save-images",
        type=Path,
        metavar="DIR",
        help="keep every generated image as DIR/MODEL/PAIR_ID.png (lossless, at ground-truth size, exactly "
        "what was scored), so that others can recompute metrics with their own tools",
    )
    add(
        "--executor",
        choices=("inprocess", "dask"),
        default="inprocess",
        help="'inprocess' (default): pipelined in this process; 'dask': on a Dask cluster "
        "(pip install 'evalkit[distributed]'; models and data must be at the same paths on every worker)",
    )
    add("--scheduler", metavar="ADDRESS", help="with --executor dask: e.g. tcp://HOST:8786")
    add(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="with --executor dask: start a local cluster of N single-threaded worker processes",
    )
    add(
        "--shard-size",
        type=_positive_int,
        metavar="N",
        help=f"with --executor dask: consecutive pairs per task (default {defaults.SHARD_SIZE})",
    )
    add(
        "--resume",
        action="store_true",
        help="continue an interrupted run from the journal in the output directory (finished pairs are "
        "journaled as they complete); without a journal, start from the beginning",
    )
    add(
        "--fresh",
        action="store_true",
        help="discard the journal of an interrupted run in the output directory and start from the "
        "beginning (without --resume or --fresh, a run refuses a folder that holds a journal)",
    )
    add(
        "--on-error",
        choices=("fail", "skip"),
        default="fail",
        help="'fail' (default): the first bad pair ends the run with exit code 2, the journal is kept for "
        "--resume; 'skip': record each bad pair with its reason in results.json and the report, go on",
    )
    add(
        "--no-cache",
        action="store_true",
        help="do not read or write the ground-truth feature cache (verify every ground truth)",
    )
    add(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="evalkit's cache folder; ground-truth verifier features go to DIR/features (default: "
        "$EVALKIT_CACHE_DIR or ~/.cache/evalkit)",
    )
    add("--quiet", action="store_true", help="no progress output")


def _number_or_text(text: str) -> int | float | str:
    """A number as typed (int or float), else the text itself: the config's checks then refuse it in one
    line naming the flag (argparse's own error would print the usage too)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _add_sequential_options(p: argparse.ArgumentParser, *, hidden: bool = False) -> None:
    def shown(text: str) -> str:
        return argparse.SUPPRESS if hidden else text

    p.add_argument(
        "--sequential",
        action="store_true",
        help=shown(
            "with --gate: evaluate the pairs in a seeded random order and stop as soon as every gated metric "
            "is decided (or at the first FAIL), with a stated error level (the config's 'sequential:' key "
            "does the same)"
        ),
    )
    p.add_argument(
        "--alpha",
        type=_number_or_text,
        metavar="A",
        help=shown(
            f"with --sequential: each gated metric's error level, in (0, 0.5) (default "
            f"{defaults.SEQUENTIAL_ALPHA})"
        ),
    )
    p.add_argument(
        "--look-every",
        type=_number_or_text,
        metavar="K",
        help=shown(
            f"with --sequential: pairs between two looks (default {defaults.SEQUENTIAL_LOOK_EVERY}; the "
            "first "            "look comes after at most a quarter of the pairs)"
        ),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="evalkit",
        description="Accuracy evaluation of exemplar-based image translation models (CoCosNet on ADE20k) "
        "with OpenVINO: PSNR, SSIM, IS and FID exactly as the OMZ Accuracy Checker computes them.",
    )
    parser.add_argument("--version", action="version", version=f"evalkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of internal errors")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_ArgumentParser
    )

    run = sub.add_parser(
        "run",
        help="evaluate the models of a config",
        description="Evaluate every model of CONFIG on the ADE20k pairs and write into the output folder: "
        "results.json, summary.csv, per_sample.csv, report.md, report.html and gallery/ (the images of "
        "report.html's gallery; none with --gallery-pairs 0), plus gate.md with --gate; with --junit-xml "
        "FILE also FILE, and with --gate and $GITHUB_STEP_SUMMARY set the gate table is appended to that "
        "file. Flags override the config's settings.",
    )
    run.add_argument("config", type=Path, help="YAML config, e.g. configs/cocosnet.yaml")
    _add_run_options(run)
    run.add_argument(
        "--gate",
        action="store_true",
        help="after the run, compare every model with the reference model (thresholds: the config's "
        "'gate:' key, else the defaults); write gate.md and exit 1 on a regression",
    )
    run.add_argument(
        "--junit-xml",
        type=Path,
        metavar="FILE",
        help="with --gate: also write the verdicts as JUnit XML (one test case per model and metric) for a "
        "CI system; with $GITHUB_STEP_SUMMARY set, the gate table is appended to that file too",
    )
    _add_sequential_options(run)
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    check = sub.add_parser(
        "check",
        help="validate a config and every input of a run, before any inference",
        description="Check the config's keys and types, the data root, the pairs file, that every file of "
        "every pair exists, decodes and has labels within 0..150 and the ground truth's size, that the "
        "models and the verifier load with the declared inputs and outputs, and that the output folder is "
        "writable. Prints every problem, one per line; exit code 2 if there is any. Accepts every option "
        "of 'evalkit run' (one command line serves both); only those that change what is checked are "
        "listed here.",
    )
    check.add_argument("config", type=Path, help="YAML config, e.g. configs/cocosnet.yaml")
    _add_run_options(check, for_check=True)
    # run's own options too, unlisted: a 'run' command line with 'run' replaced by 'check' is accepted
    check.add_argument("--gate", action="store_true", help=argparse.SUPPRESS)
    check.add_argument("--junit-xml", type=Path, help=argparse.SUPPRESS)
    _add_sequential_options(check, hidden=True)
    check.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    demo = sub.add_parser(
        "demo",
        help="evaluate stand-in models on a synthetic data set (nothing to download)",
        description="Build the stand-in models (OpenVINO opset API) and a synthetic ADE20k-layout data set "
        "in a cache folder, then evaluate them with configs/demo.yaml through the same path as "
        "'evalkit run'. The numbers come from stand-ins: they are not the published table.",
    )
    demo.add_argument(
        "--output",
        type=Path,
        default=Path(defaults.DEMO_OUTPUT),
        metavar="DIR",
        help=f"report folder (default: ./{defaults.DEMO_OUTPUT}; the example report committed in evalkit's "
        "repository is reports/demo)",
    )
    demo.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="where stand-ins and data are built (default: $EVALKIT_CACHE_DIR or ~/.cache/evalkit)",
    )
    demo.add_argument(
        "--pairs",
        type=_positive_int,
        default=defaults.DEMO_PAIRS,
        metavar="N",
        help=f"synthetic pairs (default {defaults.DEMO_PAIRS})",
    )
    demo.add_argument(
        "--compress",
        action="store_true",
        help="also make an INT8 version of the original stand-in with NNCF and add it as a column, gated "
        "against the original (pip install 'evalkit[compress]')",
    )
    demo.add_argument("--quiet", action="store_true", help="no progress output")
    demo.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    compress = sub.add_parser(
        "compress",
        help="make an INT8 model with NNCF, evaluate it beside its source and gate it",
        description="Compress the config's model --source with NNCF (pip install 'evalkit[compress]'): "
        "'int8' is post-training quantization calibrated on --calibration-pairs pairs (seeded by "
        "metrics.seed, preprocessed exactly as evaluation feeds the model); with --max-drop METRIC=VALUE "
        "NNCF's accuracy control reverts operations to float until evalkit's metric on the calibration "
        "pairs is within the bound, and the full evaluation must confirm it (else exit 1). 'int8-weights' "
        "compresses the weights only. Writes the IR and a sidecar JSON into OUTPUT/models/, then "
        "evaluates the source, SOURCE-MODE and the config's other models as 'evalkit run --gate' does, "
        "with the source as the reference. Exit 1: the gate found a regression or --max-drop was missed.",
    )
    compress.add_argument("config", type=Path, help="YAML config, e.g. configs/cocosnet.yaml")
    compress.add_argument("--source", required=True, metavar="NAME", help="the config's model to compress")
    compress.add_argument(
        "--mode",
        choices=("int8", "int8-weights"),
        default="int8",
        help="'int8' (default): post-training quantization of weights and activations; 'int8-weights': "
        "INT8 weight-only compression (no data)",
    )
    compress.add_argument(
        "--max-drop",
        action="append",
        default=[],
        metavar="METRIC=VALUE",
        help="with --mode int8: accuracy control on one metric, PSNR and SSIM in their units (psnr=0.1), "
        "IS and FID as a percentage of the source's value (fid=2%%)",
    )
    compress.add_argument(
        "--calibration-pairs",
        type=int,
        default=defaults.CALIBRATION_PAIRS,
        metavar="N",
        help=f"pairs to calibrate on, drawn from the run's pairs (default {defaults.CALIBRATION_PAIRS})",
    )
    compress.add_argument(
        "--exclude-calibration",
        action="store_true",
        help="evaluate on the pairs not used for calibration only (default: they stay; the report says so)",
    )
    _add_run_options(compress)
    compress.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    cache = sub.add_parser(
        "cache",
        help="manage the ground-truth feature cache",
        description="The verifier's outputs on ground-truth images are cached on disk (keyed by the image, "
        "the verifier model, its settings and the library versions), so a second run or another model "
        "reuses them. 'evalkit cache clear' removes every entry.",
    )
    cache_sub = cache.add_subparsers(dest="cache_command", required=True, metavar="ACTION")
    clear = cache_sub.add_parser("clear", help="remove every cached entry")
    clear.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="evalkit's cache folder (default: $EVALKIT_CACHE_DIR or ~/.cache/evalkit)",
    )
    clear.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    gate = sub.add_parser(
        "gate",
        help="compare a candidate run with a baseline run or the published table; exit 1 on a regression",
        description="Compare CANDIDATE.json with BASELINE.json model by model (same model name, or every "
        "candidate model with --baseline-model), and/or with the 'published:' table of --config "
        "(--published). A metric fails when it is worse than its baseline by more than "
        "max(abs, rel * |baseline|); an improvement never fails. Thresholds: the 'gate:' key of --config, "
        "else PSNR 0.1 dB, SSIM 0.01, IS 2%, FID 2%, KID 0.001. Runs on other pairs, another verifier or "
        "other metric settings are refused (exit 2). Exit 0: pass; 1: regression.",
    )
    gate.add_argument(
        "results",
        type=Path,
        nargs="+",
        metavar="RESULTS.json",
        help="BASELINE.json CANDIDATE.json; with --published, CANDIDATE.json alone",
    )
    gate.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="YAML file with 'gate:' thresholds and/or a 'published:' table, e.g. configs/cocosnet.yaml",
    )
    gate.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="candidate model to gate (repeatable; default: every model)",
    )
    gate.add_argument(
        "--baseline-model",
        metavar="NAME",
        help="compare every candidate model with this baseline model instead of the same-named one",
    )
    gate.add_argument(
        "--published",
        action="store_true",
        help="compare the candidate with the 'published:' table of --config",
    )
    gate.add_argument("--markdown", type=Path, metavar="FILE", help="also write the verdicts as Markdown")
    gate.add_argument(
        "--junit-xml",
        type=Path,
        metavar="FILE",
        help="also write the verdicts as JUnit XML (one test case per model and metric) for a CI system; "
        "with $GITHUB_STEP_SUMMARY set, the Markdown table is appended to that file too",
    )
    gate.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    report = sub.add_parser(
        "report",
        help="render the reports of a results.json again (Markdown, CSV, JSON, HTML)",
        description="Write report.md, summary.csv and per_sample.csv, results.json and/or report.html from "
        "RESULTS.json without running anything. report.html is one self-contained file (every image "
        "embedded, no script, no external link) with the tables, plots, the gate verdicts recorded in the "
        "results and the gallery of the folder 'gallery' beside RESULTS.json.",
    )
    report.add_argument("results", type=Path, metavar="RESULTS.json", help="a results.json of evalkit run")
    report.add_argument(
        "--format",
        type=_report_formats,
        default=("md", "csv", "json", "html"),
        metavar="LIST",
        help="comma-separated formats: md, csv, json, html (default: all four)",
    )
    report.add_argument(
        "--output", type=Path, metavar="DIR", help="where to write (default: the folder of RESULTS.json)"
    )
    report.add_argument(
        "--gallery",
        type=Path,
        metavar="DIR",
        help="gallery folder for report.html (default: 'gallery' beside RESULTS.json)",
    )
    report.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    plan = sub.add_parser(
        "plan",
        help="how many pairs each gated metric needs, from a finished run",
        description="From RESULTS.json, the number of pairs needed to tell a difference as large as each "
        "gated metric's allowance from zero (two-sided test at the error level, with the given power), "
        "from the per-pair spread the run observed (per-image metrics: the per-pair differences; IS, FID, "
        "KID: the bootstrap interval of the paired comparison). For when a run cannot be sequential.",
    )
    plan.add_argument("results", type=Path, metavar="RESULTS.json", help="a results.json of evalkit run")
    plan.add_argument(
        "--alpha",
        type=_number_or_text,
        metavar="A",
        help="error level in (0, 0.5) (default: the run's sequential alpha, else "
        f"{defaults.SEQUENTIAL_ALPHA})",
    )
    plan.add_argument("--power", type=float, default=0.8, metavar="P", help="power in (0, 1) (default 0.8)")
    plan.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    verify = sub.add_parser(
        "verify-data",
        help="compare a data root and pairs file with the manifest of what evalkit expects",
        description="Compare the ADEChallengeData2016 folder and the pairs file with a manifest (default: "
        "the bundled configs/ade20k_manifest.json: the 2000-pair ade20k_ref_test.txt with its sha256 and "
        "line count): the number of pairs, the hashes the manifest knows, and that every file the pairs "
        "reference exists. Prints one line per finding. Exit 0: all matches; 2: something is missing or "
        "different. See datasets.md for where each file comes from.",
    )
    verify.add_argument(
        "--data-root", type=Path, required=True, metavar="DIR", help="the ADEChallengeData2016 folder itself"
    )
    verify.add_argument("--pairs", type=Path, required=True, metavar="FILE", help="the pairs file")
    verify.add_argument(
        "--manifest",
        type=Path,
        metavar="FILE",
        help="manifest JSON (default: the bundled ade20k_manifest.json)",
    )
    verify.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _overrides(args: argparse.Namespace) -> Overrides:
    return Overrides(
        data_root=args.data_root,
        pairs=args.pairs,
        models=dict(args.model),
        verifier=args.verifier,
        limit=args.limit,
        output=args.output,
        device=args.device,
        metrics=args.metrics,
        bootstrap=args.bootstrap,
        sequential=getattr(args, "sequential", False),
        alpha=getattr(args, "alpha", None),
        look_every=getattr(args, "look_every", None),
    )


def _executor(args: argparse.Namespace) -> object:
    from evalkit.execution.executors import make_executor

    return make_executor(
        args.executor,
        use_cache=not args.no_cache,
        cache_root=args.cache_dir,
        save_images=args.save_images,
        log=_log,
        scheduler=getattr(args, "scheduler", None),
        workers=getattr(args, "workers", None),
        shard_size=getattr(args, "shard_size", None),
    )


def _log(message: str) -> None:
    print(f"evalkit: {message}", file=sys.stderr, flush=True)


def _print_outcome(outcome: RunOutcome) -> int:
    from evalkit.report import render_markdown

    print(render_markdown(outcome.result))
    if outcome.gate is not None:
        from evalkit.report.gate import render_gate_text

        print(render_gate_text(outcome.gate))
    print(f"Wrote {', '.join(str(p) for p in outcome.paths.values())}")
    return EXIT_OK if outcome.passed else EXIT_GATE_FAILED


def _cmd_run(args: argparse.Namespace) -> int:
    from evalkit.config import apply_overrides, load_config
    from evalkit.workflow import run_and_report, step_summary_file

    if args.junit_xml is not None and not args.gate:
        raise InputError("--junit-xml: only with --gate (there are no verdicts to write)")
    if args.sequential and not args.gate:
        raise InputError("--sequential: only with --gate (sequential gating stops a gated run)")
    # The config's 'gate:' thresholds are read with it: a typo fails now, not after hours of inference.
    config = apply_overrides(load_config(args.config), _overrides(args))
    executor = _executor(args)
    try:
        outcome = run_and_report(
            config,
            gate=args.gate,
            gallery_pairs=args.gallery_pairs,
            resume=args.resume,
            fresh=args.fresh,
            on_error=args.on_error,
            progress=not args.quiet,
            log=_log,
            executor=executor,
            junit_xml=args.junit_xml,
            step_summary=step_summary_file() if args.gate else None,
        )
    finally:
        close = getattr(executor, "close", None)
        if close is not None:
            close()
    return _print_outcome(outcome)


def _cmd_check(args: argparse.Namespace) -> int:
    from evalkit.config import apply_overrides, load_config
    from evalkit.execution.check import check, run_outputs

    config = apply_overrides(load_config(args.config), _overrides(args))
    outputs = run_outputs(
        config.output,
        save_images=args.save_images,
        cache_root=args.cache_dir,
        use_cache=not args.no_cache,
        gallery=args.gallery_pairs > 0,
    )
    report = check(config, outputs=outputs)
    for problem in report.problems:
        print(f"evalkit: error: {problem}", file=sys.stderr)
    if not report.ok:
        print(f"evalkit check: {len(report.problems)} problem(s)", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"evalkit check: OK ({report.n_pairs} pairs, {report.n_models} models, verifier, output folder)")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from evalkit.workflow import demo_cache_dir, demo_inputs_ready, run_demo

    if not args.quiet:
        # Built once, then reused while they match: say which, so a second demo does not claim a build.
        doing = "reusing" if demo_inputs_ready(args.cache_dir, args.pairs) else "building"
        print(
            f"evalkit demo: {doing} stand-in models and {args.pairs} synthetic pairs in "
            f"{demo_cache_dir(args.cache_dir)}",
            file=sys.stderr,
        )
    outcome = run_demo(
        args.output,
        cache_dir=args.cache_dir,
        n_pairs=args.pairs,
        progress=not args.quiet,
        log=_log,
        compress=args.compress,
    )
    return _print_outcome(outcome)


def _cmd_compress(args: argparse.Namespace) -> int:
    from evalkit.config import apply_overrides, load_config
    from evalkit.workflow import compress_and_report

    if args.resume:
        raise InputError("--resume: compress makes the model again; use --fresh to discard an old journal")
    if len(args.max_drop) > 1:
        raise InputError(
            f"--max-drop: one metric (NNCF's accuracy control follows one), got {', '.join(args.max_drop)}"
        )
    config = apply_overrides(load_config(args.config), _overrides(args))
    executor = _executor(args)
    try:
        outcome = compress_and_report(
            config,
            args.source,
            args.mode,
            max_drop=args.max_drop[0] if args.max_drop else None,
            calibration_pairs=args.calibration_pairs,
            exclude_calibration=args.exclude_calibration,
            gallery_pairs=args.gallery_pairs,
            fresh=args.fresh,
            on_error=args.on_error,
            progress=not args.quiet,
            log=_log,
            executor=executor,  # type: ignore[arg-type]
        )
    finally:
        close = getattr(executor, "close", None)
        if close is not None:
            close()
    code = _print_outcome(outcome.run)
    print(f"Compressed model: {outcome.model.spec.path} (how it was made: {outcome.model.sidecar})")
    if outcome.bound_missed is not None:
        print(f"evalkit: {outcome.bound_missed}", file=sys.stderr)
        return EXIT_GATE_FAILED
    return code


def _cmd_cache(args: argparse.Namespace) -> int:
    from evalkit.execution.cache import clear_cache, default_cache_dir

    directory = default_cache_dir(args.cache_dir)
    removed = clear_cache(directory)
    print(f"evalkit cache clear: removed {removed} entries from {directory}")
    return EXIT_OK


def _report_formats(text: str) -> tuple[str, ...]:
    from evalkit.report import REPORT_FORMATS

    items = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not items or any(t not in REPORT_FORMATS for t in items):
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated list of {', '.join(REPORT_FORMATS)}, got {text!r}"
        )
    return items


def _cmd_gate(args: argparse.Namespace) -> int:
    from evalkit.config import DEFAULT_GATE_SPEC, load_gate_file
    from evalkit.gate import compare_runs, compare_to_published
    from evalkit.report.gate import render_gate_markdown, render_gate_text
    from evalkit.results import load_results, write_text_atomic
    from evalkit.workflow import check_gate_ci_files, step_summary_file, write_gate_ci_files

    paths = args.results
    if len(paths) > 2 or (len(paths) == 1 and not args.published):
        raise InputError("gate: give BASELINE.json CANDIDATE.json, or CANDIDATE.json with --published")
    if args.baseline_model and len(paths) == 1:
        raise InputError("--baseline-model: needs a BASELINE.json to take the model from")
    spec, published = load_gate_file(args.config) if args.config else (DEFAULT_GATE_SPEC, None)
    if args.published and published is None:
        where = args.config or "--published"
        raise InputError(f"{where}: no 'published:' table to compare with (give it with --config FILE)")
    step_summary = step_summary_file()
    check_gate_ci_files(args.junit_xml, step_summary)
    candidate = load_results(paths[-1])
    reports = []
    if len(paths) == 2:
        reports.append(
            compare_runs(
                load_results(paths[0]),
                candidate,
                spec,
                models=args.model,
                baseline_model=args.baseline_model,
                baseline_label=str(paths[0]),
                candidate_label=str(paths[-1]),
            )
        )
    if args.published:
        assert published is not None
        reports.append(
            compare_to_published(
                candidate, published, spec, models=args.model, candidate_label=str(paths[-1])
            )
        )
    print("\n".join(render_gate_text(r) for r in reports), end="")
    if args.markdown:
        write_text_atomic(args.markdown, "\n".join(render_gate_markdown(r) for r in reports))
    write_gate_ci_files(reports, junit_xml=args.junit_xml, step_summary=step_summary)
    return EXIT_OK if all(r.passed for r in reports) else EXIT_GATE_FAILED


def _cmd_report(args: argparse.Namespace) -> int:
    from evalkit.workflow import render_results

    paths = render_results(args.results, args.output, formats=args.format, gallery=args.gallery)
    print(f"Wrote {', '.join(str(p) for p in paths.values())}")
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    from evalkit.config import check_alpha
    from evalkit.report.plan import render_plan
    from evalkit.results import load_results

    if not 0.0 < args.power < 1.0:
        raise InputError(f"--power: expected a number in (0, 1), e.g. 0.8, got {args.power!r}")
    alpha = None if args.alpha is None else check_alpha(args.alpha, "--alpha")
    print(render_plan(load_results(args.results), alpha=alpha, power=args.power))
    return EXIT_OK


def _cmd_verify_data(args: argparse.Namespace) -> int:
    from evalkit.config import bundled_config
    from evalkit.data.manifest import load_manifest, verify_data

    manifest_path = args.manifest or bundled_config("ade20k_manifest.json")
    manifest = load_manifest(manifest_path)
    findings = verify_data(args.data_root, args.pairs, manifest)
    for finding in findings:
        print(f"evalkit: {finding}", file=sys.stderr)
    if findings:
        print(f"evalkit verify-data: {len(findings)} finding(s) against {manifest_path}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"evalkit verify-data: OK ({manifest.pairs} pairs, every referenced file present, {manifest_path})")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``evalkit`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handlers = {
        "run": _cmd_run,
        "check": _cmd_check,
        "demo": _cmd_demo,
        "compress": _cmd_compress,
        "cache": _cmd_cache,
        "gate": _cmd_gate,
        "report": _cmd_report,
        "plan": _cmd_plan,
        "verify-data": _cmd_verify_data,
    }
    installed, previous = _terminate_like_ctrl_c()
    try:
        return handlers[args.command](args)
    except InputError as exc:
        print(f"evalkit: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        name, code = ("SIGTERM", EXIT_SIGTERM) if isinstance(exc, Terminated) else ("SIGINT", EXIT_SIGINT)
        resume = "; resume with the same command plus --resume" if args.command == "run" else ""
        print(f"evalkit: interrupted ({name}){resume}", file=sys.stderr)
        return code
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        else:
            print(
                f"evalkit: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
                file=sys.stderr,
            )
        return EXIT_INTERNAL
    finally:
        if installed and previous is not None:  # None: a handler set outside Python, left alone
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
