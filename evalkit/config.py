"""YAML config -> typed, validated records; command-line overrides applied in one place.

A config names the data set, the translation models (each with its own input convention), the verifier,
the runtime settings and the metric settings. Relative paths are taken relative to the current directory,
as on the command line. Every problem is reported as one line naming the file and the key.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from evalkit import defaults
from evalkit.errors import InputError

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


@dataclass(frozen=True)
class DatasetSpec:
    """Where the ADE20k tree and the pairs file are; ``limit`` keeps the first N pairs."""

    root: Path | None = None
    pairs: Path | None = None
    limit: int | None = None


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
    reader_threads: int = 2
    one_hot: OneHotPlacement = "graph"


@dataclass(frozen=True)
class MetricSpec:
    """Metric variants. The reference table's defaults reproduce the OMZ Accuracy Checker 2023.3.

    ``profile="all"`` adds the extended table (Wang SSIM, RGB PSNR, IS over 10 splits, KID) and the paired
    comparison of every model with ``reference_model`` (default: the first model); ``"reference"`` keeps
    the four reference metrics only. ``bootstrap`` resamples (0 = off) and ``seed`` drive the intervals.
    """

    ssim_constants: SsimConstants = "reference"
    fid_method: FidMethod = "auto"
    profile: MetricProfile = "all"
    reference_model: str | None = None
    bootstrap: int = 200
    seed: int = 0


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
    #: A published table to show beside the measured values (``{model: {metric: figure}}``), figures
    #: kept as written so that their printed decimals survive.
    published: Mapping[str, Mapping[str, str]] | None = None

    def model(self, name: str) -> ModelSpec:
        """Return the model called ``name``."""
        for spec in self.models:
            if spec.name == name:
                return spec
        raise KeyError(name)


# --------------------------------------------------------------------------------------------- parsing

#: Where reports go when neither the config nor --output says.
DEFAULT_OUTPUT = "reports/evalkit"

_TOP_KEYS = ("dataset", "models", "verifier", "runtime", "metrics", "output", "gate", "published")
_DATASET_KEYS = ("root", "pairs", "limit")
_MODEL_KEYS = ("label", "path", "ref_image", "tensors")
_CONVENTION_KEYS = ("color_order", "mean", "scale")
_TENSOR_KEYS = ("input_seg_map", "ref_image", "ref_seg_map", "output")
_VERIFIER_KEYS = ("path", "input", "probabilities_output", "features_output")
_RUNTIME_KEYS = ("device", "inference_precision", "streams", "requests", "reader_threads", "one_hot")
_METRIC_KEYS = ("ssim_constants", "fid_method", "profile", "reference_model", "bootstrap", "seed")
_PRECISIONS = ("f32", "f16", "bf16")


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
            raise self.fail(key, f"expected a mapping, got {type(value).__name__}")
        for k in value:
            if not isinstance(k, str) or k not in allowed:
                close = difflib.get_close_matches(str(k), allowed, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(allowed)}"
                where = f"{key}.{k}" if key else str(k)
                raise self.fail(where, f"unknown key{hint}")
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def number(self, value: Any, key: str, *, nonzero: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"expected a number, got {value!r}")
        if nonzero and value == 0:
            raise self.fail(key, "must not be 0")
        return float(value)

    def choice(self, value: Any, key: str, choices: tuple[str, ...]) -> str:
        if value not in choices:
            raise self.fail(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def path(self, value: Any, key: str) -> Path | None:
        if value is None:
            return None
        return Path(self.string(value, key)).expanduser()

    def non_negative_int(self, value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise self.fail(key, f"expected an integer >= 0, got {value!r}")
        return value

    def positive_int(self, value: Any, key: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(key, f"expected a positive integer or null, got {value!r}")
        return value


def _convention(r: _Reader, raw: Any, key: str, default: InputConvention) -> InputConvention:
    m = r.mapping(raw, key, _CONVENTION_KEYS)
    return InputConvention(
        color_order=r.choice(m.get("color_order", default.color_order), f"{key}.color_order", ("RGB", "BGR")),
        mean=r.number(m.get("mean", default.mean), f"{key}.mean"),
        scale=r.number(m.get("scale", default.scale), f"{key}.scale", nonzero=True),
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
    # 'gate:' and 'published:' belong to evalkit.gate (`evalkit run --gate`, `evalkit gate --config`);
    # checked here so that a bad threshold or figure fails when the config is read.
    from evalkit.gate import parse_gate_config, parse_published

    parse_gate_config(top.get("gate"), source)
    if top.get("published") is not None:
        parse_published(top["published"], source)

    ds = r.mapping(top.get("dataset"), "dataset", _DATASET_KEYS)
    dataset = DatasetSpec(
        root=r.path(ds.get("root"), "dataset.root"),
        pairs=r.path(ds.get("pairs"), "dataset.pairs"),
        limit=r.positive_int(ds.get("limit"), "dataset.limit"),
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
        reader_threads=r.positive_int(rt.get("reader_threads", 2), "runtime.reader_threads") or 2,
        one_hot=r.choice(rt.get("one_hot", "graph"), "runtime.one_hot", ("graph", "host")),
    )

    mt = r.mapping(top.get("metrics"), "metrics", _METRIC_KEYS)
    metrics = MetricSpec(
        ssim_constants=r.choice(
            mt.get("ssim_constants", "reference"), "metrics.ssim_constants", ("reference", "reference-2020")
        ),
        fid_method=r.choice(mt.get("fid_method", "auto"), "metrics.fid_method", ("auto", "eigh", "sqrtm")),
        profile=r.choice(mt.get("profile", "all"), "metrics.profile", ("reference", "all")),
        reference_model=None
        if mt.get("reference_model") is None
        else r.choice(mt["reference_model"], "metrics.reference_model", tuple(m.name for m in models)),
        bootstrap=r.non_negative_int(mt.get("bootstrap", 200), "metrics.bootstrap"),
        seed=r.non_negative_int(mt.get("seed", 0), "metrics.seed"),
    )
    return Config(
        models=tuple(models),
        verifier=verifier,
        dataset=dataset,
        runtime=runtime,
        metrics=metrics,
        output=r.path(top.get("output") or DEFAULT_OUTPUT, "output"),
        source=source,
        published=None
        if top.get("published") is None
        else {str(m): {str(k): str(v) for k, v in figs.items()} for m, figs in top["published"].items()},
    )


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


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read config: {exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{path}{where}: invalid YAML: {problem}") from None
    return parse_config(raw, source=str(path))


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
    return replace(
        config,
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
            "reference_model": config.metrics.reference_model or config.models[0].name,
            "bootstrap": config.metrics.bootstrap,
            "seed": config.metrics.seed,
        },
        "output": p(config.output),
        **({"published": {m: dict(f) for m, f in config.published.items()}} if config.published else {}),
    }
