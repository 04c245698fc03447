"""Model inputs from decoded images, exactly as the reference prepares them.

Masks: ``cv2.resize`` to 256x256 with ``INTER_NEAREST`` (aspect ratio not kept), one-hot with 151 channels.
Exemplar: ``cv2.resize`` to 256x256 with ``INTER_CUBIC`` on uint8 (saturated), then the model's own
colour order and ``(x - mean) / scale``. Verifier: RGB -> BGR, ``cv2.resize`` to 299x299 bilinear.
"""

from __future__ import annotations

import cv2
import numpy as np

from evalkit import defaults
from evalkit.config import InputConvention


def resize_label_map(labels: np.ndarray, size: int = defaults.MODEL_SIZE) -> np.ndarray:
    """Nearest-neighbour resize of an ``H x W`` label map to ``size x size``.

    Notes
    -----
    OpenCV's ``INTER_NEAREST`` picks different source pixels than Pillow's NEAREST; the reference
    uses OpenCV, and so does evalkit.
    """
    return cv2.resize(labels, (size, size), interpolation=cv2.INTER_NEAREST)


def one_hot(labels: np.ndarray, num_classes: int = defaults.NUM_CLASSES) -> np.ndarray:
    """One-hot encode an ``H x W`` label map into a ``num_classes x H x W`` float32 array.

    Value ``v`` goes to channel ``v`` (no shift: 0 = "other" is channel 0).
    """
    classes = np.arange(num_classes, dtype=labels.dtype).reshape(-1, 1, 1)
    return (labels[np.newaxis] == classes).astype(np.float32)


def resize_exemplar(bgr: np.ndarray, size: int = defaults.MODEL_SIZE) -> np.ndarray:
    """Bicubic resize of a uint8 BGR exemplar to ``size x size``; OpenCV saturates the result to uint8."""
    return cv2.resize(bgr, (size, size), interpolation=cv2.INTER_CUBIC)


def image_tensor(bgr: np.ndarray, convention: InputConvention, layout: str = "NCHW") -> np.ndarray:
    """A uint8 BGR ``H x W x 3`` image as a batch-1 float32 tensor in the model's convention.

    The channel order is applied first, then ``(x - mean) / scale`` in float32.
    """
    pixels = bgr[..., ::-1] if convention.color_order == "RGB" else bgr
    x = pixels.astype(np.float32)
    if convention.mean != 0.0 or convention.scale != 1.0:
        x = (x - np.float32(convention.mean)) / np.float32(convention.scale)
    x = x[np.newaxis]
    if layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(x)


#: The verifier's resize (the reference's ``cv2.resize`` default, bilinear).
VERIFIER_INTERPOLATION = cv2.INTER_LINEAR


def verifier_image(
    rgb: np.ndarray, size: int = defaults.VERIFIER_SIZE, interpolation: int = VERIFIER_INTERPOLATION
) -> np.ndarray:
    """An RGB uint8 image at GT resolution -> BGR uint8 ``size x size`` (``cv2.resize``, default bilinear)."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return cv2.resize(bgr, (size, size), interpolation=interpolation)
