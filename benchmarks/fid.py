"""Time and compare the FID routes of ``evalkit.metrics.fid`` on synthetic Inception-like features.

Usage: ``python benchmarks/fid.py [--n 2000] [--dim 2048] [--seed 0] [--repeats 3]``

The features imitate Inception-V3 pool features: non-negative (ReLU-like), correlated through a low-rank
latent with a decaying spectrum, float32. The second set is a shifted and rescaled version of the same
generator, as a generated-vs-real pair would be. Each route is timed end to end from raw features (best of
``--repeats`` runs with ``time.perf_counter``); the reference ``sqrtm`` route is the baseline.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from evalkit.metrics import feature_statistics, fid

LATENT_DIM = 256
T = TypeVar("T")


def synthetic_features(
    n: int, mixing: np.ndarray, rng: np.random.Generator, shift: float, scale: float
) -> np.ndarray:
    """N x dim float32 ReLU features driven by a correlated latent with a power-law spectrum."""
    latent_dim, dim = mixing.shape
    # Decaying latent scales give the long-tailed covariance spectrum seen in real pool features.
    spectrum = np.arange(1, latent_dim + 1) ** -0.75
    latent = rng.standard_normal((n, latent_dim)) * spectrum
    noise = 0.05 * rng.standard_normal((n, dim))
    pre_activation = scale * (latent @ mixing * 4.0 + noise) + 0.2 + shift
    return np.maximum(pre_activation, 0.0).astype(np.float32)


def best_time(func: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Best wall time over ``repeats`` calls (at least one), and the value of the last call."""
    timings = []
    for _ in range(max(repeats, 1)):
        start = time.perf_counter()
        value = func()
        timings.append(time.perf_counter() - start)
    return min(timings), value


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000, help="images per set (default 2000)")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension (default 2048)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic features (default 0)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per route, best kept (default 3)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    latent_dim = min(LATENT_DIM, args.dim)
    mixing = rng.standard_normal((latent_dim, args.dim)) / np.sqrt(latent_dim)
    # The "generated" set shares most of the real set's structure, as a reasonable model's outputs would.
    mixing_generated = mixing + 0.3 * rng.standard_normal(mixing.shape) / np.sqrt(latent_dim)
    real = synthetic_features(args.n, mixing, rng, shift=0.0, scale=1.0)
    generated = synthetic_features(args.n, mixing_generated, rng, shift=0.05, scale=1.1)
    auto_route = "gram" if args.n <= args.dim else "eigh"
    print(f"features: 2 x {args.n} x {args.dim} float32, seed {args.seed}; auto -> {auto_route}")

    statistics_seconds, _ = best_time(lambda: (feature_statistics(real), feature_statistics(generated)), 1)
    print(f"feature_statistics of both sets (inside eigh and sqrtm times): {statistics_seconds:.3f} s")
    results: dict[str, tuple[float, float]] = {}
    for route in ("auto", "gram", "eigh", "sqrtm"):
        results[route] = best_time(lambda route=route: fid(real, generated, method=route), args.repeats)
        seconds, value = results[route]
        print(f"{route:>6}: {seconds:8.3f} s  FID = {value:.10f}", flush=True)

    base_seconds, base_value = results["sqrtm"]
    for route in ("auto", "gram", "eigh"):
        seconds, value = results[route]
        print(
            f"sqrtm / {route:<5}: {base_seconds / seconds:6.1f}x faster; "
            f"relative difference vs sqrtm {abs(value - base_value) / abs(base_value):.2e}"
        )
    _, gram_value = results["gram"]
    _, eigh_value = results["eigh"]
    print(f"relative difference gram vs eigh {abs(gram_value - eigh_value) / abs(eigh_value):.2e}")


if __name__ == "__main__":
    main()
