"""Hand-built run records for tests that need no inference (reports, gate, orchestration).

Each builder makes what a run of those models would record, through the public record types, so a test
states only the numbers it is about.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from evalkit.config import Config, parse_config
from evalkit.metrics.registry import per_image_metrics, result_keys
from evalkit.results import (
    Comparison,
    ComparisonEntry,
    DatasetInfo,
    ModelMetrics,
    ModelResult,
    RunResult,
    SampleScores,
    SkippedPair,
    VerifierInfo,
)
from evalkit.stats.comparison import PairedDelta, SetDelta

#: Summary values the builders start from (results keys); statistics default to small spreads. A metric
#: added to the registry later gets :data:`ANY_VALUE` until a test names it.
BASE: dict[str, float] = {
    "psnr": 20.0,
    "ssim": 0.5,
    "is": 10.0,
    "fid": 50.0,
    "psnr_std": 1.0,
    "ssim_std": 0.1,
    "psnr_identical": 0,
    "ssim_wang": 0.7,
    "psnr_rgb": 18.0,
    "is_10": math.nan,
    "is_10_std": math.nan,
    "kid": 0.02,
    "kid_std": 0.001,
}


ANY_VALUE = 0.5


def metrics(extended: bool = True, **values: float) -> ModelMetrics:
    """ModelMetrics from :data:`BASE` with some values replaced (keys as in results.json; ``is`` via
    ``**{"is": 9.0}``)."""
    merged = {**BASE, **values}
    return ModelMetrics(values={k: merged.get(k, ANY_VALUE) for k in result_keys(extended)})


def config(
    models: Sequence[str] | Mapping[str, str],
    *,
    ssim_constants: str = "reference",
    fid_method: str = "auto",
    profile: str = "all",
    seed: int = 0,
    reference_model: str | None = None,
    output: str = "reports/x",
    limit: int | None = None,
    bootstrap: int = 200,
    extra: Mapping[str, Any] | None = None,
) -> Config:
    """A parsed config for these model names (or ``{name: label}``) with the given metric settings."""
    labels = dict(models) if isinstance(models, Mapping) else {m: m.title() for m in models}
    raw: dict[str, Any] = {
        "dataset": {"root": "data", "pairs": "pairs.txt", "limit": limit},
        "models": {name: {"label": label, "path": f"{name}.xml"} for name, label in labels.items()},
        "verifier": {"path": "verifier.xml"},
        "runtime": {"device": "CPU", "inference_precision": "f32"},
        "metrics": {
            "ssim_constants": ssim_constants,
            "fid_method": fid_method,
            "profile": profile,
            "reference_model": reference_model,
            "bootstrap": bootstrap,
            "seed": seed,
        },
        "output": output,
        **(extra or {}),
    }
    return parse_config(raw, source="<test config>")


def samples(n: int, **per_image: Sequence[float] | float) -> tuple[SampleScores, ...]:
    """``n`` per-pair records; each keyword is a per-image metric key with one value or one per pair."""
    out = []
    for i in range(n):
        values = {k: float(v[i] if isinstance(v, Sequence) else v) for k, v in per_image.items()}
        out.append(SampleScores(pair_id=f"ADE_val_{i + 1:08d}", values=values))
    return tuple(out)


def run(
    models: Mapping[str, ModelMetrics],
    *,
    n: int = 10,
    labels: Mapping[str, str] | None = None,
    pairs_sha256: str = "a" * 64,
    verifier_sha256: str = "b" * 64,
    comparison: Comparison | None = None,
    sha256: Mapping[str, str] | None = None,
    model_samples: Mapping[str, tuple[SampleScores, ...]] | None = None,
    skipped: tuple[str, ...] = (),
    environment: Mapping[str, Any] | None = None,
    **config_options: Any,
) -> RunResult:
    """A RunResult built in code: what a run of these models would record."""
    extended = all(m.has_extended for m in models.values())
    config_options.setdefault("profile", "all" if extended else "reference")
    sha256 = sha256 or {}
    names = dict(labels) if labels else {name: name.title() for name in models}
    per_image = [m.key for m in per_image_metrics(extended)]
    return RunResult(
        evalkit_version="0.1.0",
        config=config(names, **config_options),
        dataset=DatasetInfo(root="data", pairs="pairs.txt", n_pairs=n, pairs_sha256=pairs_sha256),
        models={
            name: ModelResult(
                name=name,
                label=names[name],
                path=f"{name}.xml",
                sha256=sha256.get(name, name * 4),
                metrics=m,
                n=n,
                samples=(model_samples or {}).get(name)
                or samples(n, **{k: m.values.get(k, ANY_VALUE) for k in per_image}),
            )
            for name, m in models.items()
        },
        verifier=VerifierInfo(path="verifier.xml", sha256=verifier_sha256),
        environment=dict(environment or {"openvino": "2025.0", "opencv": "4.10", "pillow": "11.0"}),
        comparison=comparison,
        skipped=tuple(SkippedPair(pid, i + 1, "unreadable image") for i, pid in enumerate(skipped)),
    )


def paired_entry(
    name: str,
    low: float | None,
    high: float | None,
    *,
    higher_is_better: bool = True,
    mean: float | None = None,
) -> ComparisonEntry:
    """A comparison entry of a per-image metric with the given interval (``None``: no interval)."""
    lo = math.nan if low is None else low
    hi = math.nan if high is None else high
    mid = mean if mean is not None else (0.0 if low is None or high is None else (low + high) / 2)
    delta = PairedDelta(name, mid, lo, hi, 0.5, 10, higher_is_better)
    return ComparisonEntry(delta, f"{name}: ...")


def set_entry(
    name: str, delta: float, low: float | None, high: float | None, *, higher_is_better: bool = False
) -> ComparisonEntry:
    """A comparison entry of a set metric (IS, FID, KID) with the given interval (``None``: no interval)."""
    lo = math.nan if low is None else low
    hi = math.nan if high is None else high
    return ComparisonEntry(SetDelta(name, delta, lo, hi, 200, higher_is_better), f"{name}: ...")


def comparison(reference: str, entries: Mapping[str, Mapping[str, ComparisonEntry]]) -> Comparison:
    """The comparison section: ``entries[model][metric key]``."""
    return Comparison(reference_model=reference, bootstrap=200, seed=0, confidence=0.95, models=entries)
