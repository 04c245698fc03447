"""Pure metric functions: arrays in, numbers out. Nothing here imports the rest of evalkit."""

from __future__ import annotations

from .fid import feature_statistics, fid, frechet_distance
from .inception_score import inception_score
from .kid import kid
from .psnr import psnr
from .ssim import ssim
from .summary import mean_std_finite

__all__ = [
    "feature_statistics",
    "fid",
    "frechet_distance",
    "inception_score",
    "kid",
    "mean_std_finite",
    "psnr",
    "ssim",
]
