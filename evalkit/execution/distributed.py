"""Evaluate pairs on a Dask cluster: shards of consecutive pairs run on the workers, records come back in pair
order, so the journal, ``--resume`` and the metrics are exactly those of the in-process run.

How a run goes:

- the pairs are cut into shards of ``shard_size`` consecutive pairs; each shard is one Dask task
  (:func:`evaluate_shard`) that returns the shard's :class:`~evalkit.execution.journal.PairRecord` objects:
  per-pair scores and the verifier's probabilities and features, unreduced. Merging is concatenation in pair
  order, so nothing is lost or approximated and the summary stage sees the same arrays as in-process;
- each worker process compiles the models once (:func:`evalkit.runtime.models.compile_models`, as the
  sequential executor does) and keeps them for every later shard of the same models (see
  :data:`_MODEL_CACHE`); a shard runs the sequential executor's pair loop
  (:meth:`evalkit.execution.pair.PairEvaluator.records`);
- the executor's feature cache, OpenVINO compiled-model cache and ``save_images`` folders are sent to the
  workers (:class:`ShardOptions`), which read and write them directly: on several machines they must be on
  a shared filesystem. Each shard returns what it did with the feature cache, and the client logs the
  in-process run's cache line;
- the client delivers records in pair order as shards complete (a reorder buffer holds shards that
  finish early), so the journal is written exactly as by the in-process executor;
- a task that raises (a worker out of memory, an OpenVINO runtime error) is retried by Dask (``retries``);
  a worker that dies has its tasks rescheduled by the scheduler (up to its ``allowed-failures``). A bad
  *input* is not an exception to retry: the shard catches :class:`~evalkit.errors.InputError` and returns
  the records before the bad pair plus the one-line message (``on_error="fail"``), or a skipped record in
  its place (``on_error="skip"``).

Models and data are read by the workers at the paths of the config: on several machines they must be on
a shared filesystem mounted at the same path everywhere. A path missing on a worker is an
:class:`~evalkit.errors.InputError` that names the path and the worker. Workers need evalkit (the same
version) and its dependencies installed, as for any Dask task code.

Dask is an optional dependency (``pip install 'evalkit[distributed]'``): this module imports it only when
a :class:`DaskExecutor` is made.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from evalkit import config as cfg
from evalkit import defaults
from evalkit.data.ade20k import Pair, check_root
from evalkit.errors import InputError
from evalkit.execution.cache import CacheStats, FeatureCache, GroundTruthCache, VerifierIdentity, cache_line
from evalkit.execution.inprocess import step_names
from evalkit.execution.journal import PairRecord
from evalkit.execution.pair import OnError, PairEvaluator
from evalkit.runtime.models import ModelSet, compile_models

if TYPE_CHECKING:
    from distributed import Client, Future, LocalCluster

#: Pairs per task by default: large enough that scheduling overhead (~1 ms a task) and the per-task
#: transfer are negligible against ~0.1-1 s of work per pair, small enough to balance load and to lose
#: little work when a worker dies.
DEFAULT_SHARD_SIZE = defaults.SHARD_SIZE
#: Automatic retries of a shard whose task raised (not for bad inputs, which are returned, not raised).
DEFAULT_RETRIES = 2
#: Model sets kept per worker process for configs not in use; an older one is dropped (LRU).
MAX_CACHED_CONFIGS = 2

INSTALL_HINT = "pip install 'evalkit[distributed]'"


# ------------------------------------------------------------------------------------------ worker side


@dataclass
class WorkerModels:
    """A worker's compiled models of one config, and the ground-truth cache identity of their verifier.

    ``gt_identity`` is computed on the first shard that uses the feature cache (it hashes the verifier's
    file) and kept with the models: the model cache key changes when the file does.
    """

    models: ModelSet
    gt_identity: str | None = None


@dataclass(frozen=True)
class ShardOptions:
    """The executor's settings every shard needs, as absolute paths the workers read and write.

    Attributes
    ----------
    feature_cache
        The ground-truth feature cache folder (``None``: verify every ground truth, as ``--no-cache``).
    compiled_cache
        OpenVINO's compiled-model cache folder (``None``: compile without it).
    save_images
        Where each generated image is kept (``--save-images``), or ``None``.
    """

    feature_cache: Path | None = None
    compiled_cache: Path | None = None
    save_images: Path | None = None


@dataclass(frozen=True)
class ShardResult:
    """What a shard task sends back.

    Attributes
    ----------
    records
        The shard's records in pair order: every pair, or those before the bad pair when ``error`` is set.
    error
        The one-line :class:`~evalkit.errors.InputError` message that ended the shard, or None.
    worker
        Address of the worker that ran it (for messages and for the benchmark).
    seconds
        Wall time of the task on the worker, compilation included.
    compiled
        Whether this task compiled the models (the worker's first shard of this config).
    cache_used
        What the shard did with the feature cache (``None`` without one).
    """

    records: list[PairRecord]
    error: str | None
    worker: str
    seconds: float
    compiled: bool
    cache_used: CacheStats | None = None


class _WorkerModelCache:
    """Compiled model sets of one worker process, keyed by a hash of the settings that build them.

    A set is checked out by one task at a time: a compiled model holds a single infer request, which must
    not be shared by two threads. A worker with one thread (the recommended ``--nthreads 1``) therefore
    compiles each config once; a worker with T threads compiles at most T sets, reused from then on.
    """

    def __init__(self, max_configs: int = MAX_CACHED_CONFIGS) -> None:
        self.max_configs = max_configs
        self._lock = threading.Lock()
        self._free: OrderedDict[str, list[WorkerModels]] = OrderedDict()
        self.compilations = 0
        self.shards = 0

    @contextlib.contextmanager
    def checkout(self, key: str, build: Callable[[], WorkerModels]) -> Iterator[tuple[WorkerModels, bool]]:
        """Lend a model set for ``key``, building one if none is free; yields it and whether it was built."""
        with self._lock:
            self.shards += 1
            free = self._free.setdefault(key, [])
            self._free.move_to_end(key)
            models = free.pop() if free else None
            while len(self._free) > self.max_configs:
                self._free.popitem(last=False)  # least recently used config: its models are freed
        built = models is None
        if models is None:
            models = build()  # outside the lock: compiling takes seconds and other threads may proceed
            with self._lock:
                self.compilations += 1
        try:
            yield models, built
        finally:
            with self._lock:
                self._free.setdefault(key, []).append(models)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "compilations": self.compilations,
                "shards": self.shards,
                "cached_configs": len(self._free),
            }


#: The per-process model cache, this module's only module-level state. A Dask worker runs tasks in a
#: long-lived process, so a module global lives exactly as long as the worker and keeps the compiled models
#: between tasks, without a worker plugin that whoever runs the cluster would have to register. Only
#: :func:`evaluate_shard` fills it; the client process never does (unless it calls that function itself).
_MODEL_CACHE = _WorkerModelCache()


def worker_stats() -> dict[str, int]:
    """This process's model cache counters: model sets compiled, shards run, configs cached.

    Run it on every worker with ``client.run(worker_stats)`` (or :meth:`DaskExecutor.worker_stats`); a
    worker with one thread shows one compilation per config however many shards it ran.
    """
    return _MODEL_CACHE.stats()


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return f"{get_worker().address} ({socket.gethostname()})"
    except (ImportError, ValueError):  # not inside a Dask worker (a direct call, e.g. in a test)
        return f"{socket.gethostname()} (pid {os.getpid()})"


def _not_found(path: Path, what: str, worker: str) -> InputError:
    return InputError(
        f"{path}: {what} not found on Dask worker {worker}; models and data must be at the same paths on "
        "every worker (a shared filesystem)"
    )


def _file_identity(path: Path, what: str, worker: str) -> list[object]:
    # Size and mtime of the model files enter the cache key: a model rewritten in place between two runs
    # is compiled again instead of being served stale from the cache.
    parts = [path] + ([path.with_suffix(".bin")] if path.suffix == ".xml" else [])
    identity: list[object] = []
    for part in parts:
        try:
            st = part.stat()
        except FileNotFoundError:
            raise _not_found(part, what, worker) from None
        except OSError as exc:
            raise InputError(f"{part}: cannot read {what} on Dask worker {worker} ({exc.strerror})") from None
        identity += [str(part), st.st_size, st.st_mtime_ns]
    return identity


def model_cache_key(config: cfg.Config, worker: str = "") -> str:
    """Hash of everything that goes into compiling the config's models on this machine.

    The models', verifier's and runtime settings, and each model file's path, size and modification time.
    Raises an :class:`~evalkit.errors.InputError` naming ``worker`` when a model file is missing here.
    """
    parts: list[object] = [repr((config.models, config.verifier, config.runtime))]
    for spec in config.models:
        assert spec.path is not None, "config completeness is checked before a run"
        parts += _file_identity(spec.path, f"translation model ({spec.name})", worker)
    assert config.verifier.path is not None
    parts += _file_identity(config.verifier.path, "verifier model", worker)
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def _check_data_root(root: Path, worker: str) -> None:
    if not root.is_dir():
        raise _not_found(root, "data root", worker)
    try:
        check_root(root)
    except InputError as exc:
        raise InputError(f"{exc} [on Dask worker {worker}]") from None


def _evaluate_pairs(
    config: cfg.Config, pairs: Sequence[Pair], held: WorkerModels, on_error: OnError, options: ShardOptions
) -> tuple[list[PairRecord], str | None, CacheStats | None]:
    # The sequential executor's pair loop, with the records returned instead of delivered and a bad pair's
    # message returned instead of raised.
    root = config.dataset.root
    assert root is not None
    ground_truths = None
    if options.feature_cache is not None:
        verifier = held.models.verifier
        if held.gt_identity is None:
            held.gt_identity = VerifierIdentity.of(verifier, config.runtime).digest()
        cache = FeatureCache(options.feature_cache)
        ground_truths = GroundTruthCache(cache, verifier, config.runtime, identity=held.gt_identity)
    evaluator = PairEvaluator(
        root, held.models, config.metrics, ground_truths, options.save_images,
        max_pixels=config.dataset.max_pixels,
    )
    records: list[PairRecord] = []
    error = None
    try:
        with contextlib.closing(evaluator.records(pairs, on_error)) as stream:
            for record in stream:
                records.append(record)
    except InputError as exc:
        error = str(exc)
    return records, error, ground_truths.used() if ground_truths is not None else None


def evaluate_shard(
    config: cfg.Config, pairs: Sequence[Pair], on_error: OnError, options: ShardOptions | None = None
) -> ShardResult:
    """Evaluate consecutive pairs with this process's cached models (the task a Dask worker runs).

    Bad inputs never raise: the result carries the records before the bad pair and the error message
    (``on_error="fail"``) or a skipped record in its place (``"skip"``). A model or data root missing on
    this worker, or models that do not compile here, end the shard with an error in either mode, since
    every other pair would fail the same way. Any other exception propagates, for Dask to retry.
    ``options`` (default: no cache, no saved images) are the executor's caches and ``save_images``.
    """
    options = options if options is not None else ShardOptions()
    t0 = time.perf_counter()
    worker = _worker_name()
    assert config.dataset.root is not None
    try:
        key = model_cache_key(config, worker)
        _check_data_root(config.dataset.root, worker)
    except InputError as exc:
        return ShardResult([], str(exc), worker, time.perf_counter() - t0, compiled=False)

    def build() -> WorkerModels:
        # compiled as the sequential executor compiles (one stream, one thread), so that each inference
        # gives the same bits on a worker as in-process
        try:
            return WorkerModels(compile_models(config, compiled_cache=options.compiled_cache))
        except InputError as exc:
            raise InputError(f"{exc} [on Dask worker {worker}]") from None

    try:
        with _MODEL_CACHE.checkout(key, build) as (held, built):
            records, error, used = _evaluate_pairs(config, pairs, held, on_error, options)
    except InputError as exc:  # only build() raises here: pair errors are returned by _evaluate_pairs
        return ShardResult([], str(exc), worker, time.perf_counter() - t0, compiled=False)
    return ShardResult(records, error, worker, time.perf_counter() - t0, compiled=built, cache_used=used)


# ------------------------------------------------------------------------------------------ client side


def _nanny_environ_keys() -> set[str]:
    import dask

    # the variables a nanny sets before spawning a worker (PYTHONHASHSEED is added by the nanny itself)
    return {*dask.config.get("distributed.nanny.pre-spawn-environ", {}), "PYTHONHASHSEED"}


def _restore_environ(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def absolute_paths(config: cfg.Config) -> cfg.Config:
    """``config`` with the paths the workers read (models, verifier, data root) made absolute.

    Relative paths are relative to the client's current directory; a worker elsewhere has another one.
    ``Path.absolute`` keeps symbolic links as they are, so a shared mount is named as the user named it.
    """
    models = tuple(replace(m, path=None if m.path is None else m.path.absolute()) for m in config.models)
    verifier = config.verifier
    if verifier.path is not None:
        verifier = replace(verifier, path=verifier.path.absolute())
    dataset = config.dataset
    if dataset.root is not None:
        dataset = replace(dataset, root=dataset.root.absolute())
    return replace(config, models=models, verifier=verifier, dataset=dataset)


def shards_of(pairs: Sequence[Pair], shard_size: int) -> list[list[Pair]]:
    """Consecutive runs of at most ``shard_size`` pairs, in pair order."""
    return [list(pairs[i : i + shard_size]) for i in range(0, len(pairs), shard_size)]


class DaskExecutor:
    """Evaluates pairs on a Dask cluster; records are delivered in pair order, as in-process.

    Give either ``scheduler`` (a running cluster, e.g. started with ``dask scheduler`` and ``dask worker``)
    or ``workers`` (a :class:`distributed.LocalCluster` of that many single-threaded worker processes on
    this machine, closed with the executor). Use it as a context manager, or call :meth:`close`.

    Parameters
    ----------
    scheduler
        Address of the scheduler, e.g. ``"tcp://10.0.0.5:8786"``.
    workers
        Number of local worker processes to start.
    shard_size
        Consecutive pairs per task.
    retries
        Automatic retries of a shard whose task raised (a lost worker's tasks are rescheduled by the
        scheduler regardless). Bad inputs are not retried.
    max_pending_shards
        Shards submitted ahead of the oldest undelivered one; default twice the cluster's threads (at
        least 4). Bounds the reorder buffer and the work done past a bad pair in ``on_error="fail"`` mode.
    connect_timeout
        Seconds to wait for the scheduler to answer and, at each run, for at least one worker.
    cache
        The ground-truth feature cache (``None``: verify every ground truth). The workers open its folder
        themselves (it must be the same path on every machine, on a shared filesystem); its ``stats`` count
        what they did, and one line says so at the end of a run, as in-process.
    log
        Receives the cache line at the end of a run (the CLI's ``log``).
    save_images
        If given, the workers keep every generated image as ``save_images/MODEL/PAIR_ID.png``.
    compiled_cache
        OpenVINO's compiled-model cache folder the workers compile with (``None``: none).

    Raises
    ------
    InputError
        When dask is not installed, both or neither of ``scheduler`` and ``workers`` are given, a
        number is out of range, or the scheduler cannot be reached.
    """

    def __init__(
        self,
        *,
        scheduler: str | None = None,
        workers: int | None = None,
        shard_size: int = DEFAULT_SHARD_SIZE,
        retries: int = DEFAULT_RETRIES,
        max_pending_shards: int | None = None,
        connect_timeout: float = 30.0,
        cache: FeatureCache | None = None,
        log: Callable[[str], None] | None = None,
        save_images: Path | None = None,
        compiled_cache: Path | None = None,
    ) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError(f"the Dask executor needs dask and distributed: {INSTALL_HINT}") from None
        if (scheduler is None) == (workers is None):
            raise InputError("the Dask executor takes either a scheduler address or a number of workers")
        for name, value, least in (
            ("workers", workers, 1),
            ("shard_size", shard_size, 1),
            ("retries", retries, 0),
            ("max_pending_shards", max_pending_shards, 1),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise InputError(f"Dask executor: {name} must be an integer >= {least}, got {value!r}")
        self.shard_size = shard_size
        self.retries = retries
        self.max_pending_shards = max_pending_shards
        self.connect_timeout = connect_timeout
        self.cache = cache
        self.log = log
        self.save_images = save_images
        self.compiled_cache = compiled_cache
        self._cluster: LocalCluster | None = None
        self._client: Client | None = None
        self._environ: dict[str, str | None] = {}
        if workers is not None:
            import dask

            # A nanny running in this process writes its workers' environment (OMP_NUM_THREADS=1, ...) into
            # this process's os.environ before each spawn; it is put back as it was once the workers are up,
            # so that it does not leak into programs this process starts later.
            self._environ = {key: os.environ.get(key) for key in _nanny_environ_keys()}
            # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive mmap
            # threshold: every large temporary array of a pair (decoded images, one-hot masks) is then mapped
            # and page-faulted afresh. On the demo that is 3x the page faults and twice the system time per
            # pair, so it is left unset for the workers started here. processes=True: the per-pair NumPy and
            # Pillow work holds the GIL in places, and each process keeps its own compiled models. The
            # dashboard (which needs bokeh) gets a free port rather than a fixed one that may be taken.
            with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
                self._cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
            try:
                self._client = Client(self._cluster, set_as_default=False)
                self._client.wait_for_workers(workers, timeout=max(connect_timeout, 60.0))
            except BaseException:
                self.close()
                raise
            _restore_environ(self._environ)
        else:
            assert scheduler is not None
            from distributed.comm import get_address_host_port

            try:
                get_address_host_port(scheduler)  # a malformed address would leave a half-made client behind
            except ValueError as exc:
                raise InputError(
                    f"{scheduler}: not a Dask scheduler address ({exc}); expected tcp://HOST:PORT"
                ) from None
            except NotImplementedError:  # a scheme without host and port (inproc://): left to Client
                pass
            try:
                # set_as_default=False: the executor's client must not become the process-wide default
                self._client = Client(scheduler, timeout=connect_timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(f"{scheduler}: cannot connect to the Dask scheduler: {first}") from None

    # ------------------------------------------------------------------------------------ lifecycle

    @property
    def client(self) -> Client:
        """The Dask client (raises once the executor is closed)."""
        if self._client is None:
            raise RuntimeError("the Dask executor is closed")
        return self._client

    def close(self) -> None:
        """Close the client, and the local cluster if this executor started it. Idempotent."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
            _restore_environ(self._environ)  # a worker restarted meanwhile wrote it again

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def worker_stats(self) -> dict[str, dict[str, int]]:
        """Per worker address: model sets compiled, shards run, configs cached (see :func:`worker_stats`)."""
        return self.client.run(worker_stats)

    # ------------------------------------------------------------------------------------ evaluation

    def _window(self, client: Client) -> int:
        if self.max_pending_shards is not None:
            return self.max_pending_shards
        return max(4, 2 * sum(client.nthreads().values()))

    def evaluate(
        self,
        config: cfg.Config,
        pairs: Sequence[Pair],
        deliver: Callable[[PairRecord], None],
        *,
        on_error: OnError,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        """Evaluate ``pairs`` on the cluster and deliver their records in pair order (every step of a pair
        is reported to ``on_step`` as its record is delivered).

        Raises
        ------
        InputError
            In ``on_error="fail"`` mode at the first bad pair, once every record before it was delivered
            (the same message as in-process); in either mode when a model or the data is missing on a
            worker, or no worker joins the scheduler within ``connect_timeout``.
        """
        from distributed import as_completed

        client = self.client
        config = absolute_paths(config)
        shards = shards_of(pairs, self.shard_size)
        if not shards:
            return
        options = self._shard_options()
        if self._cluster is None:
            try:
                client.wait_for_workers(1, timeout=self.connect_timeout)
            except TimeoutError:
                raise InputError(
                    f"{client.scheduler.address}: no Dask worker joined the scheduler within "
                    f"{self.connect_timeout:g} s"
                ) from None
        window = self._window(client)
        steps = step_names(config)
        pending: dict[str, tuple[int, Future]] = {}  # submitted, not yet completed: key -> (shard, future)
        ready: dict[int, ShardResult] = {}  # the reorder buffer: shards done before their turn
        completions = as_completed(loop=client.loop)  # this client's loop, not a default client's
        next_submit = next_deliver = 0

        def top_up() -> None:
            nonlocal next_submit
            while next_submit < len(shards) and next_submit - next_deliver < window:
                future = client.submit(
                    evaluate_shard,
                    config,
                    shards[next_submit],
                    on_error,
                    options,
                    retries=self.retries,
                    pure=False,  # always recompute: files may have been fixed since an identical call
                    priority=-next_submit,  # earlier shards first, so the buffer stays small
                    key=f"evalkit-shard-{next_submit}-{os.urandom(6).hex()}",
                )
                pending[future.key] = (next_submit, future)
                completions.add(future)
                next_submit += 1

        before = replace(self.cache.stats) if self.cache is not None else None
        try:
            top_up()
            for future in completions:
                index, _ = pending.pop(future.key)
                ready[index] = future.result()  # a task that failed beyond its retries raises here
                future.release()
                if self.cache is not None and ready[index].cache_used is not None:
                    self.cache.add_stats(ready[index].cache_used)
                while next_deliver in ready:
                    result = ready.pop(next_deliver)
                    next_deliver += 1
                    for record in result.records:
                        deliver(record)
                        for step in steps if on_step is not None else ():
                            on_step(step)
                    if result.error is not None:
                        raise InputError(result.error)
                    top_up()
        finally:
            # a bad pair, Ctrl-C or a failed delivery: shards still queued or running are of no use now
            if pending:
                # best effort: a failure to cancel (a lost connection) must not hide the error being raised
                with contextlib.suppress(Exception):
                    client.cancel([future for _, future in pending.values()])
            if self.cache is not None and before is not None and self.log is not None:
                self.log(cache_line(self.cache.directory, self.cache.stats - before))

    def _shard_options(self) -> ShardOptions:
        # absolute: a worker elsewhere has another current directory (as for the config's paths)
        def absolute(path: Path | None) -> Path | None:
            return None if path is None else Path(path).expanduser().absolute()

        return ShardOptions(
            feature_cache=absolute(self.cache.directory) if self.cache is not None else None,
            compiled_cache=absolute(self.compiled_cache),
            save_images=absolute(self.save_images),
        )


__all__ = [
    "DEFAULT_SHARD_SIZE",
    "DaskExecutor",
    "ModelSet",
    "ShardOptions",
    "ShardResult",
    "WorkerModels",
    "absolute_paths",
    "evaluate_shard",
    "model_cache_key",
    "shards_of",
    "worker_stats",
]
