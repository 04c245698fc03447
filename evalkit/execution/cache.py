"""On-disk cache of the verifier's outputs on ground-truth images (features and probabilities).

Every model of a run, and every later run on the same data, scores its images against the same ground
truths, so their verifier outputs are computed once and kept. An entry is keyed by everything that decides
those outputs: the ground-truth file's bytes, the verifier model's bytes, the values of its preprocessing
(:class:`~evalkit.runtime.verifier.VerifierPreprocessing`: input size and layout, colour order, mean and
scale, resize interpolation: the very object that prepares its input), its output names, the device and
inference precision, the library versions that decode, resize and infer, and this module's
:data:`FORMAT_VERSION`. A change in any of them is a new key, so an entry is never used for an input it was
not computed from.

:class:`GroundTruthCache` is how every executor uses it (in this process or on a Dask worker): the key of
a pair's ground truth, lookup, store, and the counts for the one log line (:func:`cache_line`).

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
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from evalkit.config import RuntimeSpec
from evalkit.fileio import write_bytes_atomic
from evalkit.runtime.core import THREADS_PER_STREAM
from evalkit.runtime.core import model_sha256 as runtime_model_sha256
from evalkit.runtime.verifier import Verifier, VerifierOutput, VerifierPreprocessing

#: Bump when the entry layout or anything the key does not capture changes (e.g. the code of the ground-truth
#: decoding or of the preprocessing, beyond the values of ``VerifierPreprocessing``).
FORMAT_VERSION = 1
#: Environment variable naming evalkit's cache root; the features go to its ``features`` folder.
CACHE_ENV = "EVALKIT_CACHE_DIR"
#: The folders of the cache root: ground-truth verifier outputs, and OpenVINO's compiled models.
FEATURES_FOLDER = "features"
COMPILED_MODELS_FOLDER = "ov-compiled"

_MAGIC = b"EVKFEAT1"
_SUFFIX = ".feat"
_DIGEST = 32
_LEN = struct.Struct("<I")


def cache_root(root: str | Path | None = None) -> Path:
    """evalkit's cache folder: ``root`` if given, else ``$EVALKIT_CACHE_DIR``, else ``~/.cache/evalkit``.

    ``evalkit demo`` keeps its stand-ins and data in its ``demo`` folder, the feature cache is ``features``,
    OpenVINO's compiled models are in ``ov-compiled``.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "evalkit"


def default_cache_dir(root: str | Path | None = None) -> Path:
    """The feature cache's folder: ``features`` in :func:`cache_root`."""
    return cache_root(root) / FEATURES_FOLDER


def compiled_models_dir(root: str | Path | None = None) -> Path:
    """OpenVINO's compiled-model cache (its ``CACHE_DIR``): ``ov-compiled`` in :func:`cache_root`."""
    return cache_root(root) / COMPILED_MODELS_FOLDER


def _library_versions() -> dict[str, str]:
    # JPEG decoders, resizes and CPU kernels may change a ground truth's outputs between versions.
    import cv2
    import openvino as ov
    import PIL

    return {"openvino": ov.get_version(), "pillow": PIL.__version__, "opencv": cv2.__version__}


@dataclass(frozen=True)
class VerifierIdentity:
    """Everything besides the image that decides the verifier's outputs on a ground truth.

    ``preprocessing`` is the loaded verifier's own :class:`~evalkit.runtime.verifier.VerifierPreprocessing`
    (what :meth:`~evalkit.runtime.verifier.Verifier.feed` applies), taken whole: every one of its values
    enters the key, including any added later.
    """

    model_sha256: str
    preprocessing: VerifierPreprocessing
    probabilities_output: str
    features_output: str
    device: str
    inference_precision: str
    threads_per_stream: int
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
            preprocessing=verifier.preprocessing,
            probabilities_output=spec.probabilities_output,
            features_output=spec.features_output,
            device=runtime.device,
            inference_precision=runtime.inference_precision,
            threads_per_stream=THREADS_PER_STREAM,
        )

    def digest(self) -> str:
        """A hex digest of the identity and :data:`FORMAT_VERSION`."""
        # asdict recurses into the preprocessing (and its input convention): each value is in the text
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

    def __add__(self, other: CacheStats) -> CacheStats:
        return CacheStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def __sub__(self, other: CacheStats) -> CacheStats:
        return CacheStats(**{f.name: getattr(self, f.name) - getattr(other, f.name) for f in fields(self)})


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

    def add_stats(self, done_elsewhere: CacheStats) -> None:
        """Count what another process did with this folder (a Dask worker's share of a run)."""
        self._count(**asdict(done_elsewhere))

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
        try:
            # 0644 whatever the umask: the entry is for every user of a shared cache
            write_bytes_atomic(self.path(key), _encode(out, key), mode=0o644)
        except OSError:
            self._count(write_errors=1)
            return False
        self._count(writes=1)
        return True

    def clear(self) -> int:
        """Remove every entry (and leftover temporary file) of this cache; returns how many files went.

        Only evalkit's own files are removed, so a mistaken ``--cache-dir`` loses nothing else.
        """
        return clear_cache(self.directory)


class GroundTruthCache:
    """One run's use of a :class:`FeatureCache`: each pair's key, lookup, store, and what it did.

    Every executor goes through it: the sequential loop and the Dask workers (:func:`evalkit.execution.pair.
    evaluate_pairs`), and the pipelined executor (lookup on its reader threads, store when the record is
    delivered). It is safe to share between threads.

    Parameters
    ----------
    cache
        The feature cache.
    verifier
        The loaded verifier the run verifies with (its model, preprocessing and output names are in the key).
    runtime
        The run's runtime settings (device and precision are in the key).
    identity
        The :meth:`VerifierIdentity.digest` if already known (a Dask worker keeps it with its compiled
        models); otherwise computed here, which hashes the verifier's model file.
    """

    def __init__(
        self,
        cache: FeatureCache,
        verifier: Verifier,
        runtime: RuntimeSpec,
        identity: str | None = None,
    ) -> None:
        self.cache = cache
        self.identity = identity or VerifierIdentity.of(verifier, runtime).digest()
        self._before = replace(cache.stats)

    def lookup(self, image_sha256: str) -> tuple[str, VerifierOutput | None]:
        """The key of a ground truth whose bytes, as read for the run, have SHA-256 ``image_sha256``, and its
        cached verifier outputs (``None``: verify the ground truth, then :meth:`store`).

        The hash is the one taken when the pair was read (``PairInputs.files_sha256``), never a second read:
        a file rewritten in between would otherwise file the old image's features under the new one's key.
        """
        key = self.cache.key(self.identity, image_sha256)
        return key, self.cache.get(key)

    def store(self, key: str | None, out: VerifierOutput) -> None:
        """Keep the outputs computed for a key :meth:`lookup` missed (nothing for a ``None`` key)."""
        if key is not None:
            self.cache.put(key, out)

    def used(self) -> CacheStats:
        """What this run did with the cache so far (the cache's counters since this object was made)."""
        return self.cache.stats - self._before

    def report(self) -> str:
        """The run's log line (:func:`cache_line`) for what it did with the cache so far."""
        return cache_line(self.cache.directory, self.used())


def cache_line(directory: Path, used: CacheStats) -> str:
    """The one log line of a run that used the feature cache in ``directory`` (every executor logs it)."""
    message = f"feature cache {directory}: {used.hits} ground truths reused, {used.misses} computed"
    if used.rebuilt:
        message += f" ({used.rebuilt} stale or corrupt entries rebuilt)"
    if used.write_errors:
        message += f"; {used.write_errors} entries could not be written"
    return message


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
