"""Summaries of per-image metric values (mean and standard deviation over a dataset)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def mean_std_finite(values: Iterable[float]) -> tuple[float, float, int]:
    """Mean and population standard deviation over the finite values, plus the number of ``+inf`` values.

    Parameters
    ----------
    values : iterable of float
        Per-image metric values, e.g. PSNR in dB. ``+inf`` (identical images) is allowed.

    Returns
    -------
    mean : float
        Mean of the finite values; ``math.nan`` if there are none (empty input or all ``+inf``).
    std : float
        Standard deviation of the finite values with ``ddof=0`` (``np.std``'s default, as the reference);
        ``math.nan`` if there are no finite values.
    n_inf : int
        How many values were ``+inf`` and were left out of ``mean`` and ``std``.

    Raises
    ------
    ValueError
        If ``values`` is not one-dimensional, or contains NaN or ``-inf``.

    Notes
    -----
    PSNR is ``+inf`` for an identical pair; a plain ``np.mean`` would then report ``inf`` for the whole
    dataset (and the reference crashes on NumPy 2). Report ``n_inf`` next to the mean so that leaving those
    pairs out is visible. NaN or ``-inf`` cannot come from a valid PSNR/SSIM and indicate a bug upstream, so
    they raise instead of being dropped silently. Statistics are computed in float64.
    """
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(
            f"mean_std_finite: values must be one-dimensional, got shape {array.shape}; "
            "pass one value per image (flatten the array first)"
        )
    if np.isnan(array).any() or np.isneginf(array).any():
        raise ValueError(
            "mean_std_finite: values contain NaN or -inf, which no valid per-image metric produces; "
            "fix the metric computation upstream (only +inf, from identical images, is allowed)"
        )
    finite = array[np.isfinite(array)]
    n_inf = int(array.size - finite.size)
    if finite.size == 0:
        return math.nan, math.nan, n_inf
    return float(np.mean(finite)), float(np.std(finite)), n_inf
