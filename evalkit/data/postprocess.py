"""Model output -> uint8 RGB image at the ground truth's resolution, exactly as the reference does it."""

from __future__ import annotations

import numpy as np
from PIL import Image

from evalkit import defaults


def output_to_image(output: np.ndarray) -> np.ndarray:
    """Map a ``[1,] 3 x H x W`` tanh output in [-1, 1] to an ``H x W x 3`` uint8 RGB image.

    Notes
    -----
    ``x * 127.5 + 127.5`` is computed in float32 (the output's dtype) as two rounded steps, then
    clipped to [0, 255] and cast by **truncation**, not rounding. Float64 arithmetic or rounding moves
    values that sit on an integer boundary and changes the table.
    """
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 4:
        out = out[0]
    img = out.transpose(1, 2, 0).copy()
    img *= np.float32(defaults.OUTPUT_SCALE)
    img += np.float32(defaults.OUTPUT_SHIFT)
    return np.clip(img, 0.0, 255.0).astype(np.uint8)


def upscale(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize a uint8 RGB image to ``width x height`` with Pillow's BICUBIC (the reference's upscale).

    All four metrics are computed at the ground truth's own resolution, not at 256x256.
    """
    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))
