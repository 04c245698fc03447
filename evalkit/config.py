"""YAML config -> typed, validated records; command-line overrides applied in one place.

A config names the data set, the translation models (each with its own input convention), the verifier,
the runtime settings and the metric settings. Relative paths are taken relative to the current directory,
as on the command line. Every problem is reported as one line naming the file and the key.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from evalkit import defaults
from evalkit.errors import InputError
from evalkit.metrics.registry import METRICS, METRICS_BY_KEY

ColorOrder = Literal["RGB", "BGR"]
SsimConstants = Literal["reference", "reference-2020"]
FidMethod = Literal["auto", "eigh", "sqrtm"]
MetricProfile = Literal["reference", "all"]
OneHotPlacement = Literal["graph", "host"]


@dataclass(frozen=True)
class InputConvention:
    """How an image tensor is fed: channel order, then ``(x - mean) / scale`` on 0..255 values.

    The OMZ IRs take BGR 0..255 (normalisation baked in): ``BGR, mean 0, scale 1``. The original
    PyTorch/ONNX CoCosNet takes ``RGB, mean 127.5, scale 127.5``.
    """

    color_order: ColorOrder = "BGR"
    mean: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class TensorNames:
    """Tensor names of a translation model; defaults are the real CoCosNet's."""

    input_seg_map: str = defaults.INPUT_MASK_NAME
    ref_image: str = defaults.EXEMPLAR_NAME
    ref_seg_map: str = defaults.EXEMPLAR_MASK_NAME
    output: str = defaults.OUTPUT_NAME


@dataclass(frozen=True)
class ModelSpec:
    """One translation model to evaluate."""

    name: str
    label: str
    path: Path | None
    ref_image: InputConvention = field(default_factory=InputConvention)
    tensors: TensorNames = field(default_factory=TensorNames)


@dataclass(frozen=True)
class VerifierSpec:
    """The Inception-V3 verifier that gives IS probabilities and FID features."""

    path: Path | None
    input: InputConvention = field(default_factory=InputConvention)
    probabilities_output: str = defaults.VERIFIER_PROBABILITIES
    features_output: str = defaults.VERIFIER_FEATURES
    feature_size: int = defaults.VERIFIER_FEATURE_DIM  #: values of the features output (2048: googlenet-v3)


@dataclass(frozen=True)
class DatasetSpec:
    """Where the ADE20k tree and the pairs file are; ``limit`` keeps the first N pairs; an image declaring
    more than ``max_pixels`` pixels is refused before it is decoded."""

    root: Path | None = None
    pairs: Path | None = None
    limit: int | None = None
    max_pixels: int = defaults.MAX_PIXELS


@dataclass(frozen=True)
class RuntimeSpec:
    """OpenVINO and pipelining settings.

    ``inference_precision`` is pinned (f32 by default) so numbers never drift. ``streams`` and
    ``requests`` (``None`` = OpenVINO's THROUGHPUT-hint defaults) and ``reader_threads`` only change speed,
    never results. ``one_hot="graph"`` puts the label maps' one-hot expansion into the translation model
    (a OneHot op in front of it, fed 256 x 256 uint8 labels); ``"host"`` expands them with NumPy and feeds
    the model's own float inputs. Both give the same bits (tested); ``graph`` is faster.
    """

    device: str = defaults.DEVICE
    inference_precision: str = defaults.INFERENCE_PRECISION
    streams: int | None = None
    requests: int | None = None
    reader_threads: int = defaults.READER_THREADS
    one_hot: OneHotPlacement = defaults.ONE_HOT


@dataclass(frozen=True)
class MetricSpec:
    """Metric variants. The reference table's defaults reproduce the OMZ Accuracy Checker 2023.3.

    ``profile="all"`` adds the extended table (Wang SSIM, RGB PSNR, IS over 10 splits, KID) and the paired
    comparison of every model with ``reference_model`` (default: the first model); ``"reference"`` keeps
    the four reference metrics only. ``bootstrap`` resamples (0 = off) and ``seed`` drive the intervals.
    """

    ssim_constants: SsimConstants = defaults.SSIM_CONSTANTS
    fid_method: FidMethod = defaults.FID_METHOD
    profile: MetricProfile = defaults.METRIC_PROFILE
    reference_model: str | None = None
    bootstrap: int = defaults.BOOTSTRAP
    seed: int = defaults.SEED


@dataclass(frozen=True)
class SequentialSpec:
    """Sequential gating (the ``sequential:`` key, ``--sequential``): stop a gated run once its verdict is
    known.

    ``alpha``: each gated metric's error level (the chance that its decision differs from the full run's
    gate), in (0, 0.5). ``look_every``: pairs between two looks (the first look comes after at most a
    quarter of the listed pairs). The pairs' order is drawn with ``metrics.seed``. See
    :mod:`evalkit.stats.sequential`.
    """

    alpha: float = defaults.SEQUENTIAL_ALPHA
    look_every: int = defaults.SEQUENTIAL_LOOK_EVERY


# ------------------------------------------------------------------------- gate thresholds, published table


@dataclass(frozen=True)
class Allowance:
    """How much worse than its baseline a metric may get: ``max(absolute, relative * |baseline|)``.

    Attributes
    ----------
    absolute : float or None
        In the metric's unit (dB for PSNR). ``None`` counts as 0.
    relative : float or None
        A fraction of the baseline's magnitude (0.02 = 2 %). ``None`` counts as 0.
    """

    absolute: float | None = None
    relative: float | None = None

    def limit(self, baseline: float) -> float:
        """The allowed worsening for this baseline value."""
        rel = (self.relative or 0.0) * abs(baseline) if math.isfinite(baseline) else 0.0
        return max(self.absolute or 0.0, rel)

    def describe(self) -> str:
        """``abs 0.1``, ``rel 2 %`` or ``max(abs 0.1, rel 2 %)``."""
        parts = []
        if self.absolute is not None:
            parts.append(f"abs {self.absolute:g}")
        if self.relative is not None:
            parts.append(f"rel {self.relative * 100:g} %")
        if len(parts) == 2:
            return f"max({parts[0]}, {parts[1]})"
        return parts[0] if parts else "0"


#: The built-in thresholds: each metric's ``default_allowance`` in the registry (PSNR may drop 0.1 dB,
#: SSIM 0.01, IS 2 %; FID may rise 2 %, KID 0.001). Metrics without one are not gated unless a ``gate:``
#: config names them.
DEFAULT_ALLOWANCES: Mapping[str, Allowance] = MappingProxyType(
    {m.key: Allowance(*m.default_allowance) for m in METRICS if m.default_allowance is not None}
)


@dataclass(frozen=True)
class GateSpec:
    """Which metrics are gated and with which allowance (the ``gate:`` key of a config).

    Attributes
    ----------
    allowances : Mapping[str, Allowance]
        Metric key (a key of :data:`evalkit.metrics.registry.METRICS_BY_KEY`) -> allowance. Metrics not
        listed are not gated.
    source : str
        Where the thresholds come from, for the reports.
    required : frozenset[str]
        Metrics that a config named explicitly: when a run lacks one of them (a ``--metrics reference``
        run has no extended metrics) the gate refuses rather than skipping it with a note, as it does
        for the built-in defaults.
    """

    allowances: Mapping[str, Allowance] = field(default_factory=lambda: DEFAULT_ALLOWANCES)
    source: str = "built-in defaults"
    required: frozenset[str] = frozenset()

    def metrics(self) -> list[str]:
        """The gated metrics in table order."""
        return [m.key for m in METRICS if m.key in self.allowances]


DEFAULT_GATE_SPEC = GateSpec()


@dataclass(frozen=True)
class PublishedValue:
    """A figure of a published table, how many decimals it was printed with, and its text as written.

    ``text`` is what ``results.json`` records under ``config.published`` (a YAML float has lost its
    trailing zeros: ``0.340`` reads as ``"0.34"``; a quoted figure keeps them).
    """

    value: float
    decimals: int
    text: str = ""

    @property
    def half_unit(self) -> float:
        """Half a unit in the last printed decimal: the rounding the printed figure may hide."""
        return 0.5 * 10.0 ** (-self.decimals)


@dataclass(frozen=True)
class PublishedTable:
    """A published accuracy table (the ``published:`` key): model name -> metric -> figure."""

    models: Mapping[str, Mapping[str, PublishedValue]]
    source: str = "published table"

    def texts(self) -> dict[str, dict[str, str]]:
        """The figures as written, ``{model: {metric: text}}`` (the form ``results.json`` records)."""
        return {model: {k: v.text for k, v in figures.items()} for model, figures in self.models.items()}


@dataclass(frozen=True)
class Config:
    """A whole, validated evaluation config."""

    models: tuple[ModelSpec, ...]
    verifier: VerifierSpec
    dataset: DatasetSpec = field(default_factory=DatasetSpec)
    runtime: RuntimeSpec = field(default_factory=RuntimeSpec)
    metrics: MetricSpec = field(default_factory=MetricSpec)
    output: Path | None = None
    source: str = "<config>"
    #: The regression gate's thresholds (``gate:``; the built-in defaults when the config has none).
    gate: GateSpec = DEFAULT_GATE_SPEC
    #: A published table to show beside the measured values and to gate against (``published:``).
    published: PublishedTable | None = None
    #: Sequential gating (``sequential:`` or ``--sequential``); ``None``: every pair is evaluated.
    sequential: SequentialSpec | None = None

    @property
    def reference_model(self) -> str:
        """The model every other model is compared with: ``metrics.reference_model``, else the first."""
        return self.metrics.reference_model or self.models[0].name

    def model(self, name: str) -> ModelSpec:
        """Return the model called ``name``."""
        for spec in self.models:
            if spec.name == name:
                return spec
        raise KeyError(name)


# --------------------------------------------------------------------------------------------- parsing

#: Where reports go when neither the config nor --output says.
DEFAULT_OUTPUT = defaults.OUTPUT

_TOP_KEYS = (
    "dataset", "models", "verifier", "runtime", "metrics", "output", "gate", "published", "sequential"
)  # fmt: skip
_SEQUENTIAL_KEYS = ("alpha", "look_every")
_DATASET_KEYS = ("root", "pairs", "limit", "max_pixels")
_MODEL_KEYS = ("label", "path", "ref_image", "tensors")
_CONVENTION_KEYS = ("color_order", "mean", "scale")
_TENSOR_KEYS = ("input_seg_map", "ref_image", "ref_seg_map", "output")
_VERIFIER_KEYS = ("path", "input", "probabilities_output", "features_output", "feature_size")
_RUNTIME_KEYS = ("device", "inference_precision", "streams", "requests", "reader_threads", "one_hot")
_METRIC_KEYS = ("ssim_constants", "fid_method", "profile", "reference_model", "bootstrap", "seed")
_PRECISIONS = ("f32", "f16", "bf16")


_SHORT_REPR = reprlib.Repr()
_SHORT_REPR.maxlevel = 3
_SHORT_REPR.maxstring = _SHORT_REPR.maxother = defaults.ERROR_VALUE_CHARS


def _shown(value: object) -> str:
    """``repr(value)`` cut to a bound: an error message stays one short line whatever the file holds.

    :mod:`reprlib` stops at a few items per level, so a huge (alias-shared) value is never rendered whole.
    """
    limit = defaults.ERROR_VALUE_CHARS
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


class _Reader:
    """Reads one YAML mapping with errors that name the file and the dotted key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> InputError:
        return InputError(f"{self.source}: key '{key}': {problem}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            got = type(value).__name__
            if not key:
                raise InputError(f"{self.source}: expected a mapping at the top level, got {got}")
            raise self.fail(key, f"expected a mapping, got {got}")
        for k in value:
            if not isinstance(k, str) or k not in allowed:
                close = difflib.get_close_matches(str(k), allowed, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(allowed)}"
                where = f"{key}.{k}" if key else str(k)
                raise self.fail(where, f"unknown key{hint}")
        return value

    def unknown(self, key: str, name: object, valid: Sequence[str], what: str) -> InputError:
        """``unknown WHAT; did you mean 'X'?`` for a name that is not one of ``valid``."""
        close = difflib.get_close_matches(str(name), list(valid), n=1)
        # Spelt-out names ('relative' for 'rel') are too long for difflib's ratio: match on the prefix.
        close = close or [v for v in valid if str(name).startswith(v) or v.startswith(str(name))]
        hint = f"; did you mean '{close[0]}'?" if close else f"; valid: {', '.join(valid)}"
        return self.fail(key, f"unknown {what}{hint}")

    def magnitude(self, value: Any, key: str) -> float:
        """A finite number >= 0 (an allowance)."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(key, f"expected a number >= 0, got {_shown(value)}")
        if value < 0:
            raise self.fail(key, f"expected a number >= 0, got {_shown(value)} (an allowance is a magnitude)")
        return float(value)

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {_shown(value)}")
        return value

    def number(self, value: Any, key: str, *, nonzero: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {_shown(value)}")
        if not math.isfinite(value):  # YAML reads .nan and .inf as floats
            raise self.fail(key, f"expected a finite number, got {_shown(value)}")
        if nonzero and value == 0:
            raise self.fail(key, "must not be 0")
        return float(value)

    def choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, f"expected one of {', '.join(choices)}, got {_shown(value)}")
        return value

    def path(self, value: Any, key: str) -> Path | None:
        if value is None:
            return None
        return Path(self.string(value, key)).expanduser()

    def non_negative_int(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(key, f"expected an integer >= 0, got {_shown(value)}")
        return value

    def positive_int(self, value: Any, key: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f"expected a positive integer or null, got {_shown(value)}")
        return value


def _convention(r: _Reader, raw: Any, key: str, default: InputConvention) -> InputConvention:
    m = r.mapping(raw, key, _CONVENTION_KEYS)
    return InputConvention(
        color_order=r.choice(m.get("color_order", default.color_order), f"{key}.color_order", ("RGB", "BGR")),
        mean=r.number(m.get("mean", default.mean), f"{key}.mean"),
        scale=r.number(m.get("scale", default.scale), f"{key}.scale", nonzero=True),
    )


_ALLOWANCE_KEYS = ("abs", "rel")


def parse_gate_config(raw: Any, source: str = "<config>") -> GateSpec:
    """Validate a ``gate:`` mapping into a :class:`GateSpec`.

    The mapping overrides the built-in defaults metric by metric; ``null`` (or ``false``) takes a metric out
    of the gate::

        gate: {psnr: {abs: 0.1}, is: {rel: 0.02}, fid: {rel: 0.02}, kid: null, ssim_wang: {abs: 0.005}}

    Parameters
    ----------
    raw
        The value of the ``gate`` key as read from YAML; ``None`` gives the defaults.
    source
        File name for the error messages.

    Raises
    ------
    InputError
        One line naming ``source`` and the key: an unknown metric (with the closest valid name), an unknown
        allowance key, a negative or non-numeric allowance, a metric with neither ``abs`` nor ``rel``.
    """
    if raw is None:
        return GateSpec(source=f"{source} (defaults)")
    r = _Reader(source)
    if not isinstance(raw, Mapping):
        raise r.fail("gate", f"expected a mapping of metric -> {{abs, rel}}, got {type(raw).__name__}")
    allowances = dict(DEFAULT_ALLOWANCES)
    required = set()
    for metric, value in raw.items():
        key = f"gate.{metric}"
        if not isinstance(metric, str) or metric not in METRICS_BY_KEY:
            raise r.unknown(key, metric, tuple(METRICS_BY_KEY), "metric")
        if value is None or value is False:
            allowances.pop(metric, None)
            continue
        if not isinstance(value, Mapping):
            raise r.fail(key, f"expected a mapping with 'abs' and/or 'rel', or null; got {_shown(value)}")
        for k in value:
            if k not in _ALLOWANCE_KEYS:
                raise r.unknown(f"{key}.{k}", k, _ALLOWANCE_KEYS, "allowance key")
        if not value:
            raise r.fail(key, "give 'abs' and/or 'rel' (or null to leave the metric out of the gate)")
        allowances[metric] = Allowance(
            absolute=None if value.get("abs") is None else r.magnitude(value["abs"], f"{key}.abs"),
            relative=None if value.get("rel") is None else r.magnitude(value["rel"], f"{key}.rel"),
        )
        required.add(metric)
    if not allowances:
        raise r.fail("gate", "every metric is switched off: the gate would check nothing")
    ordered = {m.key: allowances[m.key] for m in METRICS if m.key in allowances}
    return GateSpec(allowances=MappingProxyType(ordered), source=source, required=frozenset(required))


def _printed_decimals(value: int | float | str) -> int:
    # A YAML float has lost its trailing zeros (0.340 -> 0.34); its shortest repr is what was printed
    # unless the table padded with zeros. Quote the figure ("0.340") to keep them.
    text = value.strip() if isinstance(value, str) else repr(value)
    exponent = Decimal(text).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def parse_published(raw: Any, source: str = "<config>") -> PublishedTable:
    """Validate a ``published:`` mapping: ``{model: {metric: figure}}``.

    Figures are numbers or numeric strings; the decimals they are written with set the rounding allowance
    of :func:`evalkit.gate.compare_to_published` (quote a figure like ``"0.340"`` to keep a trailing zero).

    Raises
    ------
    InputError
        One line naming ``source`` and the key (unknown metric with the closest valid name, non-numbers).
    """
    r = _Reader(source)
    if not isinstance(raw, Mapping) or not raw:
        raise r.fail("published", "expected a mapping of model name -> {metric: published figure}")
    models: dict[str, Mapping[str, PublishedValue]] = {}
    for model, figures in raw.items():
        key = f"published.{model}"
        if not isinstance(model, str) or not model:
            raise r.fail(key, "model names are non-empty strings")
        if not isinstance(figures, Mapping) or not figures:
            raise r.fail(key, f"expected a mapping of metric -> figure, got {_shown(figures)}")
        values: dict[str, PublishedValue] = {}
        for metric, figure in figures.items():
            mkey = f"{key}.{metric}"
            if not isinstance(metric, str) or metric not in METRICS_BY_KEY:
                raise r.unknown(mkey, metric, tuple(METRICS_BY_KEY), "metric")
            if isinstance(figure, bool) or not isinstance(figure, int | float | str):
                raise r.fail(mkey, f"expected a number, got {_shown(figure)}")
            try:
                number = float(figure)
                decimals = _printed_decimals(figure)
            except (ValueError, InvalidOperation):
                raise r.fail(mkey, f"expected a number, got {_shown(figure)}") from None
            if not math.isfinite(number):
                raise r.fail(mkey, f"expected a finite number, got {_shown(figure)}")
            values[metric] = PublishedValue(number, decimals, str(figure))
        models[model] = MappingProxyType(values)
    return PublishedTable(models=MappingProxyType(models), source=source)


def check_alpha(value: Any, where: str) -> float:
    """A sequential gate's error level: a number in (0, 0.5); ``where`` names the key or flag in the error."""
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 < value < 0.5:
        raise InputError(f"{where}: expected an error level in (0, 0.5), e.g. 0.05, got {_shown(value)}")
    return float(value)


def check_look_every(value: Any, where: str) -> int:
    """A sequential gate's look schedule: a positive number of pairs between looks."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(
            f"{where}: unknown look schedule {_shown(value)}; expected a positive integer (pairs between "
            f"two looks, default {defaults.SEQUENTIAL_LOOK_EVERY})"
        )
    return value


def parse_sequential(raw: Any, source: str = "<config>") -> SequentialSpec:
    """Validate a ``sequential:`` mapping (``{alpha: 0.05, look_every: 50}``; ``{}``: the defaults).

    Raises
    ------
    InputError
        One line naming ``source`` and the key: an unknown key, an error level outside (0, 0.5), a look
        schedule that is not a positive integer.
    """
    r = _Reader(source)
    m = r.mapping(raw, "sequential", _SEQUENTIAL_KEYS)
    return SequentialSpec(
        alpha=check_alpha(m.get("alpha", defaults.SEQUENTIAL_ALPHA), f"{source}: key 'sequential.alpha'"),
        look_every=check_look_every(
            m.get("look_every", defaults.SEQUENTIAL_LOOK_EVERY), f"{source}: key 'sequential.look_every'"
        ),
    )


def parse_config(raw: Any, source: str = "<config>") -> Config:
    """Validate a config mapping (as read from YAML) into a :class:`Config`.

    Raises
    ------
    InputError
        One line naming ``source`` and the offending key, e.g. an unknown key with the closest valid one.
    """
    r = _Reader(source)
    top = r.mapping(raw, "", _TOP_KEYS)
    # Read first: a bad threshold or figure fails when the config is read, not after the inference.
    gate, published = _gate_keys(top, source)
    # null turns it off, as under `gate:`; {} takes the defaults
    sequential = parse_sequential(top["sequential"], source) if top.get("sequential") is not None else None

    ds = r.mapping(top.get("dataset"), "dataset", _DATASET_KEYS)
    dataset = DatasetSpec(
        root=r.path(ds.get("root"), "dataset.root"),
        pairs=r.path(ds.get("pairs"), "dataset.pairs"),
        limit=r.positive_int(ds.get("limit"), "dataset.limit"),
        max_pixels=r.positive_int(ds.get("max_pixels"), "dataset.max_pixels") or defaults.MAX_PIXELS,
    )

    raw_models = top.get("models")
    if not isinstance(raw_models, Mapping) or not raw_models:
        raise r.fail("models", "expected a mapping of model name -> settings with at least one model")
    models = []
    for name, raw_model in raw_models.items():
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise r.fail(f"models.{name}", "model names use letters, digits, '-' and '_' only")
        key = f"models.{name}"
        m = r.mapping(raw_model, key, _MODEL_KEYS)
        t = r.mapping(m.get("tensors"), f"{key}.tensors", _TENSOR_KEYS)
        tensors = TensorNames(**{k: r.string(v, f"{key}.tensors.{k}") for k, v in t.items()})
        models.append(
            ModelSpec(
                name=name,
                label=r.string(m.get("label", name), f"{key}.label"),
                path=r.path(m.get("path"), f"{key}.path"),
                ref_image=_convention(r, m.get("ref_image"), f"{key}.ref_image", InputConvention()),
                tensors=tensors,
            )
        )

    v = r.mapping(top.get("verifier"), "verifier", _VERIFIER_KEYS)
    verifier = VerifierSpec(
        path=r.path(v.get("path"), "verifier.path"),
        input=_convention(r, v.get("input"), "verifier.input", InputConvention()),
        probabilities_output=r.string(
            v.get("probabilities_output", defaults.VERIFIER_PROBABILITIES), "verifier.probabilities_output"
        ),
        features_output=r.string(
            v.get("features_output", defaults.VERIFIER_FEATURES), "verifier.features_output"
        ),
        feature_size=r.positive_int(
            v.get("feature_size", defaults.VERIFIER_FEATURE_DIM), "verifier.feature_size"
        )
        or defaults.VERIFIER_FEATURE_DIM,
    )

    rt = r.mapping(top.get("runtime"), "runtime", _RUNTIME_KEYS)
    runtime = RuntimeSpec(
        device=r.string(rt.get("device", defaults.DEVICE), "runtime.device"),
        inference_precision=r.choice(
            rt.get("inference_precision", defaults.INFERENCE_PRECISION),
            "runtime.inference_precision",
            _PRECISIONS,
        ),
        streams=r.positive_int(rt.get("streams"), "runtime.streams"),
        requests=r.positive_int(rt.get("requests"), "runtime.requests"),
        reader_threads=r.positive_int(
            rt.get("reader_threads", defaults.READER_THREADS), "runtime.reader_threads"
        )
        or defaults.READER_THREADS,
        one_hot=r.choice(rt.get("one_hot", defaults.ONE_HOT), "runtime.one_hot", ("graph", "host")),
    )

    mt = r.mapping(top.get("metrics"), "metrics", _METRIC_KEYS)
    metrics = MetricSpec(
        ssim_constants=r.choice(
            mt.get("ssim_constants", defaults.SSIM_CONSTANTS),
            "metrics.ssim_constants",
            ("reference", "reference-2020"),
        ),
        fid_method=r.choice(
            mt.get("fid_method", defaults.FID_METHOD), "metrics.fid_method", ("auto", "eigh", "sqrtm")
        ),
        profile=r.choice(mt.get("profile", defaults.METRIC_PROFILE), "metrics.profile", ("reference", "all")),
        reference_model=None
        if mt.get("reference_model") is None
        else r.choice(mt["reference_model"], "metrics.reference_model", tuple(m.name for m in models)),
        bootstrap=r.non_negative_int(mt.get("bootstrap", defaults.BOOTSTRAP), "metrics.bootstrap"),
        seed=r.non_negative_int(mt.get("seed", defaults.SEED), "metrics.seed"),
    )
    return Config(
        models=tuple(models),
        verifier=verifier,
        dataset=dataset,
        runtime=runtime,
        metrics=metrics,
        output=r.path(top.get("output") or DEFAULT_OUTPUT, "output"),
        source=source,
        gate=gate,
        published=published,
        sequential=sequential,
    )


def _gate_keys(top: Mapping[str, Any], source: str) -> tuple[GateSpec, PublishedTable | None]:
    """The ``gate:`` and ``published:`` keys of a top-level mapping whose keys are already checked."""
    gate = parse_gate_config(top.get("gate"), source)
    published = None if top.get("published") is None else parse_published(top["published"], source)
    return gate, published


def bundled_config(name: str) -> Path:
    """Path of a config shipped with evalkit (``configs/NAME`` of the source tree, e.g. ``demo.yaml``).

    A wheel installs ``configs/`` as the package ``evalkit.configs``; a source checkout (editable
    install, or tests run from the repository) has it beside the package.
    """
    try:
        from importlib import resources

        candidate = Path(str(resources.files("evalkit.configs").joinpath(name)))
    except ModuleNotFoundError:
        candidate = Path(__file__).resolve().parent.parent / "configs" / name
    if not candidate.is_file():
        raise InputError(f"{candidate}: bundled config {name} is missing from this installation")
    return candidate


class _YamlTooLarge(Exception):
    """A YAML document past :data:`evalkit.defaults`'s YAML bounds (the message says which)."""


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a document whose aliases expand past a bound or that nests too deep.

    An alias is composed as a reference to its anchor's node, but everything that walks the value later (a
    repr, a JSON dump of the config) expands it: nine levels of ten aliases are a billion nodes. The
    composer is recursive, so deep nesting would end in a RecursionError instead of a one-line error.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0
        self._nodes = 0  # nodes of the document with every alias expanded
        self._sizes: dict[int, int] = {}  # id(node) -> its expanded node count, for the aliases to it

    def _refuse(self, problem: str) -> _YamlTooLarge:
        mark = self.peek_event().start_mark
        return _YamlTooLarge(f"{mark.line + 1}: {problem}")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > defaults.YAML_MAX_ALIASES:
                raise self._refuse(f"more than {defaults.YAML_MAX_ALIASES} YAML aliases")
            node = super().compose_node(parent, index)
            self._nodes += self._sizes.get(id(node), 1)
        else:
            self._depth += 1
            if self._depth > defaults.YAML_MAX_DEPTH:
                raise self._refuse(f"YAML nesting deeper than {defaults.YAML_MAX_DEPTH} levels")
            before = self._nodes
            try:
                node = super().compose_node(parent, index)
            finally:
                self._depth -= 1
            self._nodes += 1
            self._sizes[id(node)] = self._nodes - before
        if self._nodes > defaults.YAML_MAX_NODES:
            raise self._refuse(f"YAML aliases expand past {defaults.YAML_MAX_NODES} nodes")
        return node


def _read_yaml(path: Path, what: str) -> Any:
    """The YAML document of ``path``; one-line errors naming the file (and the line of a syntax error)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: {what} file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read {what}: {exc}") from None
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except _YamlTooLarge as exc:
        raise InputError(f"{path}:{exc} (refused: a {what} is small and shallow)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}{where}: invalid YAML: {problem}") from None
    finally:
        loader.dispose()


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    return parse_config(_read_yaml(path, "config"), source=str(path))


def load_gate_file(path: str | Path) -> tuple[GateSpec, PublishedTable | None]:
    """Read the ``gate:`` and ``published:`` keys of a YAML file (``evalkit gate --config``).

    The file is a run config such as cocosnet.yaml, or one holding only those keys: its top-level keys
    are checked (a misspelt ``gaet:`` would otherwise silently give the defaults), the run settings are
    left to :func:`load_config`.

    Returns
    -------
    tuple of GateSpec and PublishedTable or None
        The thresholds (the defaults when there is no ``gate:`` key) and the published table, if any.

    Raises
    ------
    InputError
        Unreadable file, invalid YAML, an unknown top-level key, or a problem in either key (one line
        naming file and key).
    """
    path = Path(path)
    top = _Reader(str(path)).mapping(_read_yaml(path, "gate config"), "", _TOP_KEYS)
    return _gate_keys(top, str(path))


# ------------------------------------------------------------------------------------------- overrides


@dataclass(frozen=True)
class Overrides:
    """Command-line / API overrides; ``None`` means "keep the config's value"."""

    data_root: Path | None = None
    pairs: Path | None = None
    models: Mapping[str, Path] = field(default_factory=dict)
    verifier: Path | None = None
    limit: int | None = None
    output: Path | None = None
    device: str | None = None
    metrics: MetricProfile | None = None
    bootstrap: int | None = None
    #: ``--sequential``: sequential gating with the config's ``sequential:`` settings, else the defaults.
    sequential: bool = False
    alpha: float | None = None  #: ``--alpha`` (needs sequential gating)
    look_every: int | None = None  #: ``--look-every`` (needs sequential gating)


def apply_overrides(config: Config, overrides: Overrides) -> Config:
    """Return ``config`` with the overrides applied (the only place that does so)."""
    names = [m.name for m in config.models]
    for name in overrides.models:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise InputError(
                f"--model {name}=...: '{name}' is not a model of {config.source} "
                f"(models: {', '.join(names)}){hint}"
            )
    if overrides.limit is not None and overrides.limit < 1:
        raise InputError(f"--limit: expected a positive integer, got {overrides.limit}")
    models = tuple(
        replace(m, path=Path(overrides.models[m.name])) if m.name in overrides.models else m
        for m in config.models
    )
    ds = config.dataset
    dataset = DatasetSpec(
        root=overrides.data_root if overrides.data_root is not None else ds.root,
        pairs=overrides.pairs if overrides.pairs is not None else ds.pairs,
        limit=overrides.limit if overrides.limit is not None else ds.limit,
        max_pixels=ds.max_pixels,
    )
    verifier = config.verifier
    if overrides.verifier is not None:
        verifier = replace(verifier, path=Path(overrides.verifier))
    runtime = config.runtime
    if overrides.device is not None:
        runtime = replace(runtime, device=overrides.device)
    metrics = config.metrics
    if overrides.metrics is not None:
        metrics = replace(metrics, profile=overrides.metrics)
    if overrides.bootstrap is not None:
        if overrides.bootstrap < 0:
            raise InputError(f"--bootstrap: expected an integer >= 0, got {overrides.bootstrap}")
        metrics = replace(metrics, bootstrap=overrides.bootstrap)
    sequential = config.sequential
    if overrides.sequential and sequential is None:
        sequential = SequentialSpec()
    for flag, value in (("--alpha", overrides.alpha), ("--look-every", overrides.look_every)):
        if value is not None and sequential is None:
            raise InputError(f"{flag}: only with --sequential (or a 'sequential:' key in the config)")
    if sequential is not None and overrides.alpha is not None:
        sequential = replace(sequential, alpha=check_alpha(overrides.alpha, "--alpha"))
    if sequential is not None and overrides.look_every is not None:
        sequential = replace(sequential, look_every=check_look_every(overrides.look_every, "--look-every"))
    return replace(
        config,
        sequential=sequential,
        models=models,
        dataset=dataset,
        verifier=verifier,
        runtime=runtime,
        metrics=metrics,
        output=overrides.output if overrides.output is not None else config.output,
    )


def require_complete(config: Config) -> None:
    """Check that every path a run needs is set, naming the key or flag that sets it."""
    missing = []
    if config.dataset.root is None:
        missing.append("dataset.root (--data-root)")
    if config.dataset.pairs is None:
        missing.append("dataset.pairs (--pairs)")
    for m in config.models:
        if m.path is None:
            missing.append(f"models.{m.name}.path (--model {m.name}=PATH)")
    if config.verifier.path is None:
        missing.append("verifier.path (--verifier)")
    if missing:
        raise InputError(f"{config.source}: not set: {'; '.join(missing)}")


def config_to_dict(config: Config) -> dict[str, Any]:
    """The resolved config as plain JSON-able data (the form written to results.json)."""

    def conv(c: InputConvention) -> dict[str, Any]:
        return {"color_order": c.color_order, "mean": c.mean, "scale": c.scale}

    def p(x: Path | None) -> str | None:
        return None if x is None else str(x)

    return {
        "source": config.source,
        "dataset": {
            "root": p(config.dataset.root),
            "pairs": p(config.dataset.pairs),
            "limit": config.dataset.limit,
            "max_pixels": config.dataset.max_pixels,
        },
        "models": {
            m.name: {
                "label": m.label,
                "path": p(m.path),
                "ref_image": conv(m.ref_image),
                "tensors": vars(m.tensors).copy(),
            }
            for m in config.models
        },
        "verifier": {
            "path": p(config.verifier.path),
            "input": conv(config.verifier.input),
            "probabilities_output": config.verifier.probabilities_output,
            "features_output": config.verifier.features_output,
            "feature_size": config.verifier.feature_size,
        },
        "runtime": {
            "device": config.runtime.device,
            "inference_precision": config.runtime.inference_precision,
            "streams": config.runtime.streams,
            "requests": config.runtime.requests,
            "reader_threads": config.runtime.reader_threads,
            "one_hot": config.runtime.one_hot,
        },
        "metrics": {
            "ssim_constants": config.metrics.ssim_constants,
            "fid_method": config.metrics.fid_method,
            "profile": config.metrics.profile,
            "reference_model": config.reference_model,
            "bootstrap": config.metrics.bootstrap,
            "seed": config.metrics.seed,
        },
        "output": p(config.output),
        **({"published": config.published.texts()} if config.published is not None else {}),
        **(
            {"sequential": vars(config.sequential).copy()} if config.sequential is not None else {}
        ),
    }


def config_from_dict(data: Mapping[str, Any], source: str = "<results>") -> Config:
    """The :class:`Config` of a run read back from its JSON form (:func:`config_to_dict`'s output).

    Raises
    ------
    InputError
        One line naming ``source`` and the key, as :func:`parse_config`.
    """
    if not isinstance(data, Mapping):
        raise InputError(f"{source}: expected a mapping, got {type(data).__name__}")
    raw = {k: v for k, v in data.items() if k != "source"}
    try:
        return parse_config(raw, source=str(data.get("source") or source))
    except InputError:
        # the bad key is in this copy (e.g. a results.json edited by hand), not in the YAML it came from:
        # read it again so that the error names ``source``
        parse_config(raw, source=source)
        raise
