"""The regression gate: is a candidate worse than its baseline by more than the allowed margin?

Pure functions on :class:`~evalkit.results.RunResult` records; nothing here runs a model.

Three comparisons, one report type (:class:`GateReport`):

- :func:`compare_within_run`: every model of one run against the run's reference model (``evalkit run
  --gate``): the FP16 IR against the original, say;
- :func:`compare_runs`: a candidate run against a baseline run (``evalkit gate BASELINE CANDIDATE``), model
  by model (same name), or every candidate model against one baseline model. It refuses runs that are not
  comparable: another data set, another verifier, other metric settings;
- :func:`compare_to_published`: a run against the published accuracy table (``published:`` in a config).

The rule, per metric (direction-aware: PSNR, SSIM, IS and their extended variants are better higher; FID
and KID lower)::

    worse   = baseline - value      (higher is better)      value - baseline     (lower is better)
    allowed = max(abs, rel * |baseline|)                    (a missing abs or rel counts as 0)
    FAIL  if  worse > allowed

so an improvement never fails, and when both an absolute and a relative allowance are given the larger one
applies (either is enough to pass). Comparisons carry a relative tolerance of 1e-9 so that a change of
exactly the allowance, which floating point may represent a hair larger, passes.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml

from evalkit.errors import InputError
from evalkit.report.tables import EXTENDED_METRICS, REFERENCE_METRICS, MetricRow
from evalkit.results import RunResult

__all__ = [
    "DEFAULT_ALLOWANCES",
    "DEFAULT_GATE_SPEC",
    "GATE_METRICS",
    "GATE_TABLE_HEAD",
    "HIGHER_IS_BETTER",
    "Allowance",
    "GateReport",
    "GateRow",
    "GateSpec",
    "PublishedTable",
    "PublishedValue",
    "compare_runs",
    "compare_to_published",
    "compare_within_run",
    "gate_from_dict",
    "gate_summary",
    "gate_table_cells",
    "gate_to_dict",
    "load_gate_file",
    "parse_gate_config",
    "parse_published",
    "render_gate_markdown",
    "render_gate_text",
]

Verdict = Literal["PASS", "FAIL", "N/A"]
Noise = Literal["yes", "no", "unknown"]
GateKind = Literal["within-run", "runs", "published"]

#: Every metric the gate knows, in the order of the tables, and its direction (True: higher is better).
HIGHER_IS_BETTER: Mapping[str, bool] = MappingProxyType(
    {
        "psnr": True,
        "ssim": True,
        "is": True,
        "fid": False,
        "ssim_wang": True,
        "psnr_rgb": True,
        "is_10": True,
        "kid": False,
    }
)
GATE_METRICS: tuple[str, ...] = tuple(HIGHER_IS_BETTER)
#: Metrics that only a ``metrics.profile: all`` run has.
_EXTENDED = frozenset({"ssim_wang", "psnr_rgb", "is_10", "kid"})
#: Metrics computed on seeded random splits/subsets: comparable only between runs with the same seed.
_SEEDED = frozenset({"is_10", "kid"})
#: Float slack on "worse > allowed" (see the module docstring).
_REL_TOLERANCE = 1e-9
_SHORT_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "psnr": "PSNR",
        "ssim": "SSIM",
        "is": "IS",
        "fid": "FID",
        "ssim_wang": "SSIM (Wang)",
        "psnr_rgb": "PSNR (RGB)",
        "is_10": "IS (10 splits)",
        "kid": "KID",
    }
)


def _metric_row(metric: str) -> MetricRow:
    """How the report tables show ``metric`` (unit, decimals): reused so gate and tables agree."""
    for row in (*REFERENCE_METRICS, *EXTENDED_METRICS):
        if row.key == metric:
            return row
    return MetricRow(metric, metric)


# ------------------------------------------------------------------------------------------------ thresholds


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


#: The built-in thresholds (the only place they are written down): PSNR may drop 0.1 dB, SSIM 0.01,
#: IS 2 %; FID may rise 2 %, KID 0.001. The extended SSIM/PSNR/IS variants are not gated unless a
#: ``gate:`` config names them.
DEFAULT_ALLOWANCES: Mapping[str, Allowance] = MappingProxyType(
    {
        "psnr": Allowance(absolute=0.1),
        "ssim": Allowance(absolute=0.01),
        "is": Allowance(relative=0.02),
        "fid": Allowance(relative=0.02),
        "kid": Allowance(absolute=0.001),
    }
)


@dataclass(frozen=True)
class GateSpec:
    """Which metrics are gated and with which allowance.

    Attributes
    ----------
    allowances : Mapping[str, Allowance]
        Metric key (``psnr``, ``ssim``, ``is``, ``fid``, ``ssim_wang``, ``psnr_rgb``, ``is_10``, ``kid``)
        -> allowance. Metrics not listed are not gated.
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
        return [m for m in GATE_METRICS if m in self.allowances]


DEFAULT_GATE_SPEC = GateSpec()

_ALLOWANCE_KEYS = ("abs", "rel")


def _fail(source: str, key: str, problem: str) -> InputError:
    return InputError(f"{source}: key '{key}': {problem}")


def _unknown(source: str, key: str, name: object, valid: Sequence[str], what: str) -> InputError:
    close = difflib.get_close_matches(str(name), list(valid), n=1)
    # Spelt-out names ('relative' for 'rel') are too long for difflib's ratio: match on the prefix.
    close = close or [v for v in valid if str(name).startswith(v) or v.startswith(str(name))]
    hint = f"; did you mean '{close[0]}'?" if close else f"; valid: {', '.join(valid)}"
    return _fail(source, key, f"unknown {what}{hint}")


def _non_negative(source: str, key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(source, key, f"expected a number >= 0, got {value!r}")
    if value < 0:
        raise _fail(source, key, f"expected a number >= 0, got {value!r} (an allowance is a magnitude)")
    return float(value)


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
    if not isinstance(raw, Mapping):
        raise _fail(source, "gate", f"expected a mapping of metric -> {{abs, rel}}, got {type(raw).__name__}")
    allowances = dict(DEFAULT_ALLOWANCES)
    required = set()
    for metric, value in raw.items():
        key = f"gate.{metric}"
        if not isinstance(metric, str) or metric not in HIGHER_IS_BETTER:
            raise _unknown(source, key, metric, GATE_METRICS, "metric")
        if value is None or value is False:
            allowances.pop(metric, None)
            continue
        if not isinstance(value, Mapping):
            raise _fail(source, key, f"expected a mapping with 'abs' and/or 'rel', or null; got {value!r}")
        for k in value:
            if k not in _ALLOWANCE_KEYS:
                raise _unknown(source, f"{key}.{k}", k, _ALLOWANCE_KEYS, "allowance key")
        if not value:
            raise _fail(source, key, "give 'abs' and/or 'rel' (or null to leave the metric out of the gate)")
        allowances[metric] = Allowance(
            absolute=None if value.get("abs") is None else _non_negative(source, f"{key}.abs", value["abs"]),
            relative=None if value.get("rel") is None else _non_negative(source, f"{key}.rel", value["rel"]),
        )
        required.add(metric)
    if not allowances:
        raise _fail(source, "gate", "every metric is switched off: the gate would check nothing")
    ordered = {m: allowances[m] for m in GATE_METRICS if m in allowances}
    return GateSpec(allowances=MappingProxyType(ordered), source=source, required=frozenset(required))


# ------------------------------------------------------------------------------------------------- published


@dataclass(frozen=True)
class PublishedValue:
    """A figure of a published table and how many decimals it was printed with."""

    value: float
    decimals: int

    @property
    def half_unit(self) -> float:
        """Half a unit in the last printed decimal: the rounding the printed figure may hide."""
        return 0.5 * 10.0 ** (-self.decimals)


@dataclass(frozen=True)
class PublishedTable:
    """A published accuracy table: model name -> metric -> :class:`PublishedValue`."""

    models: Mapping[str, Mapping[str, PublishedValue]]
    source: str = "published table"


def _printed_decimals(value: int | float | str) -> int:
    # A YAML float has lost its trailing zeros (0.340 -> 0.34); its shortest repr is what was printed
    # unless the table padded with zeros. Quote the figure ("0.340") to keep them.
    text = value.strip() if isinstance(value, str) else repr(value)
    exponent = Decimal(text).as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def parse_published(raw: Any, source: str = "<config>") -> PublishedTable:
    """Validate a ``published:`` mapping: ``{model: {metric: figure}}``.

    Figures are numbers or numeric strings; the decimals they are written with set the rounding allowance
    of :func:`compare_to_published` (quote a figure like ``"0.340"`` to keep a trailing zero).

    Raises
    ------
    InputError
        One line naming ``source`` and the key (unknown metric with the closest valid name, non-numbers).
    """
    if not isinstance(raw, Mapping) or not raw:
        raise _fail(source, "published", "expected a mapping of model name -> {metric: published figure}")
    models: dict[str, Mapping[str, PublishedValue]] = {}
    for model, figures in raw.items():
        key = f"published.{model}"
        if not isinstance(model, str) or not model:
            raise _fail(source, key, "model names are non-empty strings")
        if not isinstance(figures, Mapping) or not figures:
            raise _fail(source, key, f"expected a mapping of metric -> figure, got {figures!r}")
        values: dict[str, PublishedValue] = {}
        for metric, figure in figures.items():
            mkey = f"{key}.{metric}"
            if not isinstance(metric, str) or metric not in HIGHER_IS_BETTER:
                raise _unknown(source, mkey, metric, GATE_METRICS, "metric")
            if isinstance(figure, bool) or not isinstance(figure, int | float | str):
                raise _fail(source, mkey, f"expected a number, got {figure!r}")
            try:
                number = float(figure)
                decimals = _printed_decimals(figure)
            except (ValueError, InvalidOperation):
                raise _fail(source, mkey, f"expected a number, got {figure!r}") from None
            if not math.isfinite(number):
                raise _fail(source, mkey, f"expected a finite number, got {figure!r}")
            values[metric] = PublishedValue(number, decimals)
        models[model] = MappingProxyType(values)
    return PublishedTable(models=MappingProxyType(models), source=source)


def load_gate_file(path: str | Path) -> tuple[GateSpec, PublishedTable | None]:
    """Read the ``gate:`` and ``published:`` keys of a YAML file (a run config such as cocosnet.yaml, or a
    file holding only those keys). Other top-level keys are left to the config parser.

    Returns
    -------
    tuple of GateSpec and PublishedTable or None
        The thresholds (the defaults when there is no ``gate:`` key) and the published table, if any.

    Raises
    ------
    InputError
        Unreadable file, invalid YAML, or a problem in either key (one line naming file and key).
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: gate config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read gate config: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InputError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    for key in ("gate", "published"):
        if key not in raw:
            # A misspelt 'gate' would otherwise silently give the defaults.
            typo = difflib.get_close_matches(key, [str(k) for k in raw], n=1, cutoff=0.75)
            if typo and typo[0] not in ("gate", "published"):
                raise _fail(str(path), typo[0], f"unknown key; did you mean '{key}'?")
    spec = parse_gate_config(raw.get("gate"), str(path))
    published = parse_published(raw["published"], str(path)) if raw.get("published") is not None else None
    return spec, published


# ------------------------------------------------------------------------------------------------- the report


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


def _value(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _judge(
    model: str,
    baseline_model: str,
    metric: str,
    value: float,
    baseline: float,
    allowance: float,
    noise: Noise = "unknown",
) -> GateRow:
    hib = HIGHER_IS_BETTER[metric]
    v_ok, b_ok = math.isfinite(value), math.isfinite(baseline)
    verdict: Verdict
    if not v_ok and not b_ok:
        verdict, reason = "N/A", "undefined in both"
    elif not b_ok:
        verdict, reason = "N/A", "undefined in the baseline"
    elif not v_ok:
        # Conservative: a metric that became undefined is treated as a regression to look at.
        verdict, reason = "FAIL", "undefined in the candidate"
    else:
        worse = (baseline - value) if hib else (value - baseline)
        failed = worse > allowance + _REL_TOLERANCE * max(abs(baseline), abs(allowance), 1.0)
        verdict, reason = ("FAIL" if failed else "PASS"), ""
    delta = value - baseline if v_ok and b_ok else math.nan
    return GateRow(
        model=model,
        baseline_model=baseline_model,
        metric=metric,
        value=value,
        baseline=baseline,
        delta=delta,
        allowance=allowance,
        higher_is_better=hib,
        verdict=verdict,
        outside_noise=noise,
        reason=reason,
    )


def _metrics_of(run: RunResult, model: str) -> dict[str, Any]:
    return run.models[model].metrics.to_dict()


def _has_extended(run: RunResult) -> bool:
    return all(m.metrics.extended is not None for m in run.models.values())


def _metric_settings(run: RunResult) -> dict[str, Any]:
    m = run.config.get("metrics") or {}
    # Results files from before these settings existed used the reference method's defaults.
    return {
        "ssim_constants": m.get("ssim_constants", "reference"),
        "fid_method": m.get("fid_method", "auto"),
        "profile": m.get("profile", "all" if _has_extended(run) else "reference"),
        "seed": m.get("seed", 0),
    }


def _noise_from(comparison: Mapping[str, Any] | None, model: str, metric: str) -> Noise:
    """``yes`` when the comparison's bootstrap interval for (model, metric) excludes 0."""
    try:
        entry = comparison["models"][model][metric]  # type: ignore[index]
        low, high = entry["ci_low"], entry["ci_high"]
    except (KeyError, TypeError):
        return "unknown"
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "unknown"
    return "yes" if low > 0 or high < 0 else "no"


def _select_metrics(
    spec: GateSpec, runs: Iterable[RunResult], notes: list[str], *, seeds_differ: bool = False
) -> list[str]:
    """The spec's metrics that every run has; a missing one is refused if required, else noted."""
    runs = list(runs)
    chosen = []
    for metric in spec.metrics():
        missing = metric in _EXTENDED and not all(_has_extended(r) for r in runs)
        if missing:
            why = "a run has no extended metrics (metrics.profile differs or is 'reference')"
        elif metric in _SEEDED and seeds_differ:
            missing, why = True, "the runs used different metrics.seed (seeded splits/subsets)"
        if not missing:
            chosen.append(metric)
        elif metric in spec.required:
            raise InputError(f"{spec.source}: key 'gate.{metric}': cannot gate {metric}: {why}")
        else:
            notes.append(f"{metric} not gated: {why}")
    if not chosen:
        raise InputError(
            f"{spec.source}: none of the gated metrics ({', '.join(spec.metrics())}) is in the runs"
        )
    return chosen


def _check_comparable(baseline: RunResult, candidate: RunResult, notes: list[str]) -> bool:
    """Refuse runs that measured different things; note differences that may move numbers.

    Returns whether the metric seeds differ (seeded metrics are then left out).
    """

    def refuse(field_name: str, a: object, b: object, why: str) -> InputError:
        return InputError(
            f"runs not comparable: {field_name} differs (baseline {a!r}, candidate {b!r}); {why}"
        )

    bd, cd = baseline.dataset, candidate.dataset
    if bd.n_pairs != cd.n_pairs:
        raise refuse("dataset.n_pairs", bd.n_pairs, cd.n_pairs, "the runs evaluated different pairs")
    if bd.pairs_sha256 != cd.pairs_sha256:
        raise refuse(
            "dataset.pairs_sha256", bd.pairs_sha256[:12], cd.pairs_sha256[:12], "different pairs files"
        )
    # Same file and count, but --on-error skip may have left out different pairs.
    b_skip = sorted(s.pair_id for s in getattr(baseline, "skipped", ()))
    c_skip = sorted(s.pair_id for s in getattr(candidate, "skipped", ()))
    if b_skip != c_skip:
        raise refuse("skipped", b_skip[:5], c_skip[:5], "the runs left out different pairs (--on-error skip)")
    if baseline.verifier.sha256 != candidate.verifier.sha256:
        raise refuse(
            "verifier.sha256",
            baseline.verifier.sha256[:12],
            candidate.verifier.sha256[:12],
            "IS, FID and KID depend on the verifier",
        )
    bs, cs = _metric_settings(baseline), _metric_settings(candidate)
    for key in ("ssim_constants", "fid_method"):
        if bs[key] != cs[key]:
            raise refuse(f"config.metrics.{key}", bs[key], cs[key], "the metrics were computed differently")
    if bs["profile"] != cs["profile"]:
        notes.append(
            f"config.metrics.profile differs (baseline {bs['profile']}, candidate {cs['profile']}): "
            "only the metrics both runs have are compared"
        )
    br, cr = baseline.config.get("runtime") or {}, candidate.config.get("runtime") or {}
    for key in ("inference_precision", "device"):
        if br.get(key) != cr.get(key):
            notes.append(f"runtime.{key} differs: baseline {br.get(key)}, candidate {cr.get(key)}")
    if baseline.evalkit_version != candidate.evalkit_version:
        notes.append(
            f"evalkit version differs: baseline {baseline.evalkit_version}, "
            f"candidate {candidate.evalkit_version}"
        )
    for lib in ("openvino", "opencv", "pillow", "numpy"):
        a, b = baseline.environment.get(lib), candidate.environment.get(lib)
        if a is not None and b is not None and a != b:
            # JPEG decoders and resize kernels change numbers a little between versions.
            notes.append(f"{lib} version differs: baseline {a}, candidate {b}")
    return bs["seed"] != cs["seed"]


def _model_names(run: RunResult, names: Sequence[str] | None, what: str) -> list[str]:
    if names is None:
        return list(run.models)
    for name in names:
        if name not in run.models:
            raise _unknown_model(name, run, what)
    return list(dict.fromkeys(names))


def _unknown_model(name: str, run: RunResult, what: str) -> InputError:
    valid = list(run.models)
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return InputError(f"model '{name}' is not in the {what} (models: {', '.join(valid)}){hint}")


def _label(run: RunResult, default: str) -> str:
    out = run.config.get("output")
    return f"{default} ({out})" if out else default


def compare_runs(
    baseline: RunResult,
    candidate: RunResult,
    spec: GateSpec | None = None,
    *,
    models: Sequence[str] | None = None,
    baseline_model: str | None = None,
    baseline_label: str | None = None,
    candidate_label: str | None = None,
) -> GateReport:
    """Gate a candidate run against a baseline run.

    Parameters
    ----------
    baseline, candidate : RunResult
        The two runs. They must share the data set (``pairs_sha256``, ``n_pairs``, the pairs left out by
        ``--on-error skip``), the verifier
        (``sha256``) and the metric settings (``ssim_constants``, ``fid_method``; ``profile`` and ``seed``
        for the extended metrics that depend on them).
    spec : GateSpec, optional
        Thresholds; the built-in defaults when ``None``.
    models : sequence of str, optional
        Candidate models to gate; all of them by default (then those without a same-named baseline model
        are skipped with a note).
    baseline_model : str, optional
        Compare every candidate model with this one baseline model instead of the same-named one.
    baseline_label, candidate_label : str, optional
        How the reports name the two runs (e.g. the results files' paths).

    Returns
    -------
    GateReport
        ``kind="runs"``. "Outside noise" is known only where the candidate run's paired comparison has the
        baseline model as its reference (the same model by sha256, on the same data set).

    Raises
    ------
    InputError
        Runs not comparable (the message names the field that differs), unknown model names, or nothing
        to compare.
    """
    spec = spec or DEFAULT_GATE_SPEC
    notes: list[str] = []
    seeds_differ = _check_comparable(baseline, candidate, notes)
    metrics = _select_metrics(spec, (baseline, candidate), notes, seeds_differ=seeds_differ)
    if baseline_model is not None and baseline_model not in baseline.models:
        raise _unknown_model(baseline_model, baseline, "baseline run")
    names = _model_names(candidate, models, "candidate run")

    comparison = candidate.comparison
    ref_c = comparison.get("reference_model") if isinstance(comparison, Mapping) else None

    rows: list[GateRow] = []
    for name in names:
        base_name = baseline_model or name
        if base_name not in baseline.models:
            if models is not None:
                raise _unknown_model(base_name, baseline, "baseline run")
            notes.append(f"{name}: no model of that name in the baseline run; not gated")
            continue
        # The candidate's own paired intervals say something about this pair of models only if its
        # reference model is the very baseline model (same file; same data by the checks above).
        same_ref = (
            ref_c is not None
            and ref_c in candidate.models
            and ref_c != name
            and candidate.models[ref_c].sha256 == baseline.models[base_name].sha256
        )
        value, base = _metrics_of(candidate, name), _metrics_of(baseline, base_name)
        for metric in metrics:
            b = _value(base.get(metric))
            noise = _noise_from(comparison, name, metric) if same_ref else "unknown"
            rows.append(
                _judge(
                    name,
                    base_name,
                    metric,
                    _value(value.get(metric)),
                    b,
                    spec.allowances[metric].limit(b),
                    noise,
                )
            )
    if not rows:
        raise InputError(
            f"no candidate model has a same-named baseline model (baseline: {', '.join(baseline.models)}; "
            f"candidate: {', '.join(candidate.models)}); name one with --baseline-model"
        )
    return GateReport(
        kind="runs",
        baseline=baseline_label or _label(baseline, "baseline run"),
        candidate=candidate_label or _label(candidate, "candidate run"),
        spec=spec,
        rows=tuple(rows),
        notes=tuple(notes),
    )


def compare_within_run(
    run: RunResult,
    spec: GateSpec | None = None,
    reference_model: str | None = None,
    *,
    label: str | None = None,
) -> GateReport:
    """Gate every model of a run against the run's reference model (``evalkit run --gate``).

    Parameters
    ----------
    run : RunResult
        A run with at least two models.
    spec : GateSpec, optional
        Thresholds; the built-in defaults when ``None``.
    reference_model : str, optional
        The baseline model; default ``config.metrics.reference_model``, else the run's first model.
    label : str, optional
        How the reports name the run.

    Returns
    -------
    GateReport
        ``kind="within-run"``; "outside noise" comes from the run's paired comparison when its reference
        model is the gate's.

    Raises
    ------
    InputError
        Fewer than two models, an unknown reference model, or a required metric the run lacks.
    """
    spec = spec or DEFAULT_GATE_SPEC
    if len(run.models) < 2:
        raise InputError(
            f"the gate compares models with a reference model; the run has only {list(run.models)}"
        )
    ref = (
        reference_model or (run.config.get("metrics") or {}).get("reference_model") or next(iter(run.models))
    )
    if ref not in run.models:
        raise _unknown_model(ref, run, "run")
    notes: list[str] = []
    metrics = _select_metrics(spec, (run,), notes)
    comparison = run.comparison
    has_ci = isinstance(comparison, Mapping) and comparison.get("reference_model") == ref
    if comparison is None:
        notes.append("no paired comparison in the results: noise unknown")
    elif not has_ci:
        notes.append(f"the paired comparison's reference model is not {ref}: noise unknown")
    base = _metrics_of(run, ref)
    rows = []
    for name in run.models:
        if name == ref:
            continue
        value = _metrics_of(run, name)
        for metric in metrics:
            b = _value(base.get(metric))
            noise = _noise_from(comparison, name, metric) if has_ci else "unknown"
            rows.append(
                _judge(
                    name, ref, metric, _value(value.get(metric)), b, spec.allowances[metric].limit(b), noise
                )
            )
    return GateReport(
        kind="within-run",
        baseline=f"{ref} ({run.models[ref].label})",
        candidate=label or _label(run, "run"),
        spec=spec,
        rows=tuple(rows),
        notes=tuple(notes),
    )


def compare_to_published(
    candidate: RunResult,
    published: PublishedTable,
    spec: GateSpec | None = None,
    *,
    models: Sequence[str] | None = None,
    candidate_label: str | None = None,
) -> GateReport:
    """Gate a run against a published accuracy table.

    Each published figure is matched to the run's same-named model. The allowance is the larger of half a
    unit in the figure's last printed decimal (0.005 for ``12.99``: the rounding the figure may hide) and
    the spec's allowance for that metric, if it has one. Direction-aware like the other gates: a run
    better than the published figure passes. Data set and verifier are not checked (a table has neither).

    Raises
    ------
    InputError
        No model of the run is in the table, or an unknown model in ``models``.
    """
    spec = spec or DEFAULT_GATE_SPEC
    names = _model_names(candidate, models, "run")
    notes: list[str] = []
    rows = []
    for name in names:
        if name not in published.models:
            if models is not None:
                raise InputError(
                    f"{published.source}: model '{name}' has no published figures "
                    f"(published: {', '.join(published.models)})"
                )
            notes.append(f"{name}: no published figures; not gated")
            continue
        value = _metrics_of(candidate, name)
        for metric in GATE_METRICS:
            if metric not in published.models[name]:
                continue
            fig = published.models[name][metric]
            allowance = fig.half_unit
            if metric in spec.allowances:
                allowance = max(allowance, spec.allowances[metric].limit(fig.value))
            rows.append(_judge(name, "published", metric, _value(value.get(metric)), fig.value, allowance))
    if not rows:
        raise InputError(
            f"{published.source}: no model of the run ({', '.join(candidate.models)}) is in the published "
            f"table ({', '.join(published.models)})"
        )
    settings = _metric_settings(candidate)
    if any(r.metric == "ssim" for r in rows) and settings["ssim_constants"] != "reference-2020":
        notes.append(
            f"the published SSIM comes from the 2020 code (metrics.ssim_constants: reference-2020); this run "
            f"used '{settings['ssim_constants']}'"
        )
    limit = (candidate.config.get("dataset") or {}).get("limit")
    if limit:
        notes.append(
            f"this run evaluated the first {candidate.dataset.n_pairs} pairs only (dataset.limit); "
            "the published figures are over the whole pairs file"
        )
    return GateReport(
        kind="published",
        baseline=published.source,
        candidate=candidate_label or _label(candidate, "run"),
        spec=spec,
        rows=tuple(rows),
        notes=tuple(notes),
    )


# ------------------------------------------------------------------------------------------------ renderers


def _fmt(x: float, metric: str, *, sign: bool = False, unit: bool = True, extra: int = 0) -> str:
    if not math.isfinite(x):
        return "n/a"
    row = _metric_row(metric)
    decimals = max(row.decimals, 1) + extra
    text = f"{x:+.{decimals}f}" if sign else f"{x:.{decimals}f}"
    if sign and float(text) == 0.0:
        text = f"{0.0:.{decimals}f}"
    return text + (row.unit if unit else "")


def _allowed_text(row: GateRow, *, ascii_only: bool) -> str:
    """The smallest acceptable delta (``>= -0.1000 dB``) or the largest (``<= +2.0694``)."""
    ge, le = (">=", "<=") if ascii_only else ("≥", "≤")
    # Allowances may be finer than the metric's decimals (0.005 on a 4-decimal metric is fine, 0.0005 not).
    extra = (
        max(0, -math.floor(math.log10(row.allowance)) - _metric_row(row.metric).decimals)
        if row.allowance > 0
        else 0
    )
    magnitude = _fmt(row.allowance, row.metric, extra=extra)
    return f"{ge} -{magnitude}" if row.higher_is_better else f"{le} +{magnitude}"


def gate_summary(report: GateReport) -> str:
    """``5 check(s) passed`` or ``2 of 5 check(s) failed: ...`` (without the verdict word)."""
    checked = [r for r in report.rows if r.verdict != "N/A"]
    if report.passed:
        return f"{len(checked)} check(s) passed"
    parts = [
        f"{r.model} {_SHORT_NAMES[r.metric]} {_fmt(r.delta, r.metric, sign=True)} "
        f"(allowed {_allowed_text(r, ascii_only=True)})"
        if math.isfinite(r.delta)
        else f"{r.model} {_SHORT_NAMES[r.metric]} ({r.reason})"
        for r in report.failures
    ]
    return f"{len(report.failures)} of {len(checked)} check(s) failed: " + "; ".join(parts)


_HEAD = ("model", "vs", "metric", "baseline", "value", "delta", "allowed", "outside noise", "verdict")


#: Column heads of :func:`gate_table_cells`.
GATE_TABLE_HEAD = _HEAD


def gate_table_cells(row: GateRow, *, ascii_only: bool = False) -> list[str]:
    """The formatted cells of one row, in :data:`GATE_TABLE_HEAD` order (shared by every renderer)."""
    return [
        row.model,
        row.baseline_model,
        _SHORT_NAMES[row.metric],
        _fmt(row.baseline, row.metric),
        _fmt(row.value, row.metric),
        _fmt(row.delta, row.metric, sign=True),
        _allowed_text(row, ascii_only=ascii_only),
        row.outside_noise,
        row.verdict if not row.reason or row.verdict == "PASS" else f"{row.verdict} ({row.reason})",
    ]


def _title(report: GateReport) -> str:
    return f"Gate ({report.kind}): {report.candidate} vs {report.baseline}; thresholds: {report.spec.source}"


def render_gate_text(report: GateReport) -> str:
    """A plain-ASCII terminal table with a PASS/FAIL verdict per row and a summary line."""
    table = [list(_HEAD)] + [gate_table_cells(r, ascii_only=True) for r in report.rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEAD))]
    numeric = {3, 4, 5}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [_title(report), "", line(table[0]), "  ".join("-" * w for w in widths)]
    out += [line(cells) for cells in table[1:]]
    out += ["", f"{'PASS' if report.passed else 'FAIL'}: {gate_summary(report)}"]
    out += [f"note: {n}" for n in report.notes]
    return "\n".join(out) + "\n"


def render_gate_markdown(report: GateReport) -> str:
    """The gate as Markdown (``gate.md``): verdict, table, thresholds and notes."""

    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    verdict = "**PASS**" if report.passed else "**FAIL**"
    lines = [
        "# evalkit gate",
        "",
        f"- Result: {verdict} — {esc(gate_summary(report))}",
        f"- Candidate: {esc(report.candidate)}",
        f"- Baseline: {esc(report.baseline)}",
        f"- Thresholds ({esc(report.spec.source)}): "
        + ", ".join(f"{_SHORT_NAMES[m]} {a.describe()}" for m, a in report.spec.allowances.items()),
        "",
        "| " + " | ".join(_HEAD) + " |",
        "|" + "|".join("---" for _ in _HEAD) + "|",
    ]
    for row in report.rows:
        cells = gate_table_cells(row)
        cells[-1] = f"**{cells[-1]}**" if row.verdict == "FAIL" else cells[-1]
        lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
    lines += [
        "",
        "A metric fails when it is worse than its baseline by more than max(abs, rel × |baseline|); an "
        "improvement never fails. *Outside noise*: the paired bootstrap interval of the difference "
        "excludes 0.",
    ]
    if report.notes:
        lines += ["", "Notes:", "", *(f"- {esc(n)}" for n in report.notes)]
    return "\n".join(lines) + "\n"


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def gate_to_dict(report: GateReport) -> dict[str, Any]:
    """The gate as strict-JSON data (``results.json``'s ``gate`` section; undefined values are ``null``)."""
    return {
        "passed": report.passed,
        "kind": report.kind,
        "baseline": report.baseline,
        "candidate": report.candidate,
        "thresholds": {
            "source": report.spec.source,
            "metrics": {m: {"abs": a.absolute, "rel": a.relative} for m, a in report.spec.allowances.items()},
            "required": sorted(report.spec.required),
        },
        "rows": [
            {
                "model": r.model,
                "baseline_model": r.baseline_model,
                "metric": r.metric,
                "value": _num(r.value),
                "baseline": _num(r.baseline),
                "delta": _num(r.delta),
                "allowance": _num(r.allowance),
                "higher_is_better": r.higher_is_better,
                "verdict": r.verdict,
                "outside_noise": r.outside_noise,
                "reason": r.reason,
            }
            for r in report.rows
        ],
        "notes": list(report.notes),
    }


def gate_from_dict(data: Mapping[str, Any]) -> GateReport:
    """Rebuild a :class:`GateReport` from :func:`gate_to_dict`'s output (to re-render a saved gate).

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
        rows = tuple(
            GateRow(
                model=r["model"],
                baseline_model=r["baseline_model"],
                metric=r["metric"],
                value=_value(r["value"]),
                baseline=_value(r["baseline"]),
                delta=_value(r["delta"]),
                allowance=_value(r["allowance"]),
                higher_is_better=bool(r["higher_is_better"]),
                verdict=r["verdict"],
                outside_noise=r.get("outside_noise", "unknown"),
                reason=r.get("reason", ""),
            )
            for r in data["rows"]
        )
        return GateReport(
            kind=data["kind"],
            baseline=data["baseline"],
            candidate=data["candidate"],
            spec=spec,
            rows=rows,
            notes=tuple(data.get("notes", ())),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"not an evalkit gate section (missing or wrong key {exc})") from None
