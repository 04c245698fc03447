"""Small file and number helpers every stage shares: atomic writes, file hashes, JSON-safe numbers.

Imports nothing of evalkit, so any module (the demo builder, the cache, the reports) may use it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path, PurePosixPath

#: Bytes read at a time when hashing (model weights and data sets are many MB).
_HASH_BLOCK = 1 << 20


def _default_mode() -> int:
    # What open() would give a new file: 0666 less the umask (mkstemp's 0600 would hide shared files).
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: Path, *, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``, else removed.

    For writers that want a file name (Pillow, OpenVINO): whatever they write appears at ``path`` whole
    or not at all, so a reader (or a resumed run after ``kill -9``) never sees half a file.

    Parameters
    ----------
    path
        The final file; its folder is created if missing.
    mode
        Permission bits of the final file (default: ``0o666`` less the umask, as a plain ``open``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Hidden, and with the final name's extension, so that a leftover of a killed writer is still found
    # by whatever cleans files of that kind (e.g. `evalkit cache clear` removes every *.feat).
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, _default_mode() if mode is None else mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is None:  # a failed write() names no file; the caller's message must
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (see :func:`atomic_path`)."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write UTF-8 ``text`` to ``path`` (newlines as given) through a temporary file and a rename."""
    with atomic_path(path, mode=mode) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


def sha256_file(*paths: Path) -> str:
    """Hex SHA-256 of a file's bytes (of several files' bytes one after the other, when given several)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(_HASH_BLOCK), b""):
                digest.update(block)
    return digest.hexdigest()


def finite_or_none(x: object) -> float | None:
    """``x`` as a float when it is a finite real number, else ``None`` (JSON has no NaN or infinity)."""
    if isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x):
        return float(x)
    return None


#: The checksum list of a result set, the files that belong together (``sha256sum -c results.sha256``).
SET_CHECKSUMS = "results.sha256"
_STAGING_PREFIX = ".evalkit-staging-"


@contextlib.contextmanager
def file_set(folder: Path, names: Collection[str], *, last: str | None = None) -> Iterator[Path]:
    """Write a set of files into ``folder`` so that a reader sees the whole new set or the whole old one.

    Yields an empty staging folder inside ``folder``; the caller writes the set there under its final
    relative names. When the block ends without an error, the set is put in place:

    1. every staged file is synced to disk and listed with its SHA-256 in :data:`SET_CHECKSUMS`;
    2. the old set's ``last`` file is removed (from here on the folder holds no complete set), then the old
       set's files the new set does not have;
    3. the new files and folders are renamed into place, :data:`SET_CHECKSUMS` next, ``last`` last.

    Only what an earlier set listed is ever removed or replaced, and only under ``names``: a file in the way
    that no set listed (a user's ``gallery/notes.txt``) stops the switch before anything is removed
    (see :func:`foreign_files`). An error or a kill while the block runs (a full disk) leaves the old set
    untouched; a kill during step 2 or 3 leaves no ``last`` file, i.e. no complete set, never a mix under a
    ``last`` file. The staging folder is removed; one left by a kill is removed by the next call (the caller
    holds the folder's lock).

    Parameters
    ----------
    folder
        Where the set lives (created if missing).
    names
        The top-level names a set of this kind may hold (the staged files must be among them).
    last
        The file whose presence means the set is complete (``results.json``); ``None``: no such file.

    Raises
    ------
    OSError
        Writing failed, or a file not of an earlier set is in the way; ``filename`` names the file by its
        final path (not the staging one).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob(f"{_STAGING_PREFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=folder))
    try:
        try:
            yield staging
            _put_in_place(staging, folder, frozenset(names), last)
        except OSError as exc:
            named = Path(exc.filename) if isinstance(exc.filename, str) else None
            if named is not None and named.is_relative_to(staging):  # say where the file was going
                final = folder / named.relative_to(staging)
                raise OSError(exc.errno, exc.strerror, str(final)) from exc
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def set_listing(folder: Path) -> dict[str, str]:
    """The files of the set in ``folder`` as its :data:`SET_CHECKSUMS` lists them: relative path -> SHA-256
    (empty when there is none). Only plain relative paths are taken: a hand-edited list cannot point
    outside the folder."""
    try:
        text = (Path(folder) / SET_CHECKSUMS).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    listing = {}
    for line in text.splitlines():
        digest, sep, name = line.partition("  ")
        path = PurePosixPath(name)
        if sep and path.parts and not path.is_absolute() and ".." not in path.parts:
            listing[path.as_posix()] = digest
    return listing


def foreign_files(folder: Path, names: Collection[str]) -> list[Path]:
    """The files under ``folder``'s ``names`` that no earlier set listed, i.e. that a new set would replace
    or remove although evalkit did not write them (a top-level file under one of ``names`` is the set's
    own kind of file and is not counted; inside a folder every file must be listed)."""
    folder = Path(folder)
    listed = set_listing(folder)
    found = []
    for name in sorted(names):
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            found += [
                p for p in sorted(path.rglob("*"))
                if not p.is_dir() and p.relative_to(folder).as_posix() not in listed
            ]  # fmt: skip
    return found


def _put_in_place(staging: Path, folder: Path, names: frozenset[str], last: str | None) -> None:
    new = {p.name for p in staging.iterdir()}
    if not new <= names:
        raise ValueError(f"file_set: {sorted(new - names)} not among the set's names {sorted(names)}")
    listed = []
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())  # on disk before it becomes visible
        listed.append(f"{sha256_file(path)}  {path.relative_to(staging).as_posix()}\n")
    write_text_atomic(staging / SET_CHECKSUMS, "".join(listed))
    foreign = foreign_files(folder, names)
    if foreign:
        why = f"not written by evalkit (not listed in {SET_CHECKSUMS}): move it away"
        raise OSError(errno.EEXIST, why, str(foreign[0]))
    old_listing = set_listing(folder)
    old = {PurePosixPath(name).parts[0] for name in old_listing} & names
    if last is not None:
        (folder / last).unlink(missing_ok=True)
    # While files move, the list names both sets' files: after a kill here, none of them is "foreign".
    both = {**old_listing, **set_listing(staging)}
    write_text_atomic(folder / SET_CHECKSUMS, "".join(f"{h}  {name}\n" for name, h in sorted(both.items())))
    for name in sorted(old - new):
        _remove(folder / name)
    order = sorted(new - {last}) + [SET_CHECKSUMS] + ([last] if last in new else [])
    for name in order:
        target = folder / name
        if (staging / name).is_dir() or (target.is_dir() and not target.is_symlink()):
            _remove(target)  # a folder cannot be renamed over a non-empty one
        os.replace(staging / name, target)
    _sync_folder(folder)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _sync_folder(folder: Path) -> None:
    # the renames are durable once the folder's entries are
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
