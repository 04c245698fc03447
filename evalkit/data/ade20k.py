"""ADE20k validation pairs: the pairs file, where each file lives, and reading images as the reference does.

Layout (``root`` is the ``ADEChallengeData2016`` folder itself)::

    images/validation/X.jpg        ground truth             (Pillow, converted to RGB)
    annotations/validation/X.png   input mask               (OpenCV, BGR -> gray)
    images/training/Y.jpg          exemplar                 (OpenCV, BGR)
    annotations/training/Y.png     exemplar mask            (OpenCV, BGR -> gray)

for each pairs-file line ``X.jpg,Y.jpg[,...]``. Only fields 1 and 2 are read.
"""

from __future__ import annotations

import hashlib
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from evalkit import defaults
from evalkit.errors import InputError
from evalkit.fileio import sha256_file


@dataclass(frozen=True)
class Pair:
    """One evaluation pair: a validation image and its exemplar from the training split."""

    index: int  #: 0-based position in evaluation order (= file order)
    line: int  #: 1-based line number in the pairs file
    val_id: str  #: e.g. ``ADE_val_00000001`` (the ``pair_id`` of per-sample results)
    exemplar_id: str  #: e.g. ``ADE_train_00013948``


@dataclass(frozen=True)
class PairFiles:
    """The four files of a pair."""

    input_mask: Path
    exemplar: Path
    exemplar_mask: Path
    ground_truth: Path

    def by_role(self) -> dict[str, Path]:
        """The four paths keyed by role (:data:`PAIR_FILE_ROLES`, in reading order)."""
        return {role: getattr(self, role) for role in PAIR_FILE_ROLES}


#: The roles of a pair's four files, in the order they are read (the keys of a pair's file hashes).
PAIR_FILE_ROLES = ("input_mask", "exemplar", "exemplar_mask", "ground_truth")
_ROLE_NAMES = {
    "input_mask": "label map",
    "exemplar": "exemplar image",
    "exemplar_mask": "label map",
    "ground_truth": "ground-truth image",
}


def _parse_name(field_text: str, where: str, what: str) -> str:
    name = field_text.strip()
    if not name:
        raise InputError(f"{where}: {what} is empty")
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
        raise InputError(f"{where}: {what} {name!r} must be a bare file name without path components")
    if not name.lower().endswith(".jpg"):
        raise InputError(f"{where}: {what} {name!r} must be a .jpg file name")
    return name[: -len(".jpg")]


@dataclass(frozen=True)
class PairsFile:
    """A pairs file as read once: its pairs and the identity of the very bytes they were parsed from.

    A pipe or a process substitution (``<(...)``) can be read only once, and a file can change between two
    reads; so a run reads the pairs file once and records ``sha256`` of the bytes it parsed, never of a
    second read.
    """

    path: Path  #: as given (``/dev/fd/63`` for a process substitution)
    pairs: tuple[Pair, ...]  #: the pairs kept (the first ``limit`` when a limit was given)
    sha256: str  #: hex SHA-256 of every byte read (the whole file, also when ``limit`` keeps fewer pairs)
    n_lines: int  #: lines in the file, blank ones included


def read_pairs_file(path: str | Path, *, limit: int | None = None) -> PairsFile:
    """Read a CoCosNet pairs file (``ade20k_ref_test.txt``) once: its :class:`Pair` records and hash.

    Parameters
    ----------
    path
        The pairs file: UTF-8 (an optional BOM is tolerated), one pair per line,
        comma-separated, field 1 = validation image, field 2 = exemplar; further fields are ignored.
        A named pipe or ``/dev/fd/N`` works: the file is read exactly once.
    limit
        Keep only the first ``limit`` pairs.

    Returns
    -------
    PairsFile
        The pairs, the SHA-256 of the bytes read and the number of lines.

    Raises
    ------
    InputError
        When the file cannot be read, is not UTF-8, has a malformed line or no pair (one line naming it).

    Notes
    -----
    The reference reads the lines into a dict, so a repeated validation id keeps its first position
    and its last exemplar, and a blank line crashes it. evalkit skips blank lines and refuses
    repeated ids, since either outcome is almost certainly a broken file.
    """
    path = Path(path)
    try:
        with open(path, "rb") as stream:  # one read: a pipe has no second one
            data = stream.read(defaults.PAIRS_FILE_MAX_BYTES + 1)  # bounded: `--pairs /dev/zero` ends
    except FileNotFoundError:
        raise InputError(f"{path}: pairs file not found") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read pairs file: {exc.strerror}") from None
    if len(data) > defaults.PAIRS_FILE_MAX_BYTES:
        raise InputError(
            f"{path}: pairs file is larger than {defaults.PAIRS_FILE_MAX_BYTES} bytes "
            "(ADE20k's, 2000 pairs, has 962 kB; one pair per line)"
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line_no = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"{path}:{line_no}: pairs file is not UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    lines = text.splitlines()
    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        fields = line.split(",")
        if len(fields) < 2:
            raise InputError(f"{where}: expected 'VALIDATION.jpg,EXEMPLAR.jpg[,...]', got {line.strip()!r}")
        val_id = _parse_name(fields[0], where, "field 1 (validation image)")
        exemplar_id = _parse_name(fields[1], where, "field 2 (exemplar image)")
        if val_id in seen:
            raise InputError(f"{where}: validation image {val_id}.jpg repeats line {seen[val_id]}")
        seen[val_id] = line_no
        pairs.append(Pair(index=len(pairs), line=line_no, val_id=val_id, exemplar_id=exemplar_id))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise InputError(f"{path}: pairs file has no pairs")
    digest = hashlib.sha256(data).hexdigest()
    return PairsFile(path=path, pairs=tuple(pairs), sha256=digest, n_lines=len(lines))


def read_pairs(path: str | Path, *, limit: int | None = None) -> list[Pair]:
    """Parse a CoCosNet pairs file into :class:`Pair` records (:func:`read_pairs_file` without the hash).

    Parameters
    ----------
    path
        The pairs file (see :func:`read_pairs_file`).
    limit
        Keep only the first ``limit`` pairs.
    """
    return list(read_pairs_file(path, limit=limit).pairs)


def pair_files(root: Path, pair: Pair) -> PairFiles:
    """Where the four files of ``pair`` live under the ``ADEChallengeData2016`` folder ``root``."""
    return PairFiles(
        input_mask=root / "annotations" / "validation" / f"{pair.val_id}.png",
        exemplar=root / "images" / "training" / f"{pair.exemplar_id}.jpg",
        exemplar_mask=root / "annotations" / "training" / f"{pair.exemplar_id}.png",
        ground_truth=root / "images" / "validation" / f"{pair.val_id}.jpg",
    )


def check_root(root: Path) -> None:
    """Fail early, with the expected layout, if ``root`` is not an ADEChallengeData2016 folder."""
    expected = ("images/validation", "images/training", "annotations/validation", "annotations/training")
    missing = [sub for sub in expected if not (root / sub).is_dir()]
    if missing:
        raise InputError(
            f"{root}: not an ADEChallengeData2016 folder: missing {', '.join(missing)} "
            "(pass the ADEChallengeData2016 folder itself as --data-root; see datasets.md)"
        )


def _context(pair: Pair | None) -> str:
    return f" (pairs line {pair.line})" if pair is not None else ""


def _require_file(path: Path, what: str, pair: Pair | None) -> None:
    # stat, never open: opening a FIFO for reading blocks until a writer comes, i.e. forever.
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found{_context(pair)}") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what}: {exc.strerror or exc}{_context(pair)}") from None
    if stat.S_ISREG(mode):
        return
    kind = _FILE_KINDS.get(stat.S_IFMT(mode), "a special file")
    article = "an" if what[0] in "aeiou" else "a"
    raise InputError(f"{path}: is {kind}, not {article} {what} file{_context(pair)}")


_FILE_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def check_inside_root(root: Path, files: PairFiles, pair: Pair | None = None) -> None:
    """Refuse a pair whose files resolve outside ``root`` (e.g. through a symbolic link leading out)."""
    real_root = root.resolve()
    for path in (files.input_mask, files.exemplar, files.exemplar_mask, files.ground_truth):
        if path.exists() and not path.resolve().is_relative_to(real_root):
            raise InputError(
                f"{path}: resolves to {path.resolve()}, outside the data root {real_root}{_context(pair)}"
            )


def read_label_map(
    path: Path, pair: Pair | None = None, *, max_pixels: int = defaults.MAX_PIXELS
) -> np.ndarray:
    """Read an ADE20k label map: an 8-bit gray PNG with values 0..150.

    Returns
    -------
    numpy.ndarray
        ``H x W`` uint8, values 0..150.

    Notes
    -----
    The reference reads it as 3-channel BGR and converts to gray, which leaves a gray map unchanged
    but silently turns a colour (e.g. palette) map into meaningless labels. evalkit reads the file
    as stored and accepts gray, or colour whose channels are all equal (same values as the reference);
    anything else is an error, as are values above 150 (the reference's one-hot would crash on them).
    """
    _require_file(path, "label map", pair)
    _check_pixels(path, "label map", pair, max_pixels)
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InputError(
            f"{path}: cannot decode label map (corrupt, truncated or not an image){_context(pair)}"
        )
    if raw.dtype != np.uint8:
        raise InputError(f"{path}: label map has {raw.dtype} pixels; ADE20k label maps are 8-bit gray PNGs")
    if raw.ndim == 3:
        colour = raw[..., :3]
        if not (
            np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 1], colour[..., 2])
        ):
            raise InputError(
                f"{path}: label map is a colour image with differing channels; "
                f"ADE20k label maps are 8-bit gray (class index per pixel){_context(pair)}"
            )
        raw = colour[..., 0]
    labels = np.ascontiguousarray(raw)
    top = int(labels.max())
    if top >= defaults.NUM_CLASSES:
        raise InputError(
            f"{path}: label value {top} is outside 0..{defaults.NUM_CLASSES - 1} "
            "(ADE20k has 150 classes + 'other')"
        )
    return labels


def read_exemplar(
    path: Path, pair: Pair | None = None, *, max_pixels: int = defaults.MAX_PIXELS
) -> np.ndarray:
    """Read an exemplar image as the reference does: OpenCV, ``H x W x 3`` uint8 **BGR**.

    Notes
    -----
    ``cv2.imread`` applies EXIF orientation; Pillow (used for the ground truth) does not. ADE20k
    images carry no rotation; the two readers are kept as the reference has them.
    """
    _require_file(path, "exemplar image", pair)
    _check_pixels(path, "exemplar image", pair, max_pixels)
    _check_complete_image(path, "exemplar image", pair)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"{path}: cannot decode exemplar image (corrupt or not an image){_context(pair)}")
    return bgr


# evalkit bounds every image it decodes itself (_check_pixels, dataset.max_pixels) before decoding it;
# Pillow's own bound would warn on stderr (a second line) or refuse with its own wording past 2x its limit.
Image.MAX_IMAGE_PIXELS = None


def _check_pixels(path: Path, what: str, pair: Pair | None, max_pixels: int) -> None:
    # Pillow's open reads the header only, so a file declaring a huge size is refused before any of it is
    # decoded (OpenCV would allocate it first). A file Pillow cannot identify is left to the reader's own
    # "cannot decode" error (OpenCV's own bound, 2^30 pixels, still holds there).
    try:
        with Image.open(path) as img:
            width, height = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return
    if width * height > max_pixels:
        raise InputError(
            f"{path}: {what} of {width} x {height} = {width * height} pixels exceeds dataset.max_pixels "
            f"({max_pixels}){_context(pair)}"
        )


def _check_complete_image(path: Path, what: str, pair: Pair | None) -> None:
    # OpenCV decodes a truncated JPEG without an error (grey bottom rows, one warning on stderr). Pillow
    # refuses it; a draft (1/8 scale) decode still walks the whole entropy-coded stream, at a fraction
    # of a full decode's cost.
    try:
        with Image.open(path) as img:
            img.draft("RGB", (max(1, img.width // 8), max(1, img.height // 8)))
            img.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot decode {what} ({exc}){_context(pair)}") from None


def read_ground_truth(
    path: Path, pair: Pair | None = None, *, max_pixels: int = defaults.MAX_PIXELS
) -> np.ndarray:
    """Read a ground-truth image with Pillow as ``H x W x 3`` uint8 **RGB**.

    Notes
    -----
    The reference keeps Pillow's mode, so a grayscale or CMYK JPEG breaks it; ADE20k has a few
    grayscale images. evalkit converts every non-RGB mode with ``Image.convert("RGB")``.
    """
    _require_file(path, "ground-truth image", pair)
    _check_pixels(path, "ground-truth image", pair, max_pixels)
    try:
        with Image.open(path) as img:
            img.load()
            rgb = img if img.mode == "RGB" else img.convert("RGB")
            return np.asarray(rgb, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise InputError(f"{path}: cannot decode ground-truth image ({exc}){_context(pair)}") from None


@dataclass(frozen=True)
class PairImages:
    """The four decoded images of a pair, checked against each other."""

    input_mask: np.ndarray  #: H x W uint8 labels
    exemplar: np.ndarray  #: h x w x 3 uint8 BGR
    exemplar_mask: np.ndarray  #: h' x w' uint8 labels
    ground_truth: np.ndarray  #: H x W x 3 uint8 RGB
    sha256: Mapping[str, str]  #: role (:data:`PAIR_FILE_ROLES`) -> hex SHA-256 of the bytes decoded


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = path.stat()
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def read_pair(root: Path, pair: Pair, *, max_pixels: int = defaults.MAX_PIXELS) -> PairImages:
    """Read and check the four files of ``pair``: inside ``root``, at most ``max_pixels`` pixels each (checked
    from the header, before decoding), decodable, labels 0..150, and the ground truth the same size as its
    label map; with the SHA-256 of each file's bytes.

    Notes
    -----
    Each file is hashed before it is decoded, and a file whose size, time or inode changed by the end of the
    read is refused; so the hash is of the bytes decoded, and a resumed run can trust it.
    """
    files = pair_files(root, pair)
    check_inside_root(root, files, pair)
    paths = files.by_role()
    identities, hashes = {}, {}
    for role, path in paths.items():
        _require_file(path, _ROLE_NAMES[role], pair)  # before any open: a FIFO would block
        identities[role] = _identity(path)
        hashes[role] = sha256_file(path)
    images = PairImages(
        input_mask=read_label_map(files.input_mask, pair, max_pixels=max_pixels),
        exemplar=read_exemplar(files.exemplar, pair, max_pixels=max_pixels),
        exemplar_mask=read_label_map(files.exemplar_mask, pair, max_pixels=max_pixels),
        ground_truth=read_ground_truth(files.ground_truth, pair, max_pixels=max_pixels),
        sha256=hashes,
    )
    for role, path in paths.items():
        if _identity(path) != identities[role]:
            raise InputError(f"{path}: changed while evalkit was reading it{_context(pair)}; run again")
    if images.input_mask.shape != images.ground_truth.shape[:2]:
        h, w = images.input_mask.shape
        gh, gw = images.ground_truth.shape[:2]
        raise InputError(
            f"{files.input_mask}: label map is {w}x{h} but its ground truth {files.ground_truth.name} is "
            f"{gw}x{gh}{_context(pair)}"
        )
    return images


def pair_file_hashes(root: Path, pair: Pair) -> dict[str, str | None]:
    """The SHA-256 of each of ``pair``'s four files as they are now; ``None`` for one that is missing, not a
    regular file, unreadable or outside the data root (what a resumed run compares with the hashes its
    journal recorded: ``None`` never matches, so such a pair is read again and refused as a new run would)."""
    real_root = root.resolve()
    hashes: dict[str, str | None] = {}
    for role, path in pair_files(root, pair).by_role().items():
        try:
            usable = stat.S_ISREG(path.stat().st_mode) and path.resolve().is_relative_to(real_root)
            hashes[role] = sha256_file(path) if usable else None
        except OSError:
            hashes[role] = None
    return hashes
