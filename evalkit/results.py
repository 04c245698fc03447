"""The typed record of a run and its JSON form: the contract between evaluation, reports and the gate.

``results.json`` holds metric values as JSON numbers only: a value that is undefined (e.g. a PSNR mean
when every image is identical to its ground truth) is written as ``null``, never as NaN or Infinity.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalkit.errors import InputError


@dataclass(frozen=True)
class SampleScores:
    """Per-pair scores of one model. PSNRs are ``inf`` when the output equals the ground truth.

    ``ssim_wang`` and ``psnr_rgb`` (the extended metrics) are ``None`` in a ``--metrics reference`` run.
    """

    pair_id: str
    psnr: float
    ssim: float
    ssim_wang: float | None = None
    psnr_rgb: float | None = None


@dataclass(frozen=True)
class ModelMetrics:
    """The reference table's four metrics for one model, plus their spreads.

    ``psnr`` and ``psnr_std`` are over the finite per-image values; ``psnr_identical`` counts the
    images identical to their ground truth (infinite PSNR).
    """

    psnr: float
    ssim: float
    inception_score: float
    fid: float
    psnr_std: float
    ssim_std: float
    psnr_identical: int
    extended: ExtendedMetrics | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "psnr": _num(self.psnr),
            "ssim": _num(self.ssim),
            "is": _num(self.inception_score),
            "fid": _num(self.fid),
            "psnr_std": _num(self.psnr_std),
            "ssim_std": _num(self.ssim_std),
            "psnr_identical": int(self.psnr_identical),
        }
        if self.extended is not None:
            out.update({k: _num(v) for k, v in vars(self.extended).items()})
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMetrics:
        has_extended = all(k in d for k in EXTENDED_KEYS)
        return cls(
            psnr=_float(d["psnr"]),
            ssim=_float(d["ssim"]),
            inception_score=_float(d["is"]),
            fid=_float(d["fid"]),
            psnr_std=_float(d["psnr_std"]),
            ssim_std=_float(d["ssim_std"]),
            psnr_identical=int(d["psnr_identical"]),
            extended=ExtendedMetrics(**{k: _float(d[k]) for k in EXTENDED_KEYS}) if has_extended else None,
        )


@dataclass(frozen=True)
class ExtendedMetrics:
    """Metrics beyond the reference, named so that nobody confuses them with the reference columns.

    ``ssim_wang``: Wang et al.'s windowed SSIM (scikit-image, Gaussian sigma 1.5); ``psnr_rgb``: standard
    PSNR over the RGB values (mean over finite values); ``is_10``/``is_10_std``: IS over 10 seeded splits
    (NaN when N < 10); ``kid``/``kid_std``: KID, mean and std over seeded subsets.
    """

    ssim_wang: float
    psnr_rgb: float
    is_10: float
    is_10_std: float
    kid: float
    kid_std: float


EXTENDED_KEYS = ("ssim_wang", "psnr_rgb", "is_10", "is_10_std", "kid", "kid_std")


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
class RunResult:
    """A whole run. ``models`` keeps the config's order; the first model is the comparison baseline."""

    evalkit_version: str
    config: dict[str, Any]
    dataset: DatasetInfo
    models: dict[str, ModelResult]
    verifier: VerifierInfo
    environment: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    skipped: tuple[SkippedPair, ...] = ()
    gate: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "evalkit_version": self.evalkit_version,
            "config": self.config,
            "dataset": {**vars(self.dataset), "n_listed": self.dataset.n_listed or self.dataset.n_pairs},
            "skipped": [vars(s).copy() for s in self.skipped],
            "models": {
                name: {
                    "label": m.label,
                    "path": m.path,
                    "sha256": m.sha256,
                    "metrics": m.metrics.to_dict(),
                    "n": m.n,
                    "samples": [_sample_dict(s) for s in m.samples],
                }
                for name, m in self.models.items()
            },
            "verifier": vars(self.verifier).copy(),
            "environment": self.environment,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            **({"comparison": self.comparison} if self.comparison is not None else {}),
            **({"gate": self.gate} if self.gate is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunResult:
        models = {}
        for name, m in d["models"].items():
            samples = tuple(
                SampleScores(
                    pair_id=s["pair_id"],
                    psnr=_psnr(s["psnr"]),
                    ssim=_float(s["ssim"]),
                    ssim_wang=None if "ssim_wang" not in s else _float(s["ssim_wang"]),
                    psnr_rgb=None if "psnr_rgb" not in s else _psnr(s["psnr_rgb"]),
                )
                for s in m.get("samples", [])
            )
            models[name] = ModelResult(
                name=name,
                label=m["label"],
                path=m["path"],
                sha256=m["sha256"],
                metrics=ModelMetrics.from_dict(m["metrics"]),
                n=int(m["n"]),
                samples=samples,
            )
        return cls(
            evalkit_version=d["evalkit_version"],
            config=d["config"],
            dataset=DatasetInfo(**d["dataset"]),
            models=models,
            verifier=VerifierInfo(**d["verifier"]),
            environment=d.get("environment", {}),
            timings=d.get("timings", {}),
            comparison=d.get("comparison"),
            skipped=tuple(SkippedPair(**s) for s in d.get("skipped", [])),
            gate=d.get("gate"),
        )


def _sample_dict(s: SampleScores) -> dict[str, Any]:
    # A per-image PSNR is null exactly when it is infinite (the output equals the ground truth).
    out: dict[str, Any] = {"pair_id": s.pair_id, "psnr": _num(s.psnr), "ssim": _num(s.ssim)}
    if s.ssim_wang is not None:
        out["ssim_wang"] = _num(s.ssim_wang)
    if s.psnr_rgb is not None:
        out["psnr_rgb"] = _num(s.psnr_rgb)
    return out


def _psnr(x: float | None) -> float:
    return math.inf if x is None else float(x)


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _float(x: float | None) -> float:
    return math.nan if x is None else float(x)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        # mkstemp makes the file private (0600); reports are for sharing, so give them the usual mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_results(result: RunResult, path: Path) -> None:
    """Write ``results.json`` (strict JSON: ``allow_nan=False``)."""
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n")


def load_results(path: Path) -> RunResult:
    """Read a ``results.json`` written by :func:`save_results`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return RunResult.from_dict(data)
    except FileNotFoundError:
        raise InputError(f"{path}: results file not found") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    except (KeyError, TypeError) as exc:
        raise InputError(f"{path}: not an evalkit results file (missing or wrong key {exc})") from None
