"""On-disk cache of the verifier's outputs on ground-truth images (features and probabilities).

Every model of a run, and every later run on the same data, scores its images against the same ground
truths, so their verifier outputs are computed once and kept. An entry is keyed by everything that decides
those outputs: the ground-truth file's bytes, the verifier model's bytes, its input convention, layout and
size and output names, the preprocessing, the device and inference precision, the library versions that
decode, resize and infer, and this module's :data:`FORMAT_VERSION`. A change in any of them is a new key,
so an entry is never used for an input it was not computed from.

Layout: ``DIR/ab/abcdef....feat``, one file per ground truth::

    b"EVKFEAT1" | sha256 of the rest (32 bytes) | header length (uint32 LE) | header JSON | float32 LE arrays

An entry whose checksum, header or length does not match (a torn or corrupted file, a foreign file) is
counted as ``rebuilt``, treated as a miss and overwritten by the recomputed outputs. Writers write a
temporary file in the same folder and ``os.replace`` it into place, so concurrent writers (threads or
processes) and readers only ever see complete files.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from evalkit.config import RuntimeSpec
from evalkit.runtime.core import THREADS_PER_STREAM
from evalkit.runtime.core import model_sha256 as runtime_model_sha256
from evalkit.runtime.verifier import Verifier, VerifierOutput

#: Bump when the entry layout or anything the key does not capture changes (e.g. the preprocessing code).
FORMAT_VERSION = 1
#: Environment variable naming evalkit's cache root; the features go to its ``features`` folder.
CACHE_ENV = "EVALKIT_CACHE_DIR"
#: The verifier preprocessing of a ground truth (see :mod:`evalkit.data.preprocess`), part of every key.
PREPROCESSING = "gt: Pillow decode, convert('RGB'); RGB->BGR; cv2.resize bilinear to the input size"

_MAGIC = b"EVKFEAT1"
_SUFFIX = ".feat"
_TMP_PREFIX = ".tmp-"
_DIGEST = 32
_LEN = struct.Struct("<I")


def cache_root(root: str | Path | None = None) -> Path:
    """evalkit's cache folder: ``root`` if given, else ``$EVALKIT_CACHE_DIR``, else ``~/.cache/evalkit``.

    ``evalkit demo`` keeps its stand-ins and data in its ``demo`` folder, the feature cache is ``features``.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "evalkit"


def default_cache_dir(root: str | Path | None = None) -> Path:
    """The feature cache's folder: ``features`` in :func:`cache_root`."""
    return cache_root(root) / "features"


def _library_versions() -> dict[str, str]:
    # JPEG decoders, resizes and CPU kernels may change a ground truth's outputs between versions.
    import cv2
    import openvino as ov
    import PIL

    return {"openvino": ov.get_version(), "pillow": PIL.__version__, "opencv": cv2.__version__}


@dataclass(frozen=True)
class VerifierIdentity:
    """Everything besides the image that decides the verifier's outputs on a ground truth."""

    model_sha256: str
    color_order: str
    mean: float
    scale: float
    layout: str
    size: tuple[int, int]
    probabilities_output: str
    features_output: str
    device: str
    inference_precision: str
    threads_per_stream: int
    preprocessing: str = PREPROCESSING
    libraries: dict[str, str] = field(default_factory=_library_versions)

    @classmethod
    def of(
        cls, verifier: Verifier, runtime: RuntimeSpec, model_sha256: str | None = None
    ) -> VerifierIdentity:
        """The identity of a loaded verifier run with ``runtime`` (hashes the model file unless given)."""
        spec = verifier.spec
        assert spec.path is not None, "a loaded verifier has a path"
        return cls(
            model_sha256=model_sha256 or runtime_model_sha256(spec.path),
            color_order=spec.input.color_order,
            mean=float(spec.input.mean),
            scale=float(spec.input.scale),
            layout=verifier.layout,
            size=tuple(verifier.size),
            probabilities_output=spec.probabilities_output,
            features_output=spec.features_output,
            device=runtime.device,
            inference_precision=runtime.inference_precision,
            threads_per_stream=THREADS_PER_STREAM,
        )

    def digest(self) -> str:
        """A hex digest of the identity and :data:`FORMAT_VERSION`."""
        text = json.dumps({"format": FORMAT_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class CacheStats:
    """What a :class:`FeatureCache` did (counters since it was made)."""

    hits: int = 0  #: entries found and used
    misses: int = 0  #: entries absent or unusable (includes ``rebuilt``)
    rebuilt: int = 0  #: entries found stale or corrupt, not used (overwritten by the next ``put``)
    writes: int = 0  #: entries written
    write_errors: int = 0  #: entries that could not be written (the run goes on without them)


class FeatureCache:
    """The ground-truth feature cache in one folder; safe to share between threads and processes.

    Parameters
    ----------
    directory
        The cache folder; default :func:`default_cache_dir`. Created on the first write.
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()
        self.stats = CacheStats()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.directory)!r})"

    @staticmethod
    def key(identity: VerifierIdentity | str, image_sha256: str) -> str:
        """The entry key of a ground truth whose file has sha256 ``image_sha256``.

        ``identity`` may be a :class:`VerifierIdentity` or its :meth:`~VerifierIdentity.digest` (computed
        once per run).
        """
        ident = identity.digest() if isinstance(identity, VerifierIdentity) else identity
        return hashlib.sha256(f"{FORMAT_VERSION}:{ident}:{image_sha256}".encode()).hexdigest()

    def path(self, key: str) -> Path:
        """Where the entry ``key`` lives."""
        return self.directory / key[:2] / f"{key}{_SUFFIX}"

    def _count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.stats, name, getattr(self.stats, name) + delta)

    def get(self, key: str) -> VerifierOutput | None:
        """The cached outputs of ``key``, or ``None`` (absent, stale or corrupt: never a wrong entry)."""
        try:
            blob = self.path(key).read_bytes()
        except OSError:
            self._count(misses=1)
            return None
        out = _decode(blob, key)
        if out is None:
            self._count(misses=1, rebuilt=1)
            return None
        self._count(hits=1)
        return out

    def put(self, key: str, out: VerifierOutput) -> bool:
        """Store the outputs of ``key`` atomically; returns whether it was written.

        A write that fails (read-only or full disk) is counted in ``stats.write_errors``, not raised: the
        cache only saves time.
        """
        target = self.path(key)
        tmp = None
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, suffix=_SUFFIX, dir=target.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(_encode(out, key))
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the entry from other users of a shared cache
            os.replace(tmp, target)
        except OSError:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
            self._count(write_errors=1)
            return False
        self._count(writes=1)
        return True

    def clear(self) -> int:
        """Remove every entry (and leftover temporary file) of this cache; returns how many files went.

        Only evalkit's own files are removed, so a mistaken ``--cache-dir`` loses nothing else.
        """
        return clear_cache(self.directory)


def clear_cache(directory: str | Path | None = None) -> int:
    """Remove the feature cache's entries in ``directory`` (default :func:`default_cache_dir`).

    Returns the number of files removed; a missing folder is an empty cache. Empty shard folders are
    removed too; the folder itself and any file evalkit did not write are left alone.
    """
    root = Path(directory).expanduser() if directory is not None else default_cache_dir()
    if not root.is_dir():
        return 0
    removed = 0
    for shard in root.iterdir():
        if not (shard.is_dir() and len(shard.name) == 2 and not shard.is_symlink()):
            continue
        for entry in shard.iterdir():
            if entry.is_file() and entry.name.endswith(_SUFFIX):
                try:
                    entry.unlink()
                    removed += 1
                except FileNotFoundError:  # another process cleared it first
                    pass
        try:
            shard.rmdir()
        except OSError:  # not empty: something that is not ours
            pass
    return removed


def _encode(out: VerifierOutput, key: str) -> bytes:
    probs = np.ascontiguousarray(out.probabilities, dtype="<f4")
    feats = np.ascontiguousarray(out.features, dtype="<f4")
    header = json.dumps(
        {"format": FORMAT_VERSION, "key": key, "probabilities": probs.size, "features": feats.size}
    ).encode()
    payload = _LEN.pack(len(header)) + header + probs.tobytes() + feats.tobytes()
    return _MAGIC + hashlib.sha256(payload).digest() + payload


def _decode(blob: bytes, key: str) -> VerifierOutput | None:
    head = len(_MAGIC) + _DIGEST
    if len(blob) < head + _LEN.size or not blob.startswith(_MAGIC):
        return None
    payload = memoryview(blob)[head:]
    if hashlib.sha256(payload).digest() != blob[len(_MAGIC) : head]:
        return None
    try:
        (size,) = _LEN.unpack_from(payload)
        header = json.loads(bytes(payload[_LEN.size : _LEN.size + size]))
        n_probs, n_feats = int(header["probabilities"]), int(header["features"])
        if header["format"] != FORMAT_VERSION or header["key"] != key:
            return None
    except (ValueError, KeyError, TypeError):
        return None
    start = _LEN.size + size
    if len(payload) != start + 4 * (n_probs + n_feats):
        return None
    arrays = np.frombuffer(payload, dtype="<f4", offset=start).astype(np.float32)  # a writable copy
    return VerifierOutput(probabilities=arrays[:n_probs], features=arrays[n_probs:])
