"""Compressed models made with NNCF: INT8 post-training quantization (optionally with evalkit's metric as the
accuracy control) and INT8 weight compression, calibrated on the run's own pairs.

This module makes the compressed IR and its sidecar JSON; :func:`evalkit.workflow.compress_and_report`
(``evalkit compress``) then evaluates it beside its source model through the normal run and gates it.
``nncf`` (``pip install 'evalkit[compress]'``) is imported only here, and only inside the functions that
need it: importing this module costs nothing.

What calibration feeds: the model file as read (:func:`evalkit.runtime.translator.read_translator_model`),
with its own inputs: the masks as ``1 x 151 x 256 x 256`` float one-hot arrays
(:func:`evalkit.runtime.translator.model_inputs` with ``one_hot_placement="host"``), the exemplar in the
model's ``ref_image`` convention, each pair read and resized by :func:`evalkit.execution.pair.prepare_pair`:
exactly the values evaluation feeds (evaluation puts a OneHot op in front of the same graph, which computes
the same 0/1 floats). Every input of the model is covered by every calibration item. The compressed IR keeps
the source's interface, so it is evaluated the same way as the source. Written for CoCosNet's interface
(three inputs, one-hot masks); tested on the stand-ins only, never on the real CoCosNet here.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import math
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from evalkit import config as cfg
from evalkit import defaults
from evalkit.data.ade20k import Pair, pair_files
from evalkit.errors import InputError
from evalkit.execution.pair import finish_image, prepare_pair
from evalkit.fileio import sha256_file, write_text_atomic
from evalkit.metrics import mean_std_finite
from evalkit.metrics.registry import Metric, SetInputs, metrics_of
from evalkit.runtime.core import make_core, model_sha256
from evalkit.runtime.translator import model_inputs, read_translator_model
from evalkit.runtime.verifier import Verifier, load_verifier
from evalkit.stats.aggregate import metric_settings

__all__ = [
    "MODES",
    "NNCF_REQUIREMENT",
    "CompressedModel",
    "MaxDrop",
    "Mode",
    "check_request",
    "compress_model",
    "compressed_name",
    "draw_calibration_pairs",
    "parse_max_drop",
    "quantized_operations",
    "require_nncf",
]

Mode = Literal["int8", "int8-weights"]
#: ``--mode``: NNCF post-training quantization, or INT8 weight-only compression.
MODES: tuple[str, ...] = ("int8", "int8-weights")
#: What ``pip install 'evalkit[compress]'`` installs: the NNCF versions this feature is tested with (keep in
#: step with pyproject.toml's ``compress`` extra).
NNCF_REQUIREMENT = "nncf>=3.4,<3.5"
#: The sidecar JSON's format version.
SIDECAR_VERSION = 1


def require_nncf() -> str:
    """The installed NNCF's version; :class:`InputError` saying how to install it when it is absent."""
    try:
        import nncf
    except ImportError:
        raise InputError(
            f"evalkit compress needs NNCF, which is not installed: pip install 'evalkit[compress]' "
            f"(or pip install '{NNCF_REQUIREMENT}')"
        ) from None
    return str(nncf.__version__)


def compressed_name(source: str, mode: Mode) -> str:
    """The compressed model's name in the run: ``SOURCE-int8`` or ``SOURCE-int8-weights``."""
    return f"{source}-{mode}"


# ------------------------------------------------------------------------------------------------ --max-drop

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$", re.ASCII)  # not Arabic-Indic digits


@dataclass(frozen=True)
class MaxDrop:
    """How much worse than its source the quantized model may get on one metric (``--max-drop``).

    Attributes
    ----------
    metric : Metric
        A reference metric of the registry.
    value : float
        In the metric's unit for a per-image metric (PSNR in dB, SSIM); a fraction of the source's value
        for a set metric (IS, FID: ``fid=2%`` is 0.02).
    text : str
        As given, e.g. ``fid=2%``.
    """

    metric: Metric
    value: float
    text: str

    @property
    def relative(self) -> bool:
        """True for a percentage bound (set metrics), False for one in the metric's unit."""
        return self.metric.kind == "set"

    def drop(self, source: float, compressed: float) -> float:
        """How much worse ``compressed`` is than ``source`` in the bound's terms (negative: better)."""
        worse = source - compressed if self.metric.higher_is_better else compressed - source
        return worse / abs(source) if self.relative else worse

    def describe(self, amount: float | None = None) -> str:
        """``0.1 dB`` or ``2 %`` (``amount`` in the bound's terms; default the bound itself)."""
        amount = self.value if amount is None else amount
        if self.relative:
            return f"{amount * 100:.4g} %"
        return f"{amount:.4g}{self.metric.unit}"


def parse_max_drop(text: str) -> MaxDrop:
    """Parse ``METRIC=VALUE``: a per-image metric in its unit (``psnr=0.1``), a set metric in percent
    (``fid=2%``).

    Raises
    ------
    InputError
        An unknown metric (naming the valid ones) or a malformed value (one line, naming the flag).

    Notes
    -----
    The unit is part of the syntax (a set metric without ``%`` or a per-image metric with it is refused)
    so that ``fid=2`` cannot mean 2 % to one reader and 2 FID points to another. A negative value is a
    well-formed bound that asks the compressed model to beat its source; accuracy control cannot promise
    that, and the check after the evaluation then reports by how much it was missed.
    """
    choices = {m.key: m for m in metrics_of("reference")}
    name, sep, raw = text.partition("=")
    name, raw = name.strip().lower(), raw.strip()
    if not sep or not name:
        raise InputError(f"--max-drop {text!r}: expected METRIC=VALUE, e.g. psnr=0.1 or fid=2%")
    if name not in choices:
        raise InputError(f"--max-drop {text!r}: unknown metric '{name}' (one of {', '.join(choices)})")
    metric = choices[name]
    percent = raw.endswith("%")
    number = raw[:-1].strip() if percent else raw
    if metric.kind == "set" and not percent:
        raise InputError(f"--max-drop {text!r}: {metric.name} takes a percentage of the source's value, e.g. "
                         f"{name}=2%")
    if metric.kind != "set" and percent:
        raise InputError(f"--max-drop {text!r}: {metric.name} takes a value in its own unit, e.g. {name}=0.1")
    if not _NUMBER.match(number):
        raise InputError(f"--max-drop {text!r}: '{raw}' is not a number")
    value = float(number) / (100.0 if percent else 1.0)
    if not math.isfinite(value):
        raise InputError(f"--max-drop {text!r}: '{raw}' is not a finite number")
    return MaxDrop(metric=metric, value=value, text=text)


# ------------------------------------------------------------------------------------------------ calibration


def draw_calibration_pairs(pairs: Sequence[Pair], n: int, seed: int) -> tuple[Pair, ...]:
    """``min(n, len(pairs))`` pairs drawn without replacement with ``numpy.random.default_rng(seed)``, in pair
    order.

    Raises
    ------
    InputError
        ``n < 1`` or no pairs: an empty calibration set.
    """
    if n < 1:
        raise InputError(f"--calibration-pairs: expected a positive number of pairs, got {n}")
    if not pairs:
        raise InputError("calibration: the pairs file lists no pairs to calibrate on")
    chosen = np.random.default_rng(seed).choice(len(pairs), size=min(n, len(pairs)), replace=False)
    return tuple(pairs[i] for i in sorted(int(i) for i in chosen))


def _pair_sha256(root: Path, pair: Pair) -> str:
    files = pair_files(root, pair)
    return sha256_file(files.input_mask, files.exemplar, files.exemplar_mask, files.ground_truth)


# ---------------------------------------------------------------------------------------- quantized graph


def quantized_operations(model: Any) -> list[str]:
    """Friendly names of the operations of an ``ov.Model`` that compute on INT8: those fed by a FakeQuantize
    (post-training quantization) or by INT8/UINT8 weights (weight compression), sorted."""
    quantized = set()
    int8 = {"i8", "u8"}
    for op in model.get_ordered_ops():
        for port in op.inputs():
            source = port.get_source_output().get_node()
            kind = source.get_type_name()
            if kind == "FakeQuantize":
                quantized.add(op.get_friendly_name())
            elif kind in ("Convert", "Subtract", "Multiply") and op.get_type_name() not in (
                "Convert", "Subtract", "Multiply"
            ):
                # weight decompression: Constant(u8/i8) -> Convert -> [Subtract] -> Multiply [-> Convert]
                if _from_int8_constant(source, int8):
                    quantized.add(op.get_friendly_name())
    return sorted(quantized)


def _from_int8_constant(node: Any, int8: set[str], depth: int = 5) -> bool:
    if node.get_type_name() == "Constant":
        return node.get_output_element_type(0).get_type_name() in int8
    if depth == 0 or node.get_type_name() not in ("Convert", "Subtract", "Multiply", "Reshape"):
        return False
    return any(_from_int8_constant(i.get_source_output().get_node(), int8, depth - 1) for i in node.inputs())


# ---------------------------------------------------------------------------------------- NNCF's output


class _RevertedOperations(logging.Handler):
    """Collects from NNCF's log which operations accuracy control reverted to float.

    NNCF 3.4 returns only the model; its accuracy restorer logs each group it reverts ("Reverted K
    operations to the floating-point precision:" then one name per line), a group it takes back is not
    logged, and the final summary ("K out of N were reverted back to the floating-point precision:")
    lists what stays reverted, except when every group was reverted ("All layers have been checked").
    The tests check this against the model's graph, so a changed message shows there.
    """

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.tried: list[str] = []
        self.final: list[str] | None = None
        self.total: int | None = None

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        head, _, rest = text.partition("\n")
        names = [line.strip() for line in rest.splitlines() if line.strip()]
        if head.startswith("Reverted ") and "floating-point precision" in head:
            self.tried += names
        elif " were reverted back to the floating-point precision" in head:
            self.final = names
        elif head.startswith("Total number of quantized operations in the model:"):
            self.total = int(head.rsplit(":", 1)[1])

    @property
    def reverted(self) -> tuple[str, ...]:
        """What stays reverted, sorted: the summary's list, else (every group reverted) every group tried.

        Sorted because NNCF lists them in an order that changes from one process to the next (it iterates
        sets of strings, whose order follows Python's per-process hash seed).
        """
        return tuple(sorted(self.final if self.final is not None else set(self.tried)))


@contextlib.contextmanager
def _nncf_output(quiet: bool) -> Iterator[_RevertedOperations]:
    # NNCF writes its progress bars (rich, to sys.stdout at write time) and its log (a handler bound to
    # stdout at import) to stdout, where evalkit prints the report: both go to stderr, or (quiet) nowhere
    # but warnings. The logger itself stays at INFO for the reverted operations' collector.
    logger = logging.getLogger("nncf")
    handlers = [h for h in logger.handlers if isinstance(h, logging.StreamHandler)]
    saved = [(h.stream, h.level) for h in handlers]
    level = logger.level
    collector = _RevertedOperations()
    with open(os.devnull, "w") as devnull:
        for handler in handlers:
            handler.setStream(sys.stderr)
            if quiet:
                handler.setLevel(logging.WARNING)
        logger.setLevel(logging.INFO)
        logger.addHandler(collector)
        try:
            with contextlib.redirect_stdout(devnull if quiet else sys.stderr):
                yield collector
        finally:
            logger.removeHandler(collector)
            logger.setLevel(level)
            for handler, (stream, handler_level) in zip(handlers, saved, strict=True):
                handler.setStream(stream)
                handler.setLevel(handler_level)


# ------------------------------------------------------------------------------------------ the model


@dataclass(frozen=True)
class CompressedModel:
    """What :func:`compress_model` made.

    Attributes
    ----------
    spec : ModelSpec
        The compressed model as a model of the run: ``SOURCE-MODE``, the source's interface, its label
        saying how it was made, its path the compressed ``.xml``.
    sidecar : Path
        The JSON beside the IR (source sha256, mode, versions, calibration pairs and their sha256,
        settings, seed, reverted operations).
    calibration : tuple of Pair
        The calibration pairs (empty for ``int8-weights``, which needs no data).
    quantized : tuple of str
        The operations that compute on INT8 in the compressed model.
    reverted : tuple of str
        Operations accuracy control put back to float (``--max-drop``; else empty).
    record : dict
        The sidecar's content.
    """

    spec: cfg.ModelSpec
    sidecar: Path
    calibration: tuple[Pair, ...]
    quantized: tuple[str, ...]
    reverted: tuple[str, ...]
    record: dict[str, Any]


def _label(
    source: cfg.ModelSpec,
    mode: Mode,
    n_calibration: int,
    evaluated: bool,
    reverted: Sequence[str],
    total: int | None,
) -> str:
    # What the report says of the model: every table heads its column with the label.
    if mode == "int8-weights":
        return f"{source.label} → INT8 weights (NNCF)"
    where = "also evaluated" if evaluated else "not evaluated"
    how = f"NNCF PTQ, {n_calibration} calibration pairs, {where}"
    if reverted:
        how += f"; {len(reverted)} of {total or '?'} ops reverted to float: {', '.join(reverted)}"
    return f"{source.label} → INT8 ({how})"


class _Validation:
    """NNCF's ``validation_fn``: evalkit's metric on the validation pairs, as the evaluation computes it.

    NNCF wants higher-is-better values; a lower-is-better metric (FID) is negated. A per-image metric
    returns its mean and the per-pair values (NNCF ranks operations by them); a set metric (IS, FID) has no
    per-pair value, so it returns the model's raw outputs per pair and NNCF ranks by how far they moved.
    """

    def __init__(self, config: cfg.Config, spec: cfg.ModelSpec, out_index: int, bound: MaxDrop) -> None:
        self.config, self.spec, self.out_index, self.metric = config, spec, out_index, bound.metric
        self.settings = metric_settings(config.metrics)
        self.sign = 1.0 if bound.metric.higher_is_better else -1.0
        self.verifier: Verifier | None = None
        self.gt_outputs: dict[int, Any] = {}  # the ground truth's verifier outputs, once per pair

    def __call__(self, compiled: Any, items: Iterable[Pair]) -> tuple[float, list[Any]]:
        root = self.config.dataset.root
        assert root is not None
        per_pair: list[Any] = []
        features, probabilities, gt_features = [], [], []
        for pair in items:
            inputs = prepare_pair(root, pair, max_pixels=self.config.dataset.max_pixels)
            feed = model_inputs(
                self.spec, inputs.mask, inputs.exemplar, inputs.exemplar_mask, one_hot_placement="host"
            )
            raw = compiled(feed)[self.out_index]
            image = finish_image(raw, inputs.ground_truth)
            if self.metric.kind == "per_image":
                per_pair.append(self.metric.compute(image, inputs.ground_truth, self.settings))  # type: ignore[call-arg, arg-type]
                continue
            verifier = self._verifier()
            if pair.index not in self.gt_outputs:
                self.gt_outputs[pair.index] = verifier(inputs.ground_truth)
            out = verifier(image)
            features.append(out.features)
            probabilities.append(out.probabilities)
            gt_features.append(self.gt_outputs[pair.index].features)
            per_pair.append([np.asarray(raw)])
        if self.metric.kind == "per_image":
            values = np.asarray(per_pair, dtype=np.float64)
            mean = mean_std_finite(values)[0] if self.metric.finite_mean else float(values.mean())
            # +inf (an image identical to its ground truth) is left out of the mean, as in the summary; NNCF's
            # per-pair ranking needs finite numbers, so such a pair counts as the mean
            finite = [float(v) if math.isfinite(v) else mean for v in values]
            return self.sign * float(mean), [self.sign * v for v in finite]
        inputs_set = SetInputs(
            gt_features=np.stack(gt_features),
            features=np.stack(features),
            probabilities=np.stack(probabilities),
        )
        value, _ = self.metric.compute(inputs_set, self.settings)  # type: ignore[call-arg, arg-type, misc]
        return self.sign * float(value), per_pair

    def _verifier(self) -> Verifier:
        if self.verifier is None:
            self.verifier = load_verifier(make_core(), self.config.verifier, self.config.runtime)
        return self.verifier


def check_request(config: cfg.Config, source: str, mode: str, max_drop: MaxDrop | None) -> None:
    """Refuse, before any work, an unknown model key or mode, ``max_drop`` with weight compression, or a
    config that already has a model of the compressed model's name (one line each, :class:`InputError`)."""
    if mode not in MODES:
        raise InputError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")
    names = [m.name for m in config.models]
    if source not in names:
        close = difflib.get_close_matches(source, names, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise InputError(
            f"--source {source}: not a model of {config.source} (models: {', '.join(names)}){hint}"
        )
    if max_drop is not None and mode != "int8":
        raise InputError("--max-drop: only with --mode int8 (weight compression has no accuracy control)")
    name = compressed_name(source, mode)  # type: ignore[arg-type]
    if name in names:
        raise InputError(f"{config.source}: already has a model named '{name}', the compressed model's name")


def _stable_names(model: Any, keep: set[str]) -> None:
    # OpenVINO names an unnamed node TYPE_N from a process-wide counter, so NNCF's helper nodes got
    # different names in each process (the only bytes that differed between two runs): renumber them in
    # graph order. Names of the source model (``keep``) are never touched, even when they look like these.
    for ordinal, op in enumerate(model.get_ordered_ops()):
        name = op.get_friendly_name()
        if name not in keep and re.fullmatch(rf"{re.escape(op.get_type_name())}_\d+", name):
            op.set_friendly_name(f"evalkit_compress/{op.get_type_name()}_{ordinal}")


def _save_ir(model: Any, xml: Path) -> None:
    # Written beside the destination and renamed into place, .bin first: a reader never finds a torn pair.
    import openvino as ov

    xml.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".compress-", dir=xml.parent) as staging:
        tmp = Path(staging) / xml.name
        ov.save_model(model, tmp, compress_to_fp16=False)  # the default would add FP16 on top of INT8
        os.replace(tmp.with_suffix(".bin"), xml.with_suffix(".bin"))
        os.replace(tmp, xml)


def compress_model(
    config: cfg.Config,
    source: str,
    mode: Mode,
    directory: str | Path,
    pairs: Sequence[Pair],
    *,
    calibration_pairs: int = defaults.CALIBRATION_PAIRS,
    max_drop: MaxDrop | None = None,
    evaluated_with_calibration: bool = True,
    quiet: bool = False,
    log: Callable[[str], None] | None = None,
) -> CompressedModel:
    """Make ``SOURCE-MODE`` from the config's model ``source`` with NNCF; write its IR and sidecar JSON.

    Parameters
    ----------
    config
        A complete config (its data root, the source model's path and interface, its verifier and metric
        settings; ``metrics.seed`` seeds the calibration draw).
    source
        The model key to compress.
    mode
        ``"int8"``: ``nncf.quantize`` (``nncf.quantize_with_accuracy_control`` with ``max_drop``);
        ``"int8-weights"``: ``nncf.compress_weights`` (INT8 weight-only, no data needed).
    directory
        Where ``SOURCE-MODE.xml``/``.bin`` and ``SOURCE-MODE.json`` go (``evalkit compress``: ``DIR/models``).
    pairs
        The pairs the calibration set is drawn from (the run's pairs, after ``--limit``).
    calibration_pairs
        How many (all of ``pairs`` when there are fewer); for ``max_drop`` the same pairs are NNCF's
        validation subset.
    max_drop
        Accuracy control's bound (``int8`` only).
    evaluated_with_calibration
        Whether the run evaluates the calibration pairs too (recorded and said in the label).
    quiet
        NNCF's progress bars off, its log at warnings only (they go to stderr either way).
    log
        Receives one-line messages.

    Returns
    -------
    CompressedModel

    Raises
    ------
    InputError
        NNCF absent, an unknown model key, ``max_drop`` with ``int8-weights``, an empty calibration set, a
        bad source model or pair (one line each).

    Notes
    -----
    Determinism: the calibration draw is seeded and NNCF's statistics, bias correction and accuracy control
    visit the data in the order given, so the same inputs and seed give a bit-identical IR on one machine
    (tested for ``int8`` and ``int8-weights``). With ``max_drop``, NNCF's accuracy control iterates sets of
    operation names, whose order follows Python's per-process hash seed: two processes gave the same
    metrics and the same reverted operations (listed sorted here), but bit-identity is not tested; set
    ``PYTHONHASHSEED`` to pin it. NNCF compiles the model for its statistics and validation with
    OpenVINO's default CPU thread count, and OpenVINO's f32 kernels are not bit-invariant to the thread
    count: on a machine with another number of cores the quantization ranges may differ in their last
    bits. The sidecar records the IR's sha256, so two IRs can be compared by it. OpenVINO names NNCF's
    helper nodes from a process-wide counter; they are renamed in graph order before saving (without that,
    those names were the only bytes that differed between two processes).
    """
    import openvino as ov

    nncf_version = require_nncf()
    check_request(config, source, mode, max_drop)
    log = log or (lambda message: None)
    spec = config.model(source)
    name = compressed_name(source, mode)
    cfg.require_complete(config)
    root = config.dataset.root
    assert root is not None and spec.path is not None
    seed = config.metrics.seed
    calibration: tuple[Pair, ...] = ()
    if mode == "int8":
        calibration = draw_calibration_pairs(pairs, calibration_pairs, seed)
        if len(calibration) < calibration_pairs:
            log(f"calibration: {calibration_pairs} pairs asked for, the run has {len(calibration)}: all used")
    source_sha256 = model_sha256(spec.path)  # before anything is written
    model, out_index = read_translator_model(make_core(), spec)
    source_names = {op.get_friendly_name() for op in model.get_ops()}  # before NNCF (it may edit in place)
    settings: dict[str, Any]
    import nncf

    with _nncf_output(quiet) as nncf_log:
        if mode == "int8-weights":
            settings = {"function": "nncf.compress_weights", "mode": "INT8_ASYM"}
            compressed = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
        else:
            dataset = nncf.Dataset(
                list(calibration),
                lambda pair: _calibration_feed(config, spec, pair),
            )
            settings = {
                "preset": "performance (NNCF default)",
                "target_device": "ANY",
                "subset_size": len(calibration),
                "fast_bias_correction": True,
            }
            if max_drop is None:
                settings["function"] = "nncf.quantize"
                compressed = nncf.quantize(model, dataset, subset_size=len(calibration))
            else:
                settings.update(
                    function="nncf.quantize_with_accuracy_control",
                    max_drop=max_drop.text,
                    drop_type="relative" if max_drop.relative else "absolute",
                    validation_pairs="the calibration pairs",
                )
                compressed = nncf.quantize_with_accuracy_control(
                    model,
                    dataset,
                    dataset,
                    _Validation(config, spec, out_index, max_drop),
                    max_drop=max_drop.value,
                    drop_type=nncf.DropType.RELATIVE if max_drop.relative else nncf.DropType.ABSOLUTE,
                    subset_size=len(calibration),
                )
    _stable_names(compressed, source_names)
    quantized = tuple(quantized_operations(compressed))
    reverted = nncf_log.reverted if max_drop is not None else ()
    if reverted:
        log(
            f"accuracy control reverted {len(reverted)} of {nncf_log.total} quantized operations to float: "
            + ", ".join(reverted)
        )
    elif max_drop is not None:
        log(
            f"accuracy control reverted nothing: on the {len(calibration)} calibration pairs the plain "
            f"quantization was no worse than {max_drop.text} allows (the full evaluation decides)"
        )
    xml = Path(directory) / f"{name}.xml"
    _save_ir(compressed, xml)
    label = _label(spec, mode, len(calibration), evaluated_with_calibration, reverted, nncf_log.total)
    record = {
        "sidecar_version": SIDECAR_VERSION,
        "name": name,
        "label": label,
        "mode": mode,
        "source": {"name": source, "path": str(spec.path), "sha256": source_sha256},
        "compressed": {"xml": xml.name, "sha256": model_sha256(xml)},
        "nncf": nncf_version,
        "openvino": ov.get_version(),
        "seed": seed,
        "settings": settings,
        "calibration": {
            "feeds": "the model file's own inputs: one-hot float masks, ref_image in the model's convention",
            "pairs_evaluated_too": evaluated_with_calibration,
            "pairs": [{"pair_id": p.val_id, "exemplar_id": p.exemplar_id, "sha256": _pair_sha256(root, p)}
                      for p in calibration],
        },
        "int8_operations": list(quantized),
        "accuracy_control": None
        if max_drop is None
        else {"quantized_operations": nncf_log.total, "reverted_operations": list(reverted)},
    }
    sidecar = xml.with_suffix(".json")
    write_text_atomic(sidecar, json.dumps(record, indent=2) + "\n")
    return CompressedModel(
        spec=cfg.ModelSpec(name=name, label=label, path=xml, ref_image=spec.ref_image, tensors=spec.tensors),
        sidecar=sidecar,
        calibration=calibration,
        quantized=quantized,
        reverted=reverted,
        record=record,
    )


def _calibration_feed(config: cfg.Config, spec: cfg.ModelSpec, pair: Pair) -> dict[str, np.ndarray]:
    # Read lazily, per pass: 300 pairs of one-hot masks would be 24 GB held at once.
    root = config.dataset.root
    assert root is not None
    inputs = prepare_pair(root, pair, max_pixels=config.dataset.max_pixels)
    return model_inputs(spec, inputs.mask, inputs.exemplar, inputs.exemplar_mask, one_hot_placement="host")
