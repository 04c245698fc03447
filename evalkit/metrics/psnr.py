"""Peak signal-to-noise ratio of one RGB uint8 image pair.

Chain: validated uint8 pair -> per-pixel error (luma or RGB) -> mean squared error -> dB.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

#: BT.601 luma weights on [0, 1] inputs, scaled by 256, as used by the reference (R, G, B order).
LUMA_WEIGHTS_BT601: tuple[float, float, float] = (65.738, 129.057, 25.064)
#: Divisor that goes with :data:`LUMA_WEIGHTS_BT601`.
LUMA_SCALE: float = 256.0
#: Peak value of 8-bit images.
DATA_RANGE_UINT8: float = 255.0

PsnrVariant = Literal["reference", "rgb"]
_VARIANTS: tuple[str, ...] = ("reference", "rgb")


def validate_image_pair(func: str, pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return ``pred, gt`` as arrays after checking they are equal-shape H x W x 3 uint8 images.

    Shared by :mod:`evalkit.metrics.ssim`; ``func`` names the caller in the messages.
    """
    arrays = []
    for name, image in (("pred", pred), ("gt", gt)):
        array = np.asarray(image)
        if array.dtype != np.uint8:
            raise ValueError(
                f"{func}: {name} must be a uint8 RGB image (values 0..255), got dtype {array.dtype}; "
                "convert it to uint8 the way your pipeline writes images (e.g. clip to [0, 255] then cast)"
            )
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(
                f"{func}: {name} must be an H x W x 3 RGB image with channels last, got shape {array.shape}; "
                "transpose CHW to HWC and convert grayscale to RGB first"
            )
        if array.shape[0] == 0 or array.shape[1] == 0:
            raise ValueError(f"{func}: {name} is empty (shape {array.shape}); pass a non-empty image")
        arrays.append(array)
    pred_arr, gt_arr = arrays
    if pred_arr.shape != gt_arr.shape:
        raise ValueError(
            f"{func}: pred and gt must have the same shape, got {pred_arr.shape} and {gt_arr.shape}; "
            "resize the prediction to the ground truth first"
        )
    return pred_arr, gt_arr


def luma_difference(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per-pixel luma difference ``dY`` of two RGB uint8 images, on the [0, 1] scale.

    Parameters
    ----------
    pred, gt : numpy.ndarray
        H x W x 3 uint8 RGB images of the same shape (not validated here; see :func:`psnr`).

    Returns
    -------
    numpy.ndarray
        H x W float64 array ``(65.738 dR + 129.057 dG + 25.064 dB) / 256`` with ``d = (pred - gt) / 255``.

    Notes
    -----
    The difference is taken in float64 *before* the luma transform, as the reference does: converting each
    image to Y and rounding it to 8 bits first (MATLAB ``rgb2ycbcr`` style) gives a different number. The
    luma offset 16/255 cancels in the difference, so it is not applied.
    """
    diff = (pred.astype(np.float64) - gt.astype(np.float64)) / DATA_RANGE_UINT8
    w_r, w_g, w_b = LUMA_WEIGHTS_BT601
    # Same operation order as the reference, so the results agree to the last bit.
    return (diff[:, :, 0] * w_r + diff[:, :, 1] * w_g + diff[:, :, 2] * w_b) / LUMA_SCALE


def mse_to_psnr(mse: float, data_range: float) -> float:
    """Convert a mean squared error to PSNR in dB; ``mse == 0`` gives ``math.inf``.

    Parameters
    ----------
    mse : float
        Mean squared error, >= 0, on the scale where the peak value is ``data_range``.
    data_range : float
        Peak value (1.0 for [0, 1] data, 255.0 for uint8 data).

    Returns
    -------
    float
        ``10 * log10(data_range**2 / mse)``.

    Notes
    -----
    Identical images give ``mse == 0``; this returns ``math.inf`` without a division warning. Average such
    values with :func:`evalkit.metrics.mean_std_finite`, not ``np.mean`` (which would give inf).
    """
    if mse == 0.0:
        return math.inf
    if data_range == 1.0:
        # The reference's own expression, so that the reference variant agrees to the last bit.
        return -10.0 * math.log10(mse)
    # scikit-image's expression, so the "rgb" variant matches peak_signal_noise_ratio exactly.
    return float(10 * np.log10(data_range**2 / mse))


def psnr(pred: np.ndarray, gt: np.ndarray, *, variant: PsnrVariant = "reference") -> float:
    """PSNR in dB between a predicted and a ground-truth RGB image.

    Parameters
    ----------
    pred, gt : numpy.ndarray
        H x W x 3 uint8 RGB images of the same shape. The metric is symmetric in its arguments.
    variant : {"reference", "rgb"}
        ``"reference"`` (default): PSNR of the BT.601 luma difference with peak 1, as in the published
        CoCosNet table (border crop 0). ``"rgb"``: standard PSNR over all R, G, B values with data range 255,
        equal to ``skimage.metrics.peak_signal_noise_ratio(gt, pred, data_range=255)``.

    Returns
    -------
    float
        PSNR in dB; ``math.inf`` for identical images.

    Raises
    ------
    ValueError
        If an image is not uint8 H x W x 3, is empty, the shapes differ, or ``variant`` is unknown.

    Notes
    -----
    Pitfalls this function guards against:

    * Data range: inputs must be uint8 0..255. A float image in [0, 1] or [-1, 1] (a raw model output) would
      silently give a meaningless number, so non-uint8 input is rejected rather than guessed at.
    * Variant: the reference's luma PSNR is higher than RGB PSNR on the same pair (by about 1.5 dB for blur
      or misalignment and 4.7 dB for independent per-channel noise on scikit-image's test photos); compare
      numbers only within one variant.
    * Identical images give ``math.inf`` (no warning, no exception). The reference crashes there on NumPy 2;
      summarise with :func:`evalkit.metrics.mean_std_finite`.
    * Channel order must be RGB for ``"reference"``: the luma weights are not symmetric in R and B.
    """
    if variant not in _VARIANTS:
        raise ValueError(f"psnr: unknown variant {variant!r}; use one of {', '.join(map(repr, _VARIANTS))}")
    pred_arr, gt_arr = validate_image_pair("psnr", pred, gt)
    if variant == "reference":
        d_y = luma_difference(pred_arr, gt_arr)
        return mse_to_psnr(float(np.mean(d_y**2)), 1.0)
    diff = gt_arr.astype(np.float64) - pred_arr.astype(np.float64)
    return mse_to_psnr(float(np.mean(diff**2)), DATA_RANGE_UINT8)
