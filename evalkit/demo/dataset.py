"""A deterministic synthetic data set with ADE20k's layout and CoCosNet's pairs file.

ADE20k cannot be downloaded here. This writes a tree that evalkit (and the reference tool) read exactly as the
real one::

    directory/
        ade20k_ref_test.txt                      ADE_val_X.jpg,ADE_train_Y.jpg,ADE_train_Z.jpg per line
        .evalkit-synthetic.json                  stamp: parameters and SHA-256 of every file
        ADEChallengeData2016/
            images/validation/ADE_val_%08d.jpg   ground truth ("what the mask looks like")
            images/training/ADE_train_%08d.jpg   exemplars
            annotations/validation/*.png         input masks (8-bit gray, 0..150)
            annotations/training/*.png           exemplar masks

Masks are warped Voronoi cells, each cell a class; a validation mask and its exemplar's mask are drawn from
the same "scene" (a handful of classes), so they share most classes but not all: the translation model meets
both present and absent classes. Images paint each class with a base colour (one palette per seed, jittered
per image) plus a lighting gradient, a smooth texture and fine grain, then soften the edges, so they look
roughly photographic. As in the real pairs file only field 2 is an exemplar; field 3 names a training image
that does not exist. Some pairs always hold the extreme labels 0 and 150, and some ground truths are grayscale
JPEGs (ADE20k has a few), which a ground-truth reader must convert.

Everything derives from ``np.random.SeedSequence(seed)``, and pair ``i`` depends only on ``seed``, ``i`` and
``sizes``, so a data set of ``n`` pairs is the first ``n`` pairs of a bigger one (except that with fewer than
3 pairs the last ground truth is made the grayscale one). Same seed and library versions give byte-identical
files (JPEG and PNG bytes may change with the libjpeg or zlib of Pillow).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from evalkit.fileio import sha256_file, write_text_atomic

__all__ = [
    "BUILD_VERSION",
    "DEFAULT_SIZES",
    "PAIRS_FILE",
    "SyntheticDataset",
    "build_synthetic_ade20k",
    "synthetic_ready",
]

#: Bump whenever a change here changes the files written for the same arguments (invalidates old stamps).
BUILD_VERSION = 1

#: (width, height) of the images, both orientations, around ADE20k's typical sizes but small enough that 32
#: pairs evaluate in seconds. Validation image ``i`` takes ``sizes[i % len(sizes)]``.
DEFAULT_SIZES: tuple[tuple[int, int], ...] = (
    (683, 512),
    (512, 683),
    (512, 384),
    (384, 512),
    (256, 256),
    (600, 400),
    (400, 600),
    (300, 700),
    (700, 300),
    (512, 512),
)
PAIRS_FILE = "ade20k_ref_test.txt"
ROOT_NAME = "ADEChallengeData2016"
_STAMP = ".evalkit-synthetic.json"
_CLASSES = 151  # label values 0..150
_ADE_TRAIN_IMAGES = 20210  # ids of exemplars are drawn from ADE20k's training range
_SCENE_CLASSES = 7  # classes a pair's scene draws from (each mask drops one of them)
_MIN_AREA = 0.03  # a forced class covers at least this share of a mask, so it survives the 256x256 resize
_JPEG_QUALITY = 90


@dataclass(frozen=True)
class SyntheticDataset:
    """Where :func:`build_synthetic_ade20k` put the data set.

    Attributes
    ----------
    root : Path
        The ``ADEChallengeData2016`` folder itself (what evalkit calls the data root).
    pairs : Path
        The pairs file, CoCosNet's ``ade20k_ref_test.txt`` format.
    n_pairs : int
        Number of lines in the pairs file (= validation images).
    """

    root: Path
    pairs: Path
    n_pairs: int


def _smooth_noise(rng: np.random.Generator, height: int, width: int, feature: float) -> np.ndarray:
    """Zero-mean, unit-scale smooth noise [height, width]: a random grid (one node per ``feature`` pixels)
    interpolated with smoothstep weights. Element-wise only, so bit-exact on every machine."""
    grid_h = int(np.ceil(height / feature)) + 2
    grid_w = int(np.ceil(width / feature)) + 2
    grid = rng.standard_normal((grid_h, grid_w))

    def axis(n: int, nodes: int) -> tuple[np.ndarray, np.ndarray]:
        pos = np.linspace(0.0, nodes - 1.0, n, endpoint=False) + 0.5
        low = np.minimum(np.floor(pos).astype(np.intp), nodes - 2)
        frac = pos - low
        return low, frac * frac * (3.0 - 2.0 * frac)

    y0, fy = axis(height, grid_h)
    x0, fx = axis(width, grid_w)
    rows = grid[y0] * (1.0 - fy)[:, None] + grid[y0 + 1] * fy[:, None]
    return rows[:, x0] * (1.0 - fx) + rows[:, x0 + 1] * fx


def _label_map(
    rng: np.random.Generator, size: tuple[int, int], classes: np.ndarray, required: Sequence[int]
) -> np.ndarray:
    """An 8-bit mask [height, width] of warped Voronoi cells labelled from ``classes``.

    Every class in ``required`` covers at least ``_MIN_AREA`` of the mask; draws are repeated
    (deterministically) until that holds and the mask has at least two classes.
    """
    width, height = size
    scale = float(max(width, height))
    yy, xx = np.meshgrid(np.arange(height) / scale, np.arange(width) / scale, indexing="ij")
    for _ in range(1000):
        cells = int(rng.integers(max(5, len(required) + 2), 12))
        cell_classes = np.concatenate(
            [np.asarray(required, dtype=np.int64), rng.choice(classes, cells - len(required))]
        )
        points = rng.random((cells, 2)) * np.array([height, width]) / scale
        # Warping the coordinates with smooth noise bends the straight Voronoi edges into organic outlines.
        wy = yy + 0.06 * _smooth_noise(rng, height, width, scale / 4.0)
        wx = xx + 0.06 * _smooth_noise(rng, height, width, scale / 4.0)
        nearest = np.zeros((height, width), dtype=np.intp)
        best = np.full((height, width), np.inf)
        for index, (py, px) in enumerate(points):
            distance = (wy - py) ** 2 + (wx - px) ** 2
            closer = distance < best
            best[closer] = distance[closer]
            nearest[closer] = index
        labels = cell_classes[nearest].astype(np.uint8)
        areas = np.bincount(labels.ravel(), minlength=_CLASSES) / labels.size
        if np.count_nonzero(areas) >= 2 and all(areas[c] >= _MIN_AREA for c in required):
            return labels
    raise RuntimeError("could not draw a label map with the required classes")  # pragma: no cover


def _soften(image: np.ndarray) -> np.ndarray:
    """A [1, 2, 1] / 4 blur along both axes (edge-replicated): photos have no razor-sharp class edges."""
    padded = np.pad(image, ((1, 1), (0, 0), (0, 0)), mode="edge")
    image = (padded[:-2] + 2.0 * padded[1:-1] + padded[2:]) / 4.0
    padded = np.pad(image, ((0, 0), (1, 1), (0, 0)), mode="edge")
    return (padded[:, :-2] + 2.0 * padded[:, 1:-1] + padded[:, 2:]) / 4.0


def _render(rng: np.random.Generator, labels: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """An RGB uint8 image of ``labels``: jittered class colours, lighting, texture, grain, soft edges."""
    height, width = labels.shape
    colours = np.clip(palette + rng.normal(0.0, 40.0, palette.shape), 0.0, 255.0)  # this image's version
    texture_amplitude = rng.uniform(4.0, 16.0, _CLASSES)  # some classes are smooth (sky), some busy (grass)
    image = colours[labels]
    texture = _smooth_noise(rng, height, width, 12.0) * texture_amplitude[labels]
    image += texture[:, :, None] * (1.0 + 0.2 * rng.standard_normal(3))  # slightly tinted texture
    angle = rng.uniform(0.0, 2.0 * np.pi)
    yy, xx = np.meshgrid(np.linspace(-0.5, 0.5, height), np.linspace(-0.5, 0.5, width), indexing="ij")
    image += rng.uniform(30.0, 70.0) * (np.cos(angle) * xx + np.sin(angle) * yy)[:, :, None]
    image += rng.normal(0.0, 3.0, image.shape)
    return np.clip(np.round(_soften(image)), 0.0, 255.0).astype(np.uint8)


def _write_tree(staging: Path, n_pairs: int, seed: int, sizes: Sequence[tuple[int, int]]) -> None:
    """Write the whole data set under ``staging`` (root folder and pairs file)."""
    root = staging / ROOT_NAME
    for kind in ("images", "annotations"):
        for split in ("training", "validation"):
            (root / kind / split).mkdir(parents=True)

    ids_seq, palette_seq, *pair_seqs = np.random.SeedSequence(seed).spawn(2 + n_pairs)
    # A permutation of the whole range, so that the first n pairs' ids do not depend on n_pairs; even places
    # are exemplars, odd places the third field (a file that is never written).
    train_ids = np.random.default_rng(ids_seq).permutation(np.arange(1, _ADE_TRAIN_IMAGES + 1))
    palette = np.random.default_rng(palette_seq).uniform(25.0, 230.0, (_CLASSES, 3))
    grayscale = {i for i in range(n_pairs) if i % 16 == 2} or {n_pairs - 1}

    lines = []
    for i, pair_seq in enumerate(pair_seqs):
        rng = np.random.default_rng(pair_seq)
        val_name = f"ADE_val_{i + 1:08d}"
        train_name = f"ADE_train_{train_ids[2 * i]:08d}"
        missing_name = f"ADE_train_{train_ids[2 * i + 1]:08d}"
        # Extreme labels 0 ("other") and 150 appear in a fixed share of pairs, in both masks.
        required = [c for c, wanted in ((0, i % 4 in (0, 1)), (150, i % 4 in (0, 2))) if wanted]
        scene = rng.choice(np.arange(1, _CLASSES - 1), _SCENE_CLASSES, replace=False)
        # Each mask drops a different scene class: the exemplar misses a class the input has, and vice versa.
        val_classes, train_classes = np.delete(scene, 0), np.delete(scene, 1)

        for name, split, size, classes in (
            (val_name, "validation", sizes[i % len(sizes)], val_classes),
            (train_name, "training", sizes[(7 * i + 3) % len(sizes)], train_classes),
        ):
            labels = _label_map(rng, size, classes, required)
            image = Image.fromarray(_render(rng, labels, palette))
            if split == "validation" and i in grayscale:
                image = image.convert("L")
            image.save(root / "images" / split / f"{name}.jpg", "JPEG", quality=_JPEG_QUALITY)
            Image.fromarray(labels).save(root / "annotations" / split / f"{name}.png", "PNG")
        lines.append(f"{val_name}.jpg,{train_name}.jpg,{missing_name}.jpg\n")
    (staging / PAIRS_FILE).write_bytes("".join(lines).encode("utf-8"))


def _tree_hashes(directory: Path) -> dict[str, str]:
    """SHA-256 of every file of the data set, by path relative to ``directory`` (POSIX separators)."""
    files = [directory / PAIRS_FILE, *sorted(p for p in (directory / ROOT_NAME).rglob("*") if p.is_file())]
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in files}


def _parameters(n_pairs: int, seed: int, sizes: Sequence[tuple[int, int]]) -> dict[str, object]:
    """What a data set must have been built with to be reused as it is (the stamp, less the hashes)."""
    return {
        "build_version": BUILD_VERSION,
        "n_pairs": n_pairs,
        "seed": seed,
        "sizes": [[int(w), int(h)] for w, h in sizes],
    }


def _read_stamp(directory: Path) -> dict[str, object] | None:
    """The stamp of a data set written here by this module, or None."""
    try:
        stamp = json.loads((directory / _STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def write_json_atomic(path: Path, content: dict[str, object]) -> None:
    """Write ``content`` to ``path`` as indented, key-sorted JSON, atomically."""
    write_text_atomic(path, json.dumps(content, indent=1, sort_keys=True) + "\n")


def _up_to_date(directory: Path, parameters: dict[str, object]) -> bool:
    """True when the stamp matches ``parameters`` and every file is there, unchanged, and nothing else."""
    stamp = _read_stamp(directory)
    if stamp is None or {k: stamp.get(k) for k in parameters} != parameters:
        return False
    try:
        return _tree_hashes(directory) == stamp.get("sha256")
    except OSError:
        return False


@contextlib.contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``directory`` itself (POSIX ``flock``; no lock file is left behind).

    Concurrent builders then build once; where ``fcntl`` is missing this is a no-op, and the temp-then-rename
    writes still keep every file whole.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def synthetic_ready(
    directory: Path, *, n_pairs: int = 32, seed: int = 0, sizes: Sequence[tuple[int, int]] | None = None
) -> bool:
    """True when :func:`build_synthetic_ade20k` with these arguments would reuse ``directory`` as it is."""
    sizes = tuple((int(w), int(h)) for w, h in (DEFAULT_SIZES if sizes is None else sizes))
    return _up_to_date(Path(directory), _parameters(n_pairs, seed, sizes))


def build_synthetic_ade20k(
    directory: Path,
    *,
    n_pairs: int = 32,
    seed: int = 0,
    sizes: Sequence[tuple[int, int]] | None = None,
) -> SyntheticDataset:
    """Write (or reuse) a synthetic ADE20k tree and its pairs file under ``directory``.

    Parameters
    ----------
    directory : Path
        Destination; created if needed. The tree goes to ``directory/ADEChallengeData2016`` and the pairs file
        to ``directory/ade20k_ref_test.txt``.
    n_pairs : int
        Number of pairs (validation images ``ADE_val_00000001`` .. ``n_pairs``).
    seed : int
        Seed of every random draw.
    sizes : sequence of (width, height), optional
        Image sizes to cycle through; default :data:`DEFAULT_SIZES`.

    Returns
    -------
    SyntheticDataset
        The root folder, the pairs file and the number of pairs.

    Raises
    ------
    FileExistsError
        When ``directory`` holds an ``ADEChallengeData2016`` folder that this function did not write (it is
        never overwritten: it may be the real data set).

    Notes
    -----
    Nothing is rewritten when the stamp matches the arguments and every file's hash checks out. Otherwise
    the tree is built in a temporary folder inside ``directory`` and renamed into place under a lock, so
    concurrent builders neither corrupt nor duplicate it.
    """
    if n_pairs < 1:
        raise ValueError(f"n_pairs must be at least 1, got {n_pairs}")
    sizes = tuple((int(w), int(h)) for w, h in (DEFAULT_SIZES if sizes is None else sizes))
    if not sizes or any(w < 16 or h < 16 for w, h in sizes):
        raise ValueError(f"sizes must be a non-empty list of (width, height) of at least 16x16, got {sizes}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dataset = SyntheticDataset(root=directory / ROOT_NAME, pairs=directory / PAIRS_FILE, n_pairs=n_pairs)
    parameters = _parameters(n_pairs, seed, sizes)
    if _up_to_date(directory, parameters):
        return dataset

    with directory_lock(directory):
        if _up_to_date(directory, parameters):  # another process built it while we waited
            return dataset
        if dataset.root.exists() and _read_stamp(directory) is None:
            raise FileExistsError(
                f"{dataset.root} exists and was not written by build_synthetic_ade20k; "
                "refusing to overwrite it"
            )
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=directory))
        try:
            _write_tree(staging, n_pairs, seed, sizes)
            stamp = {**parameters, "sha256": _tree_hashes(staging)}
            # While the tree is swapped the stamp says "ours, but not valid": a crash here leaves a folder
            # that the next call rebuilds instead of refusing to touch.
            write_json_atomic(directory / _STAMP, {"building": True})
            if dataset.root.exists():  # an older build of ours: move aside, then delete
                os.replace(dataset.root, staging / "previous")
            os.replace(staging / ROOT_NAME, dataset.root)
            os.replace(staging / PAIRS_FILE, dataset.pairs)
            write_json_atomic(directory / _STAMP, stamp)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return dataset
