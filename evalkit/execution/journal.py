"""An append-only journal of finished pairs, so that an interrupted run resumes where it stopped.

Layout, in ``OUTPUT/.evalkit-journal/``::

    meta.json      the run's fingerprint (what must match for a resume) and the record layout
    records.jsonl  one JSON line per finished pair: its scores and the SHA-256 of its four files, or why it
                   was skipped, and where its arrays sit in arrays.bin with their CRC32
    arrays.bin     float32 rows: ground-truth features, then per model probabilities and features

Records are buffered and flushed (with fsync) in batches. On resume, records are read up to the first
one that is incomplete or fails its checksum (a ``kill -9`` mid-write), and both files are cut back to
that point. A pair may appear more than once (evaluated again because its files changed): the last record
wins. Arrays are stored as raw float32 and scores as JSON's round-trip float text, so the final metrics
of a resumed run are bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalkit.errors import InputError
from evalkit.fileio import write_text_atomic

JOURNAL_DIR = ".evalkit-journal"
FORMAT_VERSION = 2  # 2: records carry their files' SHA-256; pairs may come in any order


@dataclass(frozen=True)
class ModelRecord:
    """One model's outcome on one pair."""

    scores: dict[str, float | None]  #: per-sample metrics (PSNR may be inf)
    probabilities: np.ndarray  #: verifier softmax row (float32)
    features: np.ndarray  #: verifier features (float32)


@dataclass(frozen=True)
class PairRecord:
    """Everything a finished pair contributes to a run; ``skipped`` pairs carry only the reason."""

    index: int
    pair_id: str
    gt_features: np.ndarray | None
    models: Mapping[str, ModelRecord]
    skipped: str | None = None
    #: role -> SHA-256 of the pair's four files as they were read (see ``data.ade20k.PAIR_FILE_ROLES``)
    files_sha256: Mapping[str, str] | None = None


def _line_crc(line: Mapping[str, Any]) -> int:
    # of the record's canonical text (sorted keys), so that the check does not depend on key order
    return zlib.crc32(json.dumps(line, sort_keys=True, allow_nan=False).encode())


def _encode_score(value: float | None) -> float | str | None:
    # JSON has no inf; a per-image PSNR is +inf when the output equals its ground truth.
    if value is None:
        return None
    return value if math.isfinite(value) else repr(float(value))


def _decode_score(value: float | str | None) -> float | None:
    return float(value) if value is not None else None


class Journal:
    """Writes and reads the journal of one output directory.

    Parameters
    ----------
    output
        The run's output directory.
    fingerprint
        Plain data that identifies the run (config, data, model and verifier hashes). A journal with a
        different fingerprint is refused on resume.
    model_names
        The models, in config order (the record layout).
    """

    def __init__(
        self,
        output: Path,
        fingerprint: Mapping[str, Any],
        model_names: Sequence[str],
        flush_every: int = 16,
        flush_seconds: float = 10.0,
    ) -> None:
        self.dir = output / JOURNAL_DIR
        self.fingerprint = json.loads(json.dumps(fingerprint))  # normalise to what JSON gives back
        self.model_names = list(model_names)
        self.flush_every = flush_every
        self.flush_seconds = flush_seconds
        self._lines: list[str] = []
        self._arrays: list[bytes] = []
        self._offset = 0
        self._last_flush = time.monotonic()

    # ------------------------------------------------------------------------------------- writing

    def start(self) -> None:
        """Begin a fresh journal (an old one in the directory is replaced)."""
        with _journal_write_errors(self.dir):
            if self.dir.exists():
                shutil.rmtree(self.dir)
            self.dir.mkdir(parents=True)
            meta = {"format": FORMAT_VERSION, "fingerprint": self.fingerprint, "models": self.model_names}
            write_text_atomic(self.dir / "meta.json", json.dumps(meta, indent=1, sort_keys=True))
            (self.dir / "records.jsonl").touch()
            (self.dir / "arrays.bin").touch()
        self._offset = 0

    def append(self, record: PairRecord) -> None:
        """Buffer a finished pair; flushed to disk every ``flush_every`` pairs or ``flush_seconds``."""
        line: dict[str, Any] = {"index": record.index, "pair_id": record.pair_id}
        if record.skipped is not None:
            line["skipped"] = record.skipped
        else:
            assert record.gt_features is not None
            parts = [record.gt_features]
            for name in self.model_names:
                m = record.models[name]
                parts += [m.probabilities, m.features]
            blob = b"".join(np.ascontiguousarray(p, dtype=np.float32).tobytes() for p in parts)
            assert record.files_sha256 is not None
            line["sha256"] = dict(record.files_sha256)
            line["scores"] = {
                name: {k: _encode_score(v) for k, v in record.models[name].scores.items()}
                for name in self.model_names
            }
            line["sizes"] = [int(np.asarray(p).size) for p in parts]
            line["offset"] = self._offset
            line["nbytes"] = len(blob)
            line["crc32"] = zlib.crc32(blob)
            self._arrays.append(blob)
            self._offset += len(blob)
        line["line_crc32"] = _line_crc(line)
        self._lines.append(json.dumps(line, allow_nan=False) + "\n")
        now = time.monotonic()
        if len(self._lines) >= self.flush_every or now - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write buffered records: arrays first, then their lines, each fsync'ed.

        The buffers are taken before writing, so an interrupt during a flush can never make the ``finally``
        flush write the same records twice; Ctrl-C and SIGTERM wait until the write is done.
        """
        if not self._lines:
            return
        lines, arrays = "".join(self._lines), b"".join(self._arrays)
        self._lines, self._arrays = [], []
        self._last_flush = time.monotonic()
        with _signals_deferred():
            with _journal_write_errors(self.dir / "arrays.bin"), open(self.dir / "arrays.bin", "ab") as fh:
                fh.write(arrays)
                fh.flush()
                os.fsync(fh.fileno())
            records = self.dir / "records.jsonl"
            with _journal_write_errors(records), open(records, "a", encoding="utf-8") as fh:
                fh.write(lines)
                fh.flush()
                os.fsync(fh.fileno())

    # ------------------------------------------------------------------------------------- reading

    def exists(self) -> bool:
        return journal_exists(self.dir.parent)

    def resume(self) -> list[PairRecord]:
        """Read the valid records of an existing journal and prepare to append after them.

        Returns
        -------
        list of PairRecord
            One record per pair (the latest), by pair index; the caller decides which still hold (their
            files' hashes) and which pairs are left to evaluate.

        Raises
        ------
        InputError
            If the journal was written for a different config, data set, models or verifier.
        """
        try:
            meta = json.loads((self.dir / "meta.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(
                f"{self.dir / 'meta.json'}: unreadable journal ({exc}); delete {self.dir}"
            ) from None
        if meta.get("format") != FORMAT_VERSION or meta.get("models") != self.model_names:
            raise InputError(
                f"{self.dir}: journal of another evalkit version or model list; "
                "use a new --output or delete the journal"
            )
        diff = _first_difference(meta.get("fingerprint"), self.fingerprint)
        if diff is not None:
            raise InputError(
                f"{self.dir}: journal was written for a different run ({diff} differs); "
                "use a new --output or delete the journal to start over"
            )
        records: dict[int, PairRecord] = {}
        good_text_bytes = 0
        good_array_bytes = 0
        with open(self.dir / "arrays.bin", "rb") as fh:
            arrays = fh.read()
        with open(self.dir / "records.jsonl", "rb") as fh:
            raw_lines = fh.read().split(b"\n")
        for raw in raw_lines[:-1]:  # the part after the last newline is incomplete by construction
            try:
                line = json.loads(raw)
                record = self._decode(line, arrays)
            except (ValueError, KeyError, TypeError):
                break
            if record is None or not isinstance(record.index, int) or record.index < 0:
                break
            records[record.index] = record  # a pair evaluated again: the later record wins
            good_text_bytes += len(raw) + 1
            if record.skipped is None:
                good_array_bytes = max(good_array_bytes, line["offset"] + line["nbytes"])
        # cut both files back to the last good record, so appends continue from a clean state
        with open(self.dir / "records.jsonl", "r+b") as fh:
            fh.truncate(good_text_bytes)
        with open(self.dir / "arrays.bin", "r+b") as fh:
            fh.truncate(good_array_bytes)
        self._offset = good_array_bytes
        return [records[i] for i in sorted(records)]

    def _decode(self, line: dict[str, Any], arrays: bytes) -> PairRecord | None:
        if line.pop("line_crc32") != _line_crc(line):  # scores and hashes are checked like the arrays
            return None
        if "skipped" in line:
            return PairRecord(line["index"], line["pair_id"], None, {}, skipped=line["skipped"])
        start, nbytes = line["offset"], line["nbytes"]
        blob = arrays[start : start + nbytes]
        if len(blob) != nbytes or zlib.crc32(blob) != line["crc32"]:
            return None
        flat = np.frombuffer(blob, dtype=np.float32)
        parts, pos = [], 0
        for size in line["sizes"]:
            parts.append(flat[pos : pos + size].copy())
            pos += size
        models = {}
        for k, name in enumerate(self.model_names):
            scores = {key: _decode_score(v) for key, v in line["scores"][name].items()}
            models[name] = ModelRecord(
                scores=scores, probabilities=parts[1 + 2 * k], features=parts[2 + 2 * k]
            )
        hashes = line["sha256"]
        if not isinstance(hashes, dict) or not all(isinstance(v, str) for v in hashes.values()):
            return None
        return PairRecord(line["index"], line["pair_id"], parts[0], models, files_sha256=hashes)


@contextlib.contextmanager
def _journal_write_errors(path: Path) -> Iterator[None]:
    """A failed journal write (full disk, the folder removed) as one line naming the file, exit 2."""
    try:
        yield
    except OSError as exc:
        raise InputError(
            f"{exc.filename or path}: {exc.strerror or exc} (writing the journal; the pairs journaled before "
            "are kept: fix it, then run again with --resume)"
        ) from None


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then hand them to the handlers they would have met.

    Python-level (a per-thread signal mask would not do: numpy's BLAS threads would take the signal). Only
    the main thread can set handlers; elsewhere this is a no-op.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, lambda n, _frame: received.append(n)) for signum in held}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in received:
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def _first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """Dotted path of the first place where two JSON-like values differ, or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            sub = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if sub is not None:
                return sub
        return None
    return None if a == b else (path or "fingerprint")


def journal_exists(output: Path) -> bool:
    """True when ``output`` holds a journal (of a run that did not finish: a finished one removes it)."""
    return (output / JOURNAL_DIR / "meta.json").is_file()


def remove_journal(output: Path) -> None:
    """Delete the journal of ``output`` (once a run's final files are written)."""
    shutil.rmtree(output / JOURNAL_DIR, ignore_errors=True)
