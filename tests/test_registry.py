"""The metric registry is the one list of metrics: its facts, its functions, and nobody else's copy."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from skimage import data as skdata

from evalkit.metrics import fid, inception_score, kid, psnr, ssim
from evalkit.metrics.registry import (
    METRICS,
    METRICS_BY_KEY,
    MetricSettings,
    SetInputs,
    metric,
    per_image_metrics,
    result_keys,
    set_metrics,
)

PACKAGE = Path(__file__).resolve().parent.parent / "evalkit"

#: Where a metric's key may be written besides the registry: the module of its pure function, and the
#: paired bootstrap of the set metrics, which computes IS, FID and KID jointly from shared Gram matrices.
OWN_MODULES = {
    "psnr": {"metrics/psnr.py"},
    "psnr_rgb": {"metrics/psnr.py"},
    "ssim": {"metrics/ssim.py"},
    "ssim_wang": {"metrics/ssim.py"},
    "is": {"metrics/inception_score.py", "stats/comparison.py"},
    "is_10": {"metrics/inception_score.py"},
    "fid": {"metrics/fid.py", "stats/comparison.py"},
    "kid": {"metrics/kid.py", "stats/comparison.py"},
}


def test_keys_are_unique_and_every_statistic_belongs_to_one_metric() -> None:
    keys = [m.key for m in METRICS]
    assert len(set(keys)) == len(keys)
    stats = [k for m in METRICS for k in (m.std_key, m.inf_count_key) if k]
    assert len(set(stats)) == len(stats) and not set(stats) & set(keys)
    assert sorted(result_keys(True)) == sorted(keys + stats)
    assert set(result_keys(False)) < set(result_keys(True))
    with pytest.raises(KeyError, match="unknown metric 'lpips'; valid: psnr, ssim"):
        metric("lpips")


def test_the_reference_table_is_the_published_one() -> None:
    reference = [m for m in METRICS if m.profile == "reference"]
    assert [(m.key, m.higher_is_better, m.kind) for m in reference] == [
        ("psnr", True, "per_image"),
        ("ssim", True, "per_image"),
        ("is", True, "set"),
        ("fid", False, "set"),
    ]
    assert [m.key for m in per_image_metrics(False)] == ["psnr", "ssim"]
    assert [m.key for m in set_metrics(False)] == ["is", "fid"]
    assert all(not m.seeded for m in reference)


@pytest.fixture(scope="module")
def photo_pair() -> tuple[np.ndarray, np.ndarray]:
    """A real photo and a slightly degraded copy (uint8 RGB)."""
    image = skdata.astronaut()[::2, ::2]
    rng = np.random.default_rng(0)
    noisy = np.clip(image.astype(np.int16) + rng.integers(-12, 13, image.shape), 0, 255).astype(np.uint8)
    return noisy, image


def test_per_image_entries_call_their_variant(photo_pair: tuple[np.ndarray, np.ndarray]) -> None:
    image, gt = photo_pair
    settings = MetricSettings(ssim_constants="reference-2020")
    got = {m.key: m.compute(image, gt, settings) for m in per_image_metrics(True)}
    assert {k: got[k] for k in ("psnr", "ssim", "ssim_wang", "psnr_rgb")} == {
        "psnr": psnr(image, gt),
        "ssim": ssim(image, gt, variant="reference-2020"),
        "ssim_wang": ssim(image, gt, variant="wang"),
        "psnr_rgb": psnr(image, gt, variant="rgb"),
    }


def test_set_entries_call_their_variant() -> None:
    rng = np.random.default_rng(1)
    gt, gen = rng.normal(size=(40, 8)), rng.normal(0.3, 1.0, size=(40, 8))
    probs = rng.dirichlet(np.ones(5), size=40)
    inputs = SetInputs(gt_features=gt, features=gen, probabilities=probs)
    settings = MetricSettings(fid_method="sqrtm", seed=3)
    got = {m.key: m.compute(inputs, settings) for m in set_metrics(True)}  # a dict: new entries may follow
    assert got["is"] == inception_score(probs)
    assert got["fid"][0] == fid(gt, gen, method="sqrtm") and math.isnan(got["fid"][1])
    assert got["is_10"] == inception_score(probs, splits=10, seed=3)
    assert got["kid"] == kid(gt, gen, seed=3)
    few = SetInputs(gt_features=gt[:9], features=gen[:9], probabilities=probs[:9])
    assert all(math.isnan(v) for v in METRICS_BY_KEY["is_10"].compute(few, settings))  # N < splits: n/a


def test_no_module_keeps_its_own_list_of_metric_keys() -> None:
    """Issue 11: a metric's key string appears in the registry (and at most its own module), nowhere else."""
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in ("metrics/registry.py", "metrics/__init__.py"):  # the latter's __all__ names functions
            continue
        text = path.read_text(encoding="utf-8")
        for m in METRICS:
            for key in (m.key, m.std_key, m.inf_count_key):
                if key is None or rel in OWN_MODULES.get(m.key, set()):
                    continue
                for match in re.finditer(rf"""(["']){re.escape(key)}\1""", text):
                    line = text.count("\n", 0, match.start()) + 1
                    offenders.append(f"{rel}:{line}: {match.group(0)}")
    assert not offenders, "metric keys written outside the registry:\n" + "\n".join(offenders)
