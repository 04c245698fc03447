"""Structural similarity of one RGB uint8 image pair.

Chain: validated uint8 pair -> global moments (or windowed moments) -> SSIM formula.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from .psnr import validate_image_pair

#: Stabilising constants of the reference (Accuracy Checker 2023.3): ``(K * L)**2`` with L = 255.
C1_REFERENCE: float = (0.01 * 255) ** 2  # 6.5025
C2_REFERENCE: float = (0.03 * 255) ** 2  # 58.5225
#: Constants of the 2020 code that produced the published table: ``(K * 2**8 - 1)**2``, an
#: operator-precedence slip for ``(K * (2**8 - 1))**2``. Kept to reproduce the published figures.
C1_REFERENCE_2020: float = (0.01 * 2**8 - 1) ** 2  # 2.4336
C2_REFERENCE_2020: float = (0.03 * 2**8 - 1) ** 2  # 44.6224
#: Gaussian window of Wang et al. (2004), as scikit-image documents it.
WANG_GAUSSIAN_SIGMA: float = 1.5
#: Side of the Gaussian window scikit-image derives from sigma 1.5 (``2 * int(3.5 * sigma + 0.5) + 1``).
WANG_WINDOW_SIZE: int = 11

SsimVariant = Literal["reference", "reference-2020", "wang"]
_GLOBAL_CONSTANTS: dict[str, tuple[float, float]] = {
    "reference": (C1_REFERENCE, C2_REFERENCE),
    "reference-2020": (C1_REFERENCE_2020, C2_REFERENCE_2020),
}
_VARIANTS: tuple[str, ...] = ("reference", "reference-2020", "wang")


def global_moments(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, float, float, float]:
    """Means, population variances and covariance of two arrays, pooled over all elements.

    Parameters
    ----------
    pred, gt : numpy.ndarray
        Arrays of the same shape (uint8 images here).

    Returns
    -------
    tuple of float
        ``(mean_pred, mean_gt, var_pred, var_gt, cov)``, all float64, ddof=0.

    Notes
    -----
    The NumPy calls mirror the reference's (``np.mean``/``np.var`` on the uint8 arrays, which accumulate in
    float64): identical results under one NumPy version, 1 ulp apart between NumPy 1.26 (the reference's)
    and 2.4 on a test photo. All channels go into one pool: this is one global window, not a per-channel
    or sliding-window SSIM.
    """
    mean_pred = float(np.mean(pred))
    mean_gt = float(np.mean(gt))
    var_pred = float(np.var(pred))
    var_gt = float(np.var(gt))
    cov = float(np.mean((pred - mean_pred) * (gt - mean_gt)))
    return mean_pred, mean_gt, var_pred, var_gt, cov


def ssim_from_moments(
    mean_x: float, mean_y: float, var_x: float, var_y: float, cov_xy: float, c1: float, c2: float
) -> float:
    """The SSIM formula ``(2 mx my + c1)(2 sxy + c2) / ((mx^2 + my^2 + c1)(vx + vy + c2))``.

    Parameters
    ----------
    mean_x, mean_y, var_x, var_y, cov_xy : float
        Moments, e.g. from :func:`global_moments`.
    c1, c2 : float
        Stabilising constants (:data:`C1_REFERENCE`, :data:`C2_REFERENCE` or the 2020 pair).

    Returns
    -------
    float
        SSIM value in [-1, 1].

    Notes
    -----
    ``c1, c2 > 0`` keep the ratio defined for constant images (zero variance); the choice of constants
    changes the value (the 2020 pair gives a different number on the same moments).
    """
    numerator = (2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)
    denominator = (mean_x**2 + mean_y**2 + c1) * (var_x + var_y + c2)
    return float(numerator / denominator)


def ssim(pred: np.ndarray, gt: np.ndarray, *, variant: SsimVariant = "reference") -> float:
    """SSIM between a predicted and a ground-truth RGB image.

    Parameters
    ----------
    pred, gt : numpy.ndarray
        H x W x 3 uint8 RGB images of the same shape.
    variant : {"reference", "reference-2020", "wang"}
        ``"reference"`` (default): one global window over the whole H x W x 3 array, all channels pooled,
        population statistics, constants :data:`C1_REFERENCE`, :data:`C2_REFERENCE` (the Accuracy Checker as
        shipped in 2023.3). ``"reference-2020"``: the same with :data:`C1_REFERENCE_2020`,
        :data:`C2_REFERENCE_2020`, the constants that produced the published table. ``"wang"``: Wang et al.'s
        windowed SSIM, ``skimage.metrics.structural_similarity(gt, pred, gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=255, channel_axis=-1)``.

    Returns
    -------
    float
        SSIM; 1.0 for identical images.

    Raises
    ------
    ValueError
        If an image is not uint8 H x W x 3, is empty, the shapes differ, ``variant`` is unknown, or (for
        ``"wang"``) an image side is shorter than the 11-pixel Gaussian window.

    Notes
    -----
    * The reference variants are *not* Wang et al.'s SSIM: a single global window measures global contrast
      and correlation only, and its values (about 0.34 in the published table) are not comparable with
      windowed SSIM values from the literature. Report ``"wang"`` as its own metric.
    * Data range is fixed at 255 through the constants; float images in [0, 1] would make the constants
      dominate, so only uint8 is accepted.
    * The reference variants are computed in float64 and are exactly symmetric in ``pred`` and ``gt``.
    """
    if variant not in _VARIANTS:
        raise ValueError(f"ssim: unknown variant {variant!r}; use one of {', '.join(map(repr, _VARIANTS))}")
    pred_arr, gt_arr = validate_image_pair("ssim", pred, gt)
    if variant == "wang":
        height, width = pred_arr.shape[:2]
        if min(height, width) < WANG_WINDOW_SIZE:
            raise ValueError(
                f"ssim: variant 'wang' needs images of at least {WANG_WINDOW_SIZE}x{WANG_WINDOW_SIZE} pixels "
                f"(its Gaussian window), got {height}x{width}; use variant='reference' for tiny images"
            )
        # imported here: loading a config (the registry) need not load scikit-image and SciPy
        from skimage.metrics import structural_similarity

        value = structural_similarity(
            gt_arr,
            pred_arr,
            gaussian_weights=True,
            sigma=WANG_GAUSSIAN_SIGMA,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=-1,
        )
        return float(value)
    c1, c2 = _GLOBAL_CONSTANTS[variant]
    return ssim_from_moments(*global_moments(pred_arr, gt_arr), c1, c2)
