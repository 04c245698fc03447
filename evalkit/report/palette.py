"""Colour tables: the ADE20k (SceneParsing) palette for label maps, and a perceptual map for differences.

The standard 150-class palette of the ADE20k SceneParsing benchmark (CSAILVision's ``color150``, as also
shipped by MMSegmentation), with label value 0 ("other", not a class) in black in front: value ``v`` of an
ADE20k annotation PNG is drawn in ``ADE20K_PALETTE[v]``.

:data:`DIFFERENCE_MAP` draws magnitudes (the gallery's difference images): matplotlib's perceptually uniform
``inferno`` map (black -> purple -> orange -> pale yellow), sampled at 17 evenly spaced points and linearly
interpolated to 256 entries, so evalkit needs no matplotlib for it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ADE20K_PALETTE", "DIFFERENCE_MAP", "colour_magnitudes", "colourise"]

# fmt: off
_COLOURS = (
    (0, 0, 0), (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3),
    (120, 120, 80), (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7), (224, 5, 255),
    (235, 255, 7), (150, 5, 61), (120, 120, 70), (8, 255, 51), (255, 6, 82), (143, 255, 140),
    (204, 255, 4), (255, 51, 7), (204, 70, 3), (0, 102, 200), (61, 230, 250), (255, 6, 51),
    (11, 102, 255), (255, 7, 71), (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92),
    (112, 9, 255), (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10),
    (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7), (255, 122, 8),
    (0, 255, 20), (255, 8, 41), (255, 5, 153), (6, 51, 255), (235, 12, 255), (160, 150, 20),
    (0, 163, 255), (140, 140, 140), (250, 10, 15), (20, 255, 0), (31, 255, 0), (255, 31, 0),
    (255, 224, 0), (153, 255, 0), (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255),
    (31, 0, 255), (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112),
    (0, 255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0), (0, 143, 255),
    (51, 255, 0), (0, 82, 255), (0, 255, 41), (0, 255, 173), (10, 0, 255), (173, 255, 0),
    (0, 255, 153), (255, 92, 0), (255, 0, 255), (255, 0, 245), (255, 0, 102), (255, 173, 0),
    (255, 0, 20), (255, 184, 184), (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204),
    (0, 255, 194), (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255),
    (0, 122, 255), (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0), (143, 255, 0),
    (82, 0, 255), (163, 255, 0), (255, 235, 0), (8, 184, 170), (133, 0, 255), (0, 255, 92),
    (184, 0, 255), (255, 0, 31), (0, 184, 255), (0, 214, 255), (255, 0, 112), (92, 255, 0),
    (0, 224, 255), (112, 224, 255), (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0),
    (255, 0, 163), (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235),
    (245, 0, 255), (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0), (0, 204, 255),
    (20, 0, 255), (255, 255, 0), (0, 153, 255), (0, 41, 255), (0, 255, 204), (41, 0, 255),
    (41, 255, 0), (173, 0, 255), (0, 245, 255), (71, 0, 255), (122, 0, 255), (0, 255, 184),
    (0, 92, 255), (184, 255, 0), (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0),
    (92, 0, 255),
)
# fmt: on

#: 151 x 3 uint8: row ``v`` is the RGB colour of label value ``v`` (0 = black, 1..150 the classes).
ADE20K_PALETTE: np.ndarray = np.array(_COLOURS, dtype=np.uint8)
ADE20K_PALETTE.setflags(write=False)  # a shared constant: nobody may recolour it for everyone else


def colourise(labels: np.ndarray) -> np.ndarray:
    """Colour an ADE20k label map.

    Parameters
    ----------
    labels : np.ndarray
        H x W integer label values; values above 150 (not ADE20k labels) are drawn white so they stand out.

    Returns
    -------
    np.ndarray
        H x W x 3 uint8 RGB image.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected an H x W label map, got shape {labels.shape}")
    # Map through a 256-entry table so any uint8 value indexes safely; the extra entries are white.
    table = np.full((256, 3), 255, dtype=np.uint8)
    table[: len(ADE20K_PALETTE)] = ADE20K_PALETTE
    return table[np.clip(labels.astype(np.int64), 0, 255)]


# matplotlib's inferno at 0, 1/16, ..., 1 (rounded to 8 bits).
_INFERNO_ANCHORS = (
    (0, 0, 4), (11, 7, 36), (33, 12, 74), (61, 9, 101), (87, 16, 110), (113, 25, 110), (138, 34, 106),
    (163, 44, 97), (188, 55, 84), (210, 70, 68), (228, 90, 49), (241, 115, 29), (249, 142, 9),
    (252, 172, 17), (249, 203, 53), (242, 234, 105), (252, 255, 164),
)


def _interpolate(anchors: tuple[tuple[int, int, int], ...], size: int) -> np.ndarray:
    points = np.linspace(0.0, 1.0, len(anchors))
    where = np.linspace(0.0, 1.0, size)
    table = np.array(anchors, dtype=np.float64)
    channels = [np.interp(where, points, table[:, c]) for c in range(3)]
    return np.stack(channels, axis=1).round().astype(np.uint8)


#: 256 x 3 uint8: row ``i`` is the colour of magnitude ``i / 255`` of full scale (0 black, 255 pale yellow).
DIFFERENCE_MAP: np.ndarray = _interpolate(_INFERNO_ANCHORS, 256)
DIFFERENCE_MAP.setflags(write=False)


def colour_magnitudes(values: np.ndarray, full_scale: float) -> np.ndarray:
    """Colour non-negative magnitudes with :data:`DIFFERENCE_MAP`.

    Parameters
    ----------
    values : np.ndarray
        H x W magnitudes (e.g. grey levels of difference).
    full_scale : float
        The magnitude drawn in the map's top colour; larger values are drawn in it too. Must be positive.

    Returns
    -------
    np.ndarray
        H x W x 3 uint8 RGB image: ``values / full_scale`` of the way up the map, rounded to the nearest of
        its 256 entries.
    """
    if not full_scale > 0:
        raise ValueError(f"full_scale must be positive, got {full_scale}")
    levels = np.clip(np.asarray(values, dtype=np.float64) / full_scale, 0.0, 1.0) * 255.0
    return DIFFERENCE_MAP[np.rint(levels).astype(np.intp)]
