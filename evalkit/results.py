"""The typed record of a run and its JSON form: the contract between evaluation, reports and the gate.

``results.json`` is :meth:`RunResult.to_dict` written as strict JSON; :func:`load_results` reads it back with
:meth:`RunResult.from_dict`. Its layout (``schema_version`` :data:`SCHEMA_VERSION`):

- ``schema_version``, ``evalkit_version``;
- ``config``: the resolved config (:func:`evalkit.config.config_to_dict`);
- ``dataset``: ``root``, ``pairs``, ``n_pairs`` (evaluated), ``pairs_sha256``, ``n_listed``;
- ``skipped``: ``[{pair_id, line, reason}]`` (``--on-error skip``);
- ``models.NAME``: ``label``, ``path``, ``sha256``, ``metrics`` (the keys of
  :func:`evalkit.metrics.registry.result_keys`: ``psnr``, ``ssim``, ``is``, ``fid``, ``psnr_std``,
  ``ssim_std``, ``psnr_identical``, then the extended ones), ``n`` and ``samples`` (``[{pair_id, psnr,
  ssim, ...}]``, the per-image metrics);
- ``verifier``: ``path``, ``sha256``; ``environment`` (library versions, CPU, date); ``timings``;
- ``comparison`` (``metrics.profile: all`` with two models or more): ``reference_model``, ``bootstrap``,
  ``seed``, ``confidence`` and ``models.NAME.METRIC`` = the paired difference's fields and its sentence;
- ``gate`` (``run --gate``): the gate's verdicts;
- ``sequential`` (``run --gate --sequential`` only): how the run stopped (pairs evaluated / listed, the
  planned looks, the method and error level) and each gated metric's decision: its verdict, the look that
  made it, the interval and the allowance (:class:`SequentialRun`). Absent from ordinary runs.

A value that is undefined (e.g. a PSNR mean when every image is identical to its ground truth) is written as
``null``, never as NaN or Infinity; a per-image PSNR is ``null`` exactly when it is infinite.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from evalkit.config import Allowance, Config, GateSpec, config_from_dict, config_to_dict
from evalkit.errors import InputError
from evalkit.fileio import finite_or_none, write_text_atomic
from evalkit.metrics.registry import METRICS_BY_KEY, metrics_of, per_image_metrics, result_keys
from evalkit.stats.comparison import PairedDelta, SetDelta

__all__ = [
    "SCHEMA_VERSION",
    "Comparison",
    "ComparisonEntry",
    "DatasetInfo",
    "GateReport",
    "GateRow",
    "ModelMetrics",
    "ModelResult",
    "RunResult",
    "SampleScores",
    "SequentialDecision",
    "SequentialRun",
    "SkippedPair",
    "VerifierInfo",
    "load_results",
    "save_results",
    "write_text_atomic",
]

#: Version of the layout of ``results.json``. Bump it when a key changes name, place or meaning; files of
#: another version are refused by :func:`load_results` with a clear message.
SCHEMA_VERSION = 1

#: Python attribute name -> results key, for metrics and their statistics (``inception_score`` -> ``is``).
_ATTRIBUTES: Mapping[str, str] = {m.identifier: m.key for m in METRICS_BY_KEY.values()}


def _lookup(values: Mapping[str, Any], name: str, owner: str) -> Any:
    key = _ATTRIBUTES.get(name, name)
    try:
        return values[key]
    except KeyError:
        raise AttributeError(f"{owner} has no metric {name!r} (has: {', '.join(values)})") from None


@dataclass(frozen=True)
class SampleScores:
    """Per-pair scores of one model: per-image metric key -> value, as the registry declares them.

    PSNRs are ``inf`` when the output equals the ground truth. A ``--metrics reference`` run has the
    reference metrics only. Values read as attributes too (``scores.psnr``, ``scores.ssim_wang``).
    """

    pair_id: str
    values: Mapping[str, float]

    def __getattr__(self, name: str) -> float:
        if name.startswith("__"):
            raise AttributeError(name)
        return _lookup(self.values, name, f"sample {self.pair_id}")

    def to_dict(self) -> dict[str, Any]:
        return {"pair_id": self.pair_id, **{k: finite_or_none(v) for k, v in self.values.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], extended: bool = True) -> SampleScores:
        """Read one sample; every per-image metric of the profile (``extended`` or not) must be there."""
        d = _mapping(d, "sample")
        values = {}
        for m in per_image_metrics(extended=True):
            if m.key not in d and m in per_image_metrics(extended):
                raise ValueError(f"sample {d.get('pair_id', '?')!r} has no {m.key!r}")
            if m.key in d:
                # null is an infinite value for a finite-mean metric (PSNR of an identical image)
                values[m.key] = _float(
                    d[m.key], none=math.inf if m.finite_mean else math.nan, key=f"samples[].{m.key}"
                )
        return cls(pair_id=d["pair_id"], values=values)


@dataclass(frozen=True)
class ModelMetrics:
    """One model's summary metrics: results key -> value (NaN when undefined), in results.json order.

    The keys are :func:`evalkit.metrics.registry.result_keys`: every metric of the run's profile and the
    statistics that go with them (``psnr_std``, ``psnr_identical``, ``kid_std``, ...). ``psnr`` and
    ``psnr_std`` are over the finite per-image values; ``psnr_identical`` counts the images identical to
    their ground truth. Values read as attributes too (``metrics.fid``, ``metrics.inception_score``).
    """

    values: Mapping[str, float]

    def __getattr__(self, name: str) -> float:
        if name.startswith("__"):
            raise AttributeError(name)
        return _lookup(self.values, name, "metrics")

    def get(self, key: str) -> float | None:
        """The value of results key ``key``, ``None`` when the run did not compute it."""
        return self.values.get(key)

    @property
    def has_extended(self) -> bool:
        """Whether the extended metrics were computed (``metrics.profile: all``)."""
        return all(m.key in self.values for m in metrics_of("extended"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in result_keys(self.has_extended):
            value = self.values[key]
            out[key] = int(value) if _is_count(key) else finite_or_none(value)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelMetrics:
        d = _mapping(d, "metrics")
        extended = all(m.key in d for m in metrics_of("extended"))
        values: dict[str, float] = {}
        for key in result_keys(extended):
            values[key] = int(d[key]) if _is_count(key) else _float(d[key], key=f"metrics.{key}")
        return cls(values=values)


def _is_count(key: str) -> bool:
    return any(m.inf_count_key == key for m in METRICS_BY_KEY.values())


@dataclass(frozen=True)
class ModelResult:
    """Everything measured for one translation model."""

    name: str
    label: str
    path: str
    sha256: str
    metrics: ModelMetrics
    n: int
    samples: tuple[SampleScores, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "path": self.path,
            "sha256": self.sha256,
            "metrics": self.metrics.to_dict(),
            "n": self.n,
            "samples": [s.to_dict() for s in self.samples],
        }

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> ModelResult:
        d = _mapping(d, f"models.{name}")
        metrics = ModelMetrics.from_dict(d["metrics"])
        listed = _sequence(d.get("samples", []), f"models.{name}.samples")
        samples = tuple(SampleScores.from_dict(s, metrics.has_extended) for s in listed)
        n = int(d["n"])
        # samples may be left out (a stripped file still gates), but not disagree with n
        if samples and len(samples) != n:
            raise ValueError(f"models.{name}: {len(samples)} samples but n = {n}")
        return cls(
            name=name,
            label=d["label"],
            path=d["path"],
            sha256=d["sha256"],
            metrics=metrics,
            n=n,
            samples=samples,
        )


@dataclass(frozen=True)
class DatasetInfo:
    """The data a run evaluated: ``n_pairs`` evaluated out of ``n_listed`` (they differ only when pairs
    were skipped with ``--on-error skip``)."""

    root: str
    pairs: str
    n_pairs: int
    pairs_sha256: str
    n_listed: int | None = None


@dataclass(frozen=True)
class SkippedPair:
    """A pair left out by ``--on-error skip``, with the one-line reason."""

    pair_id: str
    line: int
    reason: str


@dataclass(frozen=True)
class VerifierInfo:
    path: str
    sha256: str


@dataclass(frozen=True)
class ComparisonEntry:
    """One candidate model against the reference model on one metric: the difference and its sentence."""

    delta: PairedDelta | SetDelta
    sentence: str

    @property
    def value(self) -> float:
        """Candidate minus reference (the mean per-pair difference for a per-image metric)."""
        return self.delta.mean_delta if isinstance(self.delta, PairedDelta) else self.delta.delta

    @property
    def interval(self) -> tuple[float, float] | None:
        """The confidence interval of the difference, ``None`` when none was computed."""
        low, high = self.delta.ci_low, self.delta.ci_high
        return (low, high) if math.isfinite(low) and math.isfinite(high) else None

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in asdict(self.delta).items()} | {"sentence": self.sentence}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ComparisonEntry:
        d = _mapping(d, "comparison entry")
        fields = {k: v for k, v in d.items() if k != "sentence"}
        for k in ("ci_low", "ci_high", "mean_delta", "delta", "reference_value", "candidate_value"):
            if k in fields:
                fields[k] = _float(fields[k])
        delta = PairedDelta(**fields) if "mean_delta" in fields else SetDelta(**fields)
        return cls(delta=delta, sentence=d["sentence"])


@dataclass(frozen=True)
class Comparison:
    """The paired comparison of every model with ``reference_model`` (``models[name][metric]``)."""

    reference_model: str
    bootstrap: int
    seed: int
    confidence: float
    models: Mapping[str, Mapping[str, ComparisonEntry]]

    def entry(self, model: str, metric: str) -> ComparisonEntry | None:
        """The entry of ``model`` on results key ``metric``, ``None`` when not compared."""
        return self.models.get(model, {}).get(metric)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference_model": self.reference_model,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "confidence": self.confidence,
            "models": {
                name: {key: e.to_dict() for key, e in entries.items()}
                for name, entries in self.models.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Comparison:
        d = _mapping(d, "comparison")
        return cls(
            reference_model=d["reference_model"],
            bootstrap=int(d["bootstrap"]),
            seed=int(d["seed"]),
            confidence=float(d["confidence"]),
            models={
                name: {key: ComparisonEntry.from_dict(e) for key, e in _mapping(entries, name).items()}
                for name, entries in _mapping(d["models"], "comparison.models").items()
            },
        )


#: How a sequential decision was made: at an interim look, by the ordinary gate on every pair (no interim look
#: decided it), or not at all (the run stopped at another metric's FAIL first).
DecidedBy = Literal["look", "full run", "undecided"]


@dataclass(frozen=True)
class SequentialDecision:
    """One gated (candidate model, metric) of a sequential run.

    Attributes
    ----------
    model, metric : str
        Candidate model and metric key.
    verdict : {"PASS", "FAIL", "N/A"}
        ``N/A`` when not decided (``decided_by="undecided"``) or left to the full-run gate (whose row then
        has the verdict).
    decided_by : {"look", "full run", "undecided"}
        See :data:`DecidedBy`.
    look : int or None
        1-based number of the look that decided (``decided_by="look"``), else the last look made.
    n : int
        Pairs evaluated at that look.
    delta, ci_low, ci_high : float
        Candidate minus reference at that look and its interval, valid over all looks (NaN: none).
    allowance : float
        The gate's allowed worsening at that look (NaN: none).
    higher_is_better : bool
        The metric's direction.
    """

    model: str
    metric: str
    verdict: Verdict
    decided_by: DecidedBy
    look: int | None
    n: int
    delta: float
    ci_low: float
    ci_high: float
    allowance: float
    higher_is_better: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: finite_or_none(v) if isinstance(v, float) else v for k, v in vars(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SequentialDecision:
        d = _mapping(d, "sequential.decisions[]")
        floats = ("delta", "ci_low", "ci_high", "allowance")
        return cls(
            **{k: v for k, v in d.items() if k not in floats},
            **{k: _float(d[k], key=f"sequential.decisions[].{k}") for k in floats},
        )


@dataclass(frozen=True)
class SequentialRun:
    """How a sequential gate ran (``results.json``'s ``sequential`` section).

    Attributes
    ----------
    method : str
        The interval method (:data:`evalkit.stats.sequential.METHOD`).
    alpha : float
        Each gated metric's error level: the chance that its decision differs from the full run's gate.
    look_every : int
        The configured pairs between looks.
    order_seed : int
        Seed of the pairs' order (a permutation of the pairs file, the same for every model; the samples of
        ``results.json`` are in that order).
    looks : tuple of int
        The planned looks: pairs done at each; the last is every listed pair (the ordinary gate).
    n_listed : int
        Pairs in the pairs file (after ``dataset.limit``).
    n_done : int
        Pairs taken from the order before the run stopped (evaluated or skipped).
    stopped_early : bool
        True when the run stopped before the last listed pair.
    stop_look : int or None
        1-based number of the look at which the run stopped (None: it ran to the last pair).
    decisions : tuple of SequentialDecision
        One per candidate model and gated metric.
    """

    method: str
    alpha: float
    look_every: int
    order_seed: int
    looks: tuple[int, ...]
    n_listed: int
    n_done: int
    stopped_early: bool
    stop_look: int | None
    decisions: tuple[SequentialDecision, ...]

    def decision(self, model: str, metric: str) -> SequentialDecision | None:
        """The decision of ``model`` on ``metric``, ``None`` when the metric was not gated."""
        return next((d for d in self.decisions if d.model == model and d.metric == metric), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in vars(self).items() if k not in ("looks", "decisions")},
            "looks": list(self.looks),
            "decisions": [d.to_dict() for d in self.decisions],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SequentialRun:
        d = _mapping(d, "sequential")
        return cls(
            **{k: v for k, v in d.items() if k not in ("looks", "decisions", "alpha")},
            alpha=_float(d["alpha"], key="sequential.alpha"),
            looks=tuple(int(x) for x in _sequence(d["looks"], "sequential.looks")),
            decisions=tuple(
                SequentialDecision.from_dict(x) for x in _sequence(d["decisions"], "sequential.decisions")
            ),
        )


@dataclass(frozen=True)
class RunResult:
    """A whole run. ``models`` keeps the config's order; comparisons are against
    :attr:`reference_model` (``metrics.reference_model``, default the first model)."""

    evalkit_version: str
    config: Config
    dataset: DatasetInfo
    models: dict[str, ModelResult]
    verifier: VerifierInfo
    environment: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    comparison: Comparison | None = None
    skipped: tuple[SkippedPair, ...] = ()
    gate: GateReport | None = None  #: the gate's verdicts, when ``run --gate`` was used
    sequential: SequentialRun | None = None  #: how a sequential gate stopped (``--sequential`` only)

    @property
    def reference_model(self) -> str:
        """The model every other model is compared with (the one place this is resolved)."""
        return self.config.reference_model

    @property
    def has_extended(self) -> bool:
        """Whether every model has the extended metrics (not a ``--metrics reference`` run)."""
        return all(m.metrics.has_extended for m in self.models.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "evalkit_version": self.evalkit_version,
            "config": config_to_dict(self.config),
            "dataset": {**vars(self.dataset), "n_listed": self.dataset.n_listed or self.dataset.n_pairs},
            "skipped": [vars(s).copy() for s in self.skipped],
            "models": {name: m.to_dict() for name, m in self.models.items()},
            "verifier": vars(self.verifier).copy(),
            "environment": self.environment,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            **({"comparison": self.comparison.to_dict()} if self.comparison is not None else {}),
            **({"gate": self.gate.to_dict()} if self.gate is not None else {}),
            **({"sequential": self.sequential.to_dict()} if self.sequential is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], source: str = "<results>") -> RunResult:
        version = d.get("schema_version", SCHEMA_VERSION)  # files of the first release have none
        if isinstance(version, bool) or not isinstance(version, int) or version != SCHEMA_VERSION:
            raise InputError(
                f"{source}: results schema_version {version!r} is not the one this evalkit reads "
                f"({SCHEMA_VERSION}); use the evalkit version that wrote it ({d.get('evalkit_version', '?')})"
            )
        config = config_from_dict(d["config"], source=f"{source}: config")
        models = {name: ModelResult.from_dict(name, m) for name, m in _mapping(d["models"], "models").items()}
        declared = [m.name for m in config.models]
        if list(models) != declared:
            raise ValueError(f"models {list(models)} are not the config's models {declared}")
        if len({len(m.samples) for m in models.values()}) > 1:
            raise ValueError("the models have different numbers of samples")
        comparison = Comparison.from_dict(d["comparison"]) if d.get("comparison") else None
        if comparison is not None:
            # the reports read the reference from the config: a comparison against another model would be
            # shown under the wrong heading and sign
            if comparison.reference_model != config.reference_model:
                raise ValueError(
                    f"comparison.reference_model {comparison.reference_model!r} is not "
                    f"metrics.reference_model {config.reference_model!r}"
                )
            strangers = set(comparison.models) - (set(models) - {config.reference_model})
            if strangers:
                raise ValueError(f"comparison.models has {sorted(strangers)}: not candidates of the run")
        try:
            gate = GateReport.from_dict(d["gate"]) if d.get("gate") else None
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
        return cls(
            evalkit_version=d["evalkit_version"],
            config=config,
            dataset=DatasetInfo(**_mapping(d["dataset"], "dataset")),
            models=models,
            verifier=VerifierInfo(**_mapping(d["verifier"], "verifier")),
            environment=dict(_mapping(d.get("environment", {}), "environment")),
            timings={k: float(v) for k, v in _mapping(d.get("timings", {}), "timings").items()},
            comparison=comparison,
            skipped=tuple(
                SkippedPair(**_mapping(s, "skipped")) for s in _sequence(d.get("skipped", []), "skipped")
            ),
            gate=gate,
            sequential=SequentialRun.from_dict(d["sequential"]) if d.get("sequential") else None,
        )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    # a hand-edited file: a wrong shape is one line naming the key, not an AttributeError deep in a report
    if not isinstance(value, Mapping):
        raise TypeError(f"{where!r} is not a mapping")
    return value


def _sequence(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"{where!r} is not a list")
    return value


def _plain(value: Any) -> Any:
    # JSON numbers only: NaN (e.g. no interval when the bootstrap is off) becomes null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _float(x: float | None, none: float = math.nan, key: str = "a value") -> float:
    if x is None:
        return none
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise TypeError(f"{key}: expected a number or null, got {x!r}")
    return float(x)


class _NonFiniteConstant(ValueError):
    """A bare ``NaN``/``Infinity`` in a results file: Python's json accepts them, strict JSON does not."""


def _refuse_constant(name: str) -> float:
    raise _NonFiniteConstant(name)


def save_results(result: RunResult, path: Path) -> None:
    """Write ``results.json`` (strict JSON: ``allow_nan=False``)."""
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")


def load_results(path: Path) -> RunResult:
    """Read a ``results.json`` written by :func:`save_results`.

    Raises
    ------
    InputError
        The file is missing, not JSON, of another ``schema_version``, or not an evalkit results file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = json.loads(text, parse_constant=_refuse_constant)
        if not isinstance(data, Mapping):
            raise TypeError("top level")
        return RunResult.from_dict(data, source=str(path))
    except FileNotFoundError:
        raise InputError(f"{path}: results file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder; give a results.json") from None
    except _NonFiniteConstant as exc:
        bare = re.search(rf"[:\[,]\s*{re.escape(str(exc))}", text)
        line = f":{text.count(chr(10), 0, bare.start()) + 1}" if bare else ""
        raise InputError(
            f"{path}{line}: not strict JSON: {exc} is not a number "
            "(evalkit writes null for an undefined value)"
        ) from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be an evalkit results file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except KeyError as exc:
        raise InputError(f"{path}: not an evalkit results file (missing key {exc})") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: not an evalkit results file ({exc})") from None


# ------------------------------------------------------------------------------------- the gate's outcome
# What `evalkit gate` and `run --gate` decided (evalkit.gate.engine makes these records; evalkit.report.gate
# renders them). Here because results.json's ``gate`` section is their JSON form.

Verdict = Literal["PASS", "FAIL", "N/A"]
Noise = Literal["yes", "no", "unknown"]
GateKind = Literal["within-run", "runs", "published"]


@dataclass(frozen=True)
class GateRow:
    """One checked (model, metric).

    Attributes
    ----------
    model, baseline_model : str
        The candidate model and what it is compared with (a model name, or ``published``).
    metric : str
        Metric key (``psnr``, ``fid``, ...).
    value, baseline : float
        Candidate and baseline values; NaN when undefined.
    delta : float
        ``value - baseline`` (NaN when either is undefined).
    allowance : float
        The allowed worsening for this baseline (a magnitude, >= 0).
    higher_is_better : bool
        The metric's direction.
    verdict : {"PASS", "FAIL", "N/A"}
        ``N/A``: undefined in both or in the baseline; not a failure.
    outside_noise : {"yes", "no", "unknown"}
        Whether the paired bootstrap interval of the difference excludes 0 (``unknown`` without one).
    reason : str
        Why a row is ``N/A``, or failed because a value is undefined; empty otherwise.
    """

    model: str
    baseline_model: str
    metric: str
    value: float
    baseline: float
    delta: float
    allowance: float
    higher_is_better: bool
    verdict: Verdict
    outside_noise: Noise = "unknown"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The row as strict-JSON data (undefined values are ``null``)."""
        return {
            "model": self.model,
            "baseline_model": self.baseline_model,
            "metric": self.metric,
            "value": finite_or_none(self.value),
            "baseline": finite_or_none(self.baseline),
            "delta": finite_or_none(self.delta),
            "allowance": finite_or_none(self.allowance),
            "higher_is_better": self.higher_is_better,
            "verdict": self.verdict,
            "outside_noise": self.outside_noise,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateRow:
        """Rebuild a row from :meth:`to_dict`'s output."""
        return cls(
            model=d["model"],
            baseline_model=d["baseline_model"],
            metric=d["metric"],
            value=_float(d["value"]),
            baseline=_float(d["baseline"]),
            delta=_float(d["delta"]),
            allowance=_float(d["allowance"]),
            higher_is_better=bool(d["higher_is_better"]),
            verdict=d["verdict"],
            outside_noise=d.get("outside_noise", "unknown"),
            reason=d.get("reason", ""),
        )


@dataclass(frozen=True)
class GateReport:
    """The outcome of a gate: its rows, what was compared with what, and notes for the reader.

    Attributes
    ----------
    kind : {"within-run", "runs", "published"}
        Which comparison made it.
    baseline, candidate : str
        What was compared (for the reports).
    spec : GateSpec
        The thresholds used.
    rows : tuple of GateRow
        One per (model, metric), models then metrics in table order.
    notes : tuple of str
        Metrics skipped and why, settings that differ without being refused, and the like.
    """

    kind: GateKind
    baseline: str
    candidate: str
    spec: GateSpec
    rows: tuple[GateRow, ...]
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        """True when no row failed."""
        return all(row.verdict != "FAIL" for row in self.rows)

    @property
    def failures(self) -> tuple[GateRow, ...]:
        """The failed rows."""
        return tuple(row for row in self.rows if row.verdict == "FAIL")

    def to_dict(self) -> dict[str, Any]:
        """The gate as strict-JSON data (``results.json``'s ``gate`` section; undefined values are null)."""
        return {
            "passed": self.passed,
            "kind": self.kind,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "thresholds": {
                "source": self.spec.source,
                "metrics": {
                    m: {"abs": a.absolute, "rel": a.relative} for m, a in self.spec.allowances.items()
                },
                "required": sorted(self.spec.required),
            },
            "rows": [row.to_dict() for row in self.rows],
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateReport:
        """Rebuild a report from :meth:`to_dict`'s output (to re-render a saved gate).

        Raises
        ------
        InputError
            The data is not a gate section.
        """
        try:
            thresholds = data["thresholds"]
            spec = GateSpec(
                allowances=MappingProxyType(
                    {m: Allowance(a.get("abs"), a.get("rel")) for m, a in thresholds["metrics"].items()}
                ),
                source=thresholds["source"],
                required=frozenset(thresholds.get("required", ())),
            )
            return cls(
                kind=data["kind"],
                baseline=data["baseline"],
                candidate=data["candidate"],
                spec=spec,
                rows=tuple(GateRow.from_dict(r) for r in data["rows"]),
                notes=tuple(data.get("notes", ())),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InputError(f"not an evalkit gate section (missing or wrong key {exc})") from None
