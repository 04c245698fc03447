"""Small file and number helpers every stage shares: atomic writes, file hashes, JSON-safe numbers.

Imports nothing of evalkit, so any module (the demo builder, the cache, the reports) may use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

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
