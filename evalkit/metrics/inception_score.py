"""Inception Score from the classifier's softmax outputs on generated images.

Chain: validated N x C probabilities -> (optional seeded splits) -> per-split mean KL(p(y|x) || p(y)) -> exp.
"""

from __future__ import annotations

import numpy as np

#: Tolerance on each row's sum: rows must be probability vectors, not logits or unnormalised scores.
ROW_SUM_TOLERANCE: float = 1e-3
#: Smoothing inside the logs, as in the reference; keeps ``0 * log(0)`` terms at 0.
DEFAULT_EPS: float = 1e-16


def _validate_probs(probs: np.ndarray) -> np.ndarray:
    """Return ``probs`` as a float64 N x C array after checking it holds softmax rows."""
    array = np.asarray(probs)
    if array.ndim != 2:
        raise ValueError(
            f"inception_score: probs must be a 2-D N x C array (one softmax row per image), got shape "
            f"{array.shape}; stack the per-image outputs with np.stack and squeeze singleton axes"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"inception_score: probs is empty (shape {array.shape}); pass at least one image")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ValueError(
            f"inception_score: probs must be a real floating-point array, got dtype {array.dtype}; "
            "pass the classifier's softmax output as float32/float64"
        )
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(
            "inception_score: probs contains NaN or inf; check the classifier output for those images"
        )
    if (array < 0).any():
        raise ValueError(
            "inception_score: probs has negative entries; pass softmax probabilities, not logits"
        )
    row_error = np.abs(array.sum(axis=1) - 1.0)
    if (row_error > ROW_SUM_TOLERANCE).any():
        worst = int(np.argmax(row_error))
        raise ValueError(
            f"inception_score: probs rows must sum to 1 (within {ROW_SUM_TOLERANCE:g}), row {worst} sums to "
            f"{array[worst].sum():.6g}; pass softmax probabilities, not logits"
        )
    return array


def mean_kl_divergence(probs: np.ndarray, *, eps: float = DEFAULT_EPS) -> float:
    """Mean over rows of ``KL(p_i || p_mean)`` with ``p_mean`` the column mean of ``probs``.

    Parameters
    ----------
    probs : numpy.ndarray
        N x C float64 probability rows (already validated).
    eps : float
        Added inside both logarithms.

    Returns
    -------
    float
        ``mean_i sum_j p_ij * (log(p_ij + eps) - log(pm_j + eps))``, in nats.

    Notes
    -----
    This is the mutual information between image and predicted class; it lies in ``[0, log C]`` up to
    round-off and the tiny bias from ``eps``.
    """
    marginal = probs.mean(axis=0)
    kl = probs * (np.log(probs + eps) - np.log(marginal + eps))
    return float(np.mean(kl.sum(axis=1)))


def split_scores(probs: np.ndarray, *, splits: int, eps: float, seed: int) -> np.ndarray:
    """Inception Score of each split of ``probs``.

    Parameters
    ----------
    probs : numpy.ndarray
        N x C float64 probability rows (already validated).
    splits : int
        Number of splits, ``1 <= splits <= N``.
    eps : float
        See :func:`mean_kl_divergence`.
    seed : int
        Seed of ``np.random.default_rng`` for the row shuffle; unused when ``splits == 1``.

    Returns
    -------
    numpy.ndarray
        ``splits`` float64 scores.

    Notes
    -----
    With one split the rows are used in the given order (the reference). With several, the rows are
    shuffled with ``np.random.default_rng(seed).permutation(N)`` before ``np.array_split``, so that splits do
    not follow the dataset order (e.g. scene categories); the result depends on ``seed``.
    """
    if splits == 1:
        return np.array([np.exp(mean_kl_divergence(probs, eps=eps))])
    order = np.random.default_rng(seed).permutation(probs.shape[0])
    parts = np.array_split(probs[order], splits)
    return np.array([np.exp(mean_kl_divergence(part, eps=eps)) for part in parts])


def inception_score(
    probs: np.ndarray, *, splits: int = 1, eps: float = DEFAULT_EPS, seed: int = 0
) -> tuple[float, float]:
    """Inception Score (mean and std over splits) of generated images.

    Parameters
    ----------
    probs : numpy.ndarray
        N x C softmax rows of the verifier (Inception-V3) on the generated images, used as given: no
        renormalisation, background class included (C = 1001 for the TF-slim model). Any float dtype.
    splits : int
        Number of splits. ``1`` (default) is the reference: one score over all images, std 0.0.
    eps : float
        Added inside the logarithms, 1e-16 as in the reference.
    seed : int
        Seed for the row shuffle when ``splits > 1``.

    Returns
    -------
    mean : float
        Mean of the per-split scores (the score itself for ``splits=1``). Higher is better; in [1, C].
    std : float
        Population std (ddof=0) of the per-split scores; 0.0 for ``splits=1``.

    Raises
    ------
    ValueError
        If ``probs`` is not a finite non-negative 2-D array whose rows sum to 1 (within 1e-3), or
        ``splits`` is not an integer in ``[1, N]``.

    Notes
    -----
    * Pass probabilities, not logits: a row that does not sum to 1 is rejected rather than softmaxed,
      because renormalising (or dropping the background class) changes the score.
    * Computed in float64; the reference uses float32 (about 2e-6 relative difference at N=2000).
    * Scores with different ``splits`` are not comparable: the usual 10-split IS is lower than the 1-split
      score because each split estimates the class marginal from fewer images.
    """
    array = _validate_probs(probs)
    n = array.shape[0]
    if isinstance(splits, bool) or not isinstance(splits, (int, np.integer)) or not 1 <= splits <= n:
        raise ValueError(
            f"inception_score: splits must be an integer between 1 and the number of images ({n}), got "
            f"{splits!r}; use splits=1 for the reference score"
        )
    scores = split_scores(array, splits=int(splits), eps=eps, seed=seed)
    if splits == 1:
        return float(scores[0]), 0.0
    return float(np.mean(scores)), float(np.std(scores))
