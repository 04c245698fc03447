"""One writer per output folder: an exclusive, OS-level lock on ``OUTPUT/.evalkit-lock``.

The lock is a ``flock`` held on an open file for as long as the run goes on. The kernel drops it when the
process ends, however it ends: after a crash or ``kill -9`` the next run takes the folder at once, with no
manual cleanup (a lock file left behind holds nothing). The file names its holder (pid, host, start time)
so that a second run can say who has the folder.

The lock is re-entrant within a process (``run_and_report`` holds it for the whole job, and the pipeline
it calls asks again for its journal); it does not guard two threads of one process against each other.
On a system without ``fcntl`` (Windows) no lock is taken.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evalkit.errors import InputError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; runs are not guarded there
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_FILE", "output_lock"]

LOCK_FILE = ".evalkit-lock"

# Folders this process holds (resolved path -> nesting depth), so that a nested request does not block
# on the process's own lock.
_held: dict[Path, int] = {}
_held_guard = threading.Lock()


def _holder(path: Path) -> str:
    # What the holder wrote: "pid N on HOST since TIME"; it may not have written yet (a race of
    # microseconds), then say what is known.
    try:
        fields = dict(
            line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line
        )
    except (OSError, UnicodeDecodeError):
        fields = {}
    pid, host, since = (fields.get(k, "?") for k in ("pid", "host", "since"))
    return f"pid {pid} on {host} since {since}"


def _acquire(folder: Path) -> int:
    path = folder / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise InputError(
                f"{folder}: in use by {_holder(path)} (another evalkit run); "
                "wait for it or choose another --output"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # The holder before us unlinks the file as it lets go: if we locked a file that is no longer the
        # one at the path, another run may lock the new one; try again on the file that is there now.
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    since = time.strftime("%Y-%m-%d %H:%M:%S %z")
    os.ftruncate(fd, 0)
    os.write(fd, f"pid={os.getpid()}\nhost={socket.gethostname()}\nsince={since}\n".encode())
    return fd


@contextmanager
def output_lock(folder: Path) -> Iterator[Path]:
    """Hold the exclusive lock on ``folder`` (created if missing) for the ``with`` block.

    Parameters
    ----------
    folder
        The run's output folder.

    Yields
    ------
    Path
        ``folder``.

    Raises
    ------
    InputError
        Another process holds the folder (one line naming its pid, host and start time), or the folder
        cannot be created.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: output directory is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = folder.resolve()
    except OSError as exc:
        raise InputError(f"{folder}: output directory is not writable ({exc.strerror or exc})") from None
    if fcntl is None:
        yield folder
        return
    with _held_guard:
        depth = _held.get(key, 0)
        if depth == 0:
            try:
                fd = _acquire(folder)
            except OSError as exc:
                raise InputError(
                    f"{folder}: output directory is not writable ({exc.strerror or exc})"
                ) from None
        _held[key] = depth + 1
    try:
        yield folder
    finally:
        with _held_guard:
            _held[key] -= 1
            if _held[key] == 0:
                del _held[key]
                # unlink while still holding it (see _acquire), so no finished run leaves a file behind
                try:
                    os.unlink(folder / LOCK_FILE)
                except OSError:
                    pass
                os.close(fd)
