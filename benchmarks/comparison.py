"""Time ``evalkit.stats.comparison.set_deltas`` (IS/FID/KID bootstrap) against a naive resampling loop.

Usage: ``python benchmarks/comparison.py [--n 2000] [--dim 2048] [--resamples 200] [--classes 1001]
[--naive 3] [--seed 0]``

Synthetic data imitate a real comparison: ground-truth features and two models' features from the same
Inception-like generator (non-negative, correlated through a low-rank latent with a decaying spectrum,
float32), the models sharing per-pair structure with each other, and softmax rows over ``--classes``
classes. Timings (``time.perf_counter``, one run each; the load average is printed because other
processes on a shared machine slow multi-threaded BLAS a lot: try ``OPENBLAS_NUM_THREADS=1`` there):

* ``set_deltas`` with ``n_resamples=0`` (validation, the metrics on all pairs, the precomputed Grams and
  kernels) and with ``--resamples``; the difference divided by the resamples is the per-resample cost;
* the naive route on ``--naive`` resamples: ``fid``, ``kid(subsets=1, subset_size=N)`` and
  ``inception_score`` of both models on the explicitly resampled arrays, extrapolated to ``--resamples``,
  and the largest relative difference between its values and the fast route's (plus one exact
  ``fid(..., method="eigh")`` in float64 as the yardstick);
* ``set_deltas`` at the demo's size, 32 pairs.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from evalkit.metrics import fid, inception_score, kid
from evalkit.stats.comparison import SetDeltaSamples, set_delta_samples, set_deltas

LATENT_DIM = 256
LOGIT_STD = 2.45


def synthetic_features(
    latent: np.ndarray, mixing: np.ndarray, rng: np.random.Generator, shift: float
) -> np.ndarray:
    """N x dim float32 ReLU features driven by the given per-pair latent."""
    noise = 0.05 * rng.standard_normal((latent.shape[0], mixing.shape[1]))
    return np.maximum(latent @ mixing * 4.0 + noise + 0.2 + shift, 0.0).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="pairs (default 2000)")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension (default 2048)")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (default 200)")
    parser.add_argument("--classes", type=int, default=1001, help="softmax classes (default 1001)")
    parser.add_argument("--naive", type=int, default=3, help="resamples timed on the naive route (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default 0)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    latent_dim = min(LATENT_DIM, args.dim)
    mixing = rng.standard_normal((latent_dim, args.dim)) / np.sqrt(latent_dim)
    spectrum = np.arange(1, latent_dim + 1) ** -0.75
    latent_gt = rng.standard_normal((args.n, latent_dim)) * spectrum
    # Both models reproduce the ground truth's latent imperfectly, in correlated ways (same inputs).
    latent_model = latent_gt + 0.5 * rng.standard_normal(latent_gt.shape) * spectrum
    gt = synthetic_features(latent_gt, mixing, rng, shift=0.0)
    ref = synthetic_features(latent_model, mixing, rng, shift=0.02)
    cand = synthetic_features(
        latent_model + 0.05 * rng.standard_normal(latent_gt.shape) * spectrum, mixing, rng, 0.03
    )
    # Gaussian logits with std 2.45 give IS ~ 13 over 1001 classes, like CoCosNet's outputs.
    logits = rng.normal(0.0, LOGIT_STD, (args.n, args.classes))
    ref_probs = softmax(logits)
    cand_probs = softmax(logits + 0.1 * rng.standard_normal(logits.shape))
    print(
        f"data: N = {args.n} pairs, d = {args.dim} float32 features, {args.classes} classes; "
        f"{args.resamples} resamples"
    )

    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes share the cores)")

    start = time.perf_counter()
    set_deltas(gt, ref, cand, ref_probs, cand_probs, n_resamples=0)
    fixed = time.perf_counter() - start
    start = time.perf_counter()
    results = set_deltas(gt, ref, cand, ref_probs, cand_probs, n_resamples=args.resamples)
    total = time.perf_counter() - start
    per_resample = (total - fixed) / max(args.resamples, 1)
    print(f"set_deltas, n_resamples=0:    {fixed:8.2f} s (validation, metrics on all pairs, precompute)")
    print(f"set_deltas, n_resamples={args.resamples:<5}{total:8.2f} s")
    print(f"per resample (both models, IS + FID + KID): {per_resample * 1e3:.1f} ms")
    for delta in results.values():
        print("  " + delta.sentence("candidate", "reference"))

    naive_count = min(args.naive, args.resamples)
    if naive_count:
        samples = set_delta_samples(gt, ref, cand, ref_probs, cand_probs, n_resamples=naive_count)
        for key in ("is", "fid", "kid"):
            print(
                f"  {key.upper()}: delta on all pairs {results[key].delta:.6g}, mean of the first "
                f"{naive_count} resampled deltas {np.mean(samples.deltas(key)):.6g}"
            )
        naive_timing(args, samples, per_resample, fixed, total, (gt, ref, cand, ref_probs, cand_probs))

    demo = min(32, args.n)
    start = time.perf_counter()
    set_deltas(gt[:demo], ref[:demo], cand[:demo], ref_probs[:demo], cand_probs[:demo])
    print(f"demo size: set_deltas on {demo} pairs, 200 resamples: {time.perf_counter() - start:.3f} s")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def naive_timing(
    args: argparse.Namespace,
    samples: SetDeltaSamples,
    per_resample: float,
    fixed: float,
    total: float,
    data: tuple[np.ndarray, ...],
) -> None:
    """Time the metric functions on explicitly resampled arrays; compare their values with the fast route."""
    gt, ref, cand, ref_probs, cand_probs = data
    worst = {"is": 0.0, "fid": 0.0, "kid": 0.0}
    start = time.perf_counter()
    for b, rows in enumerate(samples.indices):
        for values, features, probs in (
            (samples.reference, ref, ref_probs),
            (samples.candidate, cand, cand_probs),
        ):
            naive = {
                "fid": fid(gt[rows], features[rows]),
                "kid": kid(gt[rows], features[rows], subsets=1, subset_size=args.n)[0],
                "is": inception_score(probs[rows])[0],
            }
            for key, value in naive.items():
                worst[key] = max(worst[key], abs(values[key][b] - value) / abs(value))
    naive_per_resample = (time.perf_counter() - start) / len(samples.indices)
    naive_total = naive_per_resample * args.resamples
    print(
        f"naive loop (fid, kid, inception_score on resampled arrays): {naive_per_resample:.2f} s per "
        f"resample (measured on {len(samples.indices)}), "
        f"extrapolated {naive_total:.1f} s for {args.resamples}"
    )
    print(
        f"naive / fast: {naive_per_resample / per_resample:.1f}x per resample, "
        f"{(naive_total + fixed) / total:.1f}x end to end"
    )
    print(
        "largest relative difference fast vs naive (default fid route, float32 features): "
        + ", ".join(f"{key.upper()} {value:.1e}" for key, value in worst.items())
    )
    # The default fid route on N <= d duplicates-laden arrays and the float32 mean both cost accuracy; the
    # float64 pivoted-Cholesky route is the exact yardstick.
    rows = samples.indices[0]
    start = time.perf_counter()
    exact = fid(gt[rows].astype(np.float64), ref[rows].astype(np.float64), method="eigh")
    seconds = time.perf_counter() - start
    print(
        f"resample 0, reference FID: fast {samples.reference['fid'][0]:.12g}, fid(float64, method='eigh') "
        f"{exact:.12g} ({seconds:.1f} s): relative difference "
        f"{abs(samples.reference['fid'][0] - exact) / exact:.1e}"
    )


if __name__ == "__main__":
    main()
