"""Executors: who evaluates the pairs. The default runs them in this process, pipelined;
``evalkit.execution.distributed``
runs them on a Dask cluster. Either way records come back in pair order, so the
journal and the metrics are the same whichever executor ran.

:class:`InProcessExecutor` (the default) overlaps every step of every pair: reader threads read, decode
and resize pairs; each model and the verifier has a ring of infer requests started asynchronously
(THROUGHPUT hint); worker threads turn outputs into images and scores; the calling thread only routes
finished steps and delivers records in pair order. :class:`SequentialExecutor` does one step after the
other with one synchronous request per model: it is the oracle the pipelined one is tested against.

Every model is compiled with one CPU thread per stream (:data:`evalkit.runtime.core.THREADS_PER_STREAM`), so
both executors, and any number of streams, requests or threads, give the same bits.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import openvino as ov

from evalkit import config as cfg
from evalkit.data.ade20k import Pair, pair_files, sha256_file
from evalkit.errors import InputError
from evalkit.execution.cache import CacheStats, FeatureCache, VerifierIdentity
from evalkit.execution.journal import PairRecord
from evalkit.execution.pair import (
    PairInputs,
    evaluate_pair,
    finish_image,
    model_record,
    prepare_pair,
    sample_scores,
    save_image,
    saved_image_path,
    skipped_record,
)
from evalkit.runtime.core import CompiledModel, make_core, optimal_requests
from evalkit.runtime.translator import Translator, load_translator
from evalkit.runtime.verifier import Verifier, VerifierOutput, load_verifier

OnError = Literal["fail", "skip"]
#: The progress step of the verifier (the models' steps are their names).
VERIFIER_STEP = "verifier"
#: How many pairs are read and preprocessed ahead of inference (sequential executor, Dask workers).
PREFETCH_DEPTH = 4


class Executor(Protocol):
    """Evaluates pairs and hands each record to ``deliver`` in pair order.

    In ``on_error="fail"`` mode the first bad pair raises :class:`~evalkit.errors.InputError` after every
    record before it was delivered; in ``"skip"`` mode a bad pair is delivered as a skipped record.
    ``on_step(name)`` is called once per pair and step (each model's name, then :data:`VERIFIER_STEP`)
    when that step of the pair is done, for progress display.
    """

    def evaluate(
        self,
        config: cfg.Config,
        pairs: Sequence[Pair],
        deliver: Callable[[PairRecord], None],
        *,
        on_error: OnError,
        on_step: Callable[[str], None] | None = None,
    ) -> None: ...


def step_names(config: cfg.Config) -> list[str]:
    """The progress steps of a run: each model, then the verifier."""
    return [m.name for m in config.models] + [VERIFIER_STEP]


def _prefetched(
    fn: Callable[[Pair], PairInputs], pairs: Sequence[Pair], depth: int
) -> Iterator[tuple[Pair, PairInputs | InputError]]:
    # OpenCV and Pillow release the GIL while decoding and resizing, so a worker thread keeps the next
    # pairs ready while OpenVINO runs the current one. Order is preserved; a bad pair's error is handed
    # over in its place, so that --on-error skip can go on.
    def safe(pair: Pair) -> PairInputs | InputError:
        try:
            return fn(pair)
        except InputError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="evalkit-read") as pool:
        pending: deque[tuple[Pair, Future[PairInputs | InputError]]] = deque()
        it = iter(pairs)
        for pair in it:
            pending.append((pair, pool.submit(safe, pair)))
            if len(pending) >= depth:
                break
        try:
            while pending:
                pair, future = pending.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(safe, nxt)))
                yield pair, future.result()
        finally:  # closed early (a bad pair in fail mode): do not read what nobody will use
            for _, future in pending:
                future.cancel()


def _ground_truth_key(cache: FeatureCache, identity: str, root: Path, pair: Pair) -> str | None:
    try:
        return cache.key(identity, sha256_file(pair_files(root, pair).ground_truth))
    except OSError:  # the file went away after it was read: no caching for this pair
        return None


def _log_cache(
    cache: FeatureCache | None, before: CacheStats | None, log: Callable[[str], None] | None
) -> None:
    if cache is None or before is None or log is None:
        return
    now = cache.stats
    hits, misses = now.hits - before.hits, now.misses - before.misses
    rebuilt, failed = now.rebuilt - before.rebuilt, now.write_errors - before.write_errors
    message = f"feature cache {cache.directory}: {hits} ground truths reused, {misses} computed"
    if rebuilt:
        message += f" ({rebuilt} stale or corrupt entries rebuilt)"
    if failed:
        message += f"; {failed} entries could not be written"
    log(message)


@dataclass
class SequentialExecutor:
    """One pair after the other, one synchronous request per model (inputs read a few pairs ahead).

    The oracle of :class:`InProcessExecutor`; also the loop each Dask worker runs.

    Parameters
    ----------
    cache
        Ground-truth verifier outputs to reuse and fill (``None``: verify every ground truth).
    log
        Receives one line with the cache's hits and misses at the end of a run (the CLI's ``log``).
    save_images
        If given, every generated image is kept as ``save_images/MODEL/PAIR_ID.png`` (``--save-images``).
    """

    cache: FeatureCache | None = None
    log: Callable[[str], None] | None = None
    save_images: Path | None = None

    def evaluate(
        self,
        config: cfg.Config,
        pairs: Sequence[Pair],
        deliver: Callable[[PairRecord], None],
        *,
        on_error: OnError,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        """See :class:`Executor`."""
        root = config.dataset.root
        assert root is not None
        core = make_core()
        translators = [load_translator(core, spec, config.runtime) for spec in config.models]
        verifier = load_verifier(core, config.verifier, config.runtime)
        cache = self.cache
        identity = VerifierIdentity.of(verifier, config.runtime).digest() if cache is not None else ""
        before = replace(cache.stats) if cache is not None else None
        steps = step_names(config)
        try:
            for pair, inputs in _prefetched(lambda p: prepare_pair(root, p), pairs, PREFETCH_DEPTH):
                key, cached = None, None
                try:
                    if isinstance(inputs, InputError):
                        raise inputs
                    if cache is not None:
                        key = _ground_truth_key(cache, identity, root, pair)
                        cached = cache.get(key) if key is not None else None
                    gt_out = cached if cached is not None else verifier(inputs.ground_truth)
                    record = evaluate_pair(
                        inputs, translators, verifier, config.metrics, self.save_images, gt_output=gt_out
                    )
                except InputError as exc:
                    if on_error != "skip":
                        raise
                    record = skipped_record(pair, str(exc))
                else:
                    if cache is not None and key is not None and cached is None:
                        cache.put(key, gt_out)
                deliver(record)
                for step in steps if on_step is not None else ():
                    on_step(step)
        finally:
            _log_cache(cache, before, self.log)


# ------------------------------------------------------------------------------------------- pipelined


@dataclass
class _ModelPart:
    """One model's share of one pair."""

    scores: dict[str, float | None] | None = None
    out: VerifierOutput | None = None
    error: BaseException | None = None  #: the first failure (translation, scoring or verifier)


@dataclass
class _Job:
    """One pair in flight. Only the calling thread changes it (other threads send events)."""

    pair: Pair
    n_models: int
    inputs: PairInputs | None = None
    feeds: list[dict[str, np.ndarray] | None] = field(default_factory=list)
    read_error: BaseException | None = None
    read_done: bool = False
    gt_key: str | None = None
    gt: VerifierOutput | None = None
    gt_cached: bool = False
    gt_error: BaseException | None = None
    parts: list[_ModelPart] = field(default_factory=list)
    outstanding: int = 0  #: steps started and not yet finished
    stepped: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.parts = [_ModelPart() for _ in range(self.n_models)]

    @property
    def done(self) -> bool:
        return self.read_done and self.outstanding == 0

    def first_error(self) -> BaseException | None:
        """The pair's error in the sequential executor's order: reading, ground truth, then each model."""
        if self.read_error is not None:
            return self.read_error
        if self.gt_error is not None:
            return self.gt_error
        return next((p.error for p in self.parts if p.error is not None), None)


#: A verifier step: the ground truth (``None``) or model ``m``'s image.
_Tag = tuple[_Job, int | None]


class _InferStage:
    """A ring of infer requests of one compiled model, started by the calling thread.

    No Python code runs on OpenVINO's threads (no callbacks): a waiter thread of ours waits for each
    started request in start order, copies its outputs and posts them as an event. This keeps the GIL and
    object lifetimes simple: every OpenVINO object is created and freed on Python threads.
    """

    def __init__(self, name: str, model: CompiledModel, n_requests: int, events: queue.SimpleQueue) -> None:
        self.name = name
        self.model = model
        self.idle: list[ov.InferRequest] = [model.compiled.create_infer_request() for _ in range(n_requests)]
        self.backlog: deque[tuple[Callable[[], dict[str, np.ndarray]], Any]] = deque()
        self.started: queue.SimpleQueue = queue.SimpleQueue()
        self.waiter = threading.Thread(
            target=_wait_in_order,
            args=(self, events),
            name=f"evalkit-wait-{name}",
            daemon=True,  # never keeps the interpreter alive; close() joins it
        )
        self.waiter.start()

    def submit(self, make_inputs: Callable[[], dict[str, np.ndarray]], tag: Any) -> None:
        """Queue one inference; it starts as soon as a request is idle."""
        self.backlog.append((make_inputs, tag))
        self.pump()

    def finished(self, request: ov.InferRequest) -> None:
        """A request's outputs were read: it is idle again."""
        self.idle.append(request)
        self.pump()

    def pump(self) -> None:
        while self.idle and self.backlog:
            make_inputs, tag = self.backlog.popleft()
            request = self.idle.pop()
            try:
                # Copied into the request's own tensors (cheaper than start_async's input dispatch), so no
                # tensor of OpenVINO's refers to a NumPy array of ours while it runs.
                for name, array in make_inputs().items():
                    request.get_tensor(name).data[...] = array
                request.start_async()
            except BaseException:
                self.idle.append(request)
                self.backlog.appendleft((make_inputs, tag))
                raise
            self.started.put((request, tag))

    def close(self) -> None:
        """Drop what is not started, wait for what is, stop the waiter, free the requests (this thread)."""
        self.backlog.clear()
        self.started.put(None)
        self.waiter.join()
        self.idle.clear()


def _wait_in_order(stage: _InferStage, events: queue.SimpleQueue) -> None:
    while (item := stage.started.get()) is not None:
        request, tag = item
        try:
            request.wait()  # releases the GIL
            outs: list[np.ndarray] | BaseException = stage.model.outputs_of(request)
        except BaseException as exc:  # an OpenVINO failure: the pair reports it, in order
            outs = exc
        events.put(("inferred", stage, request, tag, outs))


@dataclass
class InProcessExecutor:
    """Evaluates pairs in this process, pipelined (the default executor).

    Reader threads (``runtime.reader_threads``) read and resize each pair once; each model and the verifier
    has a ring of infer requests (THROUGHPUT hint, ``runtime.streams`` streams, ``runtime.requests``
    requests; ``None``: OpenVINO's choice); worker threads turn each output into the image at ground-truth
    size, score it and queue it for the verifier. Only a window of pairs is in flight, so memory does not
    grow with the data set, and records are delivered in pair order with the sequential executor's fail and
    skip semantics and its numbers, bit for bit.

    Parameters
    ----------
    cache
        Ground-truth verifier outputs to reuse and fill (``None``: verify every ground truth).
    window
        Most pairs in flight (read but not yet delivered); default from the number of requests and threads.
    log
        Receives one line with the cache's hits and misses at the end of a run (the CLI's ``log``).
    save_images
        If given, every generated image is kept as ``save_images/MODEL/PAIR_ID.png`` (``--save-images``).
    """

    cache: FeatureCache | None = None
    window: int | None = None
    log: Callable[[str], None] | None = None
    save_images: Path | None = None

    def evaluate(
        self,
        config: cfg.Config,
        pairs: Sequence[Pair],
        deliver: Callable[[PairRecord], None],
        *,
        on_error: OnError,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        """See :class:`Executor`."""
        if not pairs:
            return
        before = replace(self.cache.stats) if self.cache is not None else None
        run = _PipelinedRun(config, self.cache, self.window, self.save_images, on_step or (lambda _: None))
        try:
            run.evaluate(pairs, deliver, on_error)
        finally:
            run.close()
            _log_cache(self.cache, before, self.log)


class _PipelinedRun:
    """One :meth:`InProcessExecutor.evaluate` call: compiled models, request rings, threads, pairs in flight.

    Every method but the thread targets runs on the calling thread, which alone changes the jobs: reader
    and worker threads and the waiters send events (``self.events``) and never touch shared state.
    """

    def __init__(
        self,
        config: cfg.Config,
        cache: FeatureCache | None,
        window: int | None,
        save_images: Path | None,
        on_step: Callable[[str], None],
    ) -> None:
        root = config.dataset.root
        assert root is not None
        self.root, self.spec, self.cache = root, config.metrics, cache
        self.save_images, self.on_step = save_images, on_step
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.stages: list[_InferStage] = []
        self.readers = ThreadPoolExecutor(config.runtime.reader_threads, thread_name_prefix="evalkit-read")
        self.workers = ThreadPoolExecutor(config.runtime.reader_threads, thread_name_prefix="evalkit-work")
        self.translators: list[Translator] = []
        self.verifier: Verifier | None = None
        try:
            self._start(config, window)
        except BaseException:
            self.close()  # a model that does not compile: join what was started, then report
            raise

    def _start(self, config: cfg.Config, window: int | None) -> None:
        core = make_core()
        runtime = config.runtime
        self.translators = [load_translator(core, spec, runtime, mode="throughput") for spec in config.models]
        self.verifier = load_verifier(core, config.verifier, runtime, mode="throughput")
        self.identity = VerifierIdentity.of(self.verifier, runtime).digest() if self.cache is not None else ""
        for t in self.translators:
            n = optimal_requests(t.model.compiled, runtime)
            self.stages.append(_InferStage(t.spec.name, t.model, n, self.events))
        n = optimal_requests(self.verifier.model.compiled, runtime)
        self.verifier_stage = _InferStage(VERIFIER_STEP, self.verifier.model, n, self.events)
        self.stages.append(self.verifier_stage)
        requests = sum(len(s.idle) for s in self.stages)
        self.window = window or 2 * requests + 2 * runtime.reader_threads

    # --------------------------------------------------------------------------------- the calling thread

    def evaluate(
        self, pairs: Sequence[Pair], deliver: Callable[[PairRecord], None], on_error: OnError
    ) -> None:
        in_flight: deque[_Job] = deque()
        upcoming = iter(pairs)
        n_models = len(self.translators)
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < self.window:
                pair = next(upcoming, None)
                if pair is None:
                    exhausted = True
                    break
                job = _Job(pair, n_models)
                self.readers.submit(self._read, job).add_done_callback(self._post_read(job))
                in_flight.append(job)
            if not in_flight:
                return
            if in_flight[0].done:
                self._deliver(in_flight.popleft(), deliver, on_error)
                continue
            self._handle(self.events.get())

    def _deliver(self, job: _Job, deliver: Callable[[PairRecord], None], on_error: OnError) -> None:
        error = job.first_error()
        if error is not None:
            if on_error != "skip" or not isinstance(error, InputError):
                raise error
            record = skipped_record(job.pair, str(error))
        else:
            record = self._record(job)
        deliver(record)
        for step in (*(t.spec.name for t in self.translators), VERIFIER_STEP):
            if step not in job.stepped:
                self.on_step(step)

    def _handle(self, event: tuple) -> None:
        kind = event[0]
        if kind == "read":
            self._dispatch(event[1])
        elif kind == "inferred":
            _, stage, request, tag, outs = event
            stage.finished(request)
            if stage is self.verifier_stage:
                self._verified(tag, outs)
            else:
                job, m = tag
                self.workers.submit(self._score, job, m, outs).add_done_callback(self._post_scored(job, m))
        elif kind == "scored":
            _, job, m, result = event
            job.outstanding -= 1
            part = job.parts[m]
            if isinstance(result, BaseException):
                part.error = result
                return
            scores, feed = result
            part.scores = scores
            job.stepped.add(self.translators[m].spec.name)
            self.on_step(self.translators[m].spec.name)
            job.outstanding += 1
            self.verifier_stage.submit(lambda feed=feed: feed, (job, m))

    def _post_read(self, job: _Job) -> Callable[[Future], None]:
        return lambda future: self.events.put(("read", job))

    def _post_scored(self, job: _Job, m: int) -> Callable[[Future], None]:
        def post(future: Future) -> None:
            if future.cancelled():  # the run is closing
                return
            result = future.exception() if future.exception() is not None else future.result()
            self.events.put(("scored", job, m, result))

        return post

    def _dispatch(self, job: _Job) -> None:
        """The pair is read: start the ground truth's verifier and every model."""
        job.read_done = True
        if job.read_error is not None:
            return
        inputs = job.inputs
        assert inputs is not None and self.verifier is not None
        if job.gt is None:
            job.outstanding += 1
            gt_feed = self.verifier.feed(inputs.ground_truth)  # ~1 MiB, freed once the request has copied it
            self.verifier_stage.submit(lambda: gt_feed, (job, None))
        for m, (t, stage) in enumerate(zip(self.translators, self.stages, strict=False)):
            job.outstanding += 1
            feed = job.feeds[m]

            def make(t: Translator = t, feed: dict[str, np.ndarray] | None = feed) -> dict[str, np.ndarray]:
                # host one-hot (2 x 40 MiB) is made only when a request is free to copy it
                return (
                    feed if feed is not None else t.feed(inputs.mask, inputs.exemplar, inputs.exemplar_mask)
                )

            stage.submit(make, (job, m))
        job.feeds = []

    def _verified(self, tag: _Tag, outs: list[np.ndarray] | BaseException) -> None:
        job, m = tag
        job.outstanding -= 1
        assert self.verifier is not None
        try:
            if isinstance(outs, BaseException):
                raise outs
            error = self.verifier.model.check_finite(outs)
            if error is not None:
                raise error
            out = Verifier.output(outs)
        except BaseException as exc:
            if m is None:
                job.gt_error = exc
            elif job.parts[m].error is None:
                job.parts[m].error = exc
            return
        if m is None:
            job.gt = out
        else:
            job.parts[m].out = out
        if job.outstanding == 0 and job.inputs is not None:
            job.inputs = None  # the record keeps scores and features only

    def _record(self, job: _Job) -> PairRecord:
        assert job.gt is not None
        if self.cache is not None and job.gt_key is not None and not job.gt_cached:
            self.cache.put(job.gt_key, job.gt)
        models = {}
        for t, part in zip(self.translators, job.parts, strict=True):
            assert part.scores is not None and part.out is not None
            models[t.spec.name] = model_record(part.scores, part.out)
        return PairRecord(
            index=job.pair.index, pair_id=job.pair.val_id, gt_features=job.gt.features, models=models
        )

    # ------------------------------------------------------------------------- reader and worker threads

    def _read(self, job: _Job) -> None:
        # On a reader thread; the job is not yet known to the calling thread's handlers (its "read" event
        # comes after this returns), so writing it here is safe.
        try:
            inputs = prepare_pair(self.root, job.pair)
            if self.cache is not None:
                job.gt_key = _ground_truth_key(self.cache, self.identity, self.root, job.pair)
                if job.gt_key is not None:
                    job.gt = self.cache.get(job.gt_key)
                    job.gt_cached = job.gt is not None
            job.feeds = [
                t.feed(inputs.mask, inputs.exemplar, inputs.exemplar_mask) if t.one_hot == "graph" else None
                for t in self.translators
            ]
            job.inputs = inputs
        except BaseException as exc:
            job.read_error = exc

    def _score(self, job: _Job, m: int, outs: list[np.ndarray] | BaseException) -> tuple[dict, dict]:
        # On a worker thread: reads the job's inputs (set before any model started), writes nothing shared.
        if isinstance(outs, BaseException):
            raise outs
        t = self.translators[m]
        error = t.model.check_finite(outs)
        if error is not None:
            raise error
        inputs = job.inputs
        assert inputs is not None and self.verifier is not None
        image = finish_image(outs[0], inputs.ground_truth)
        if self.save_images is not None:
            save_image(image, saved_image_path(self.save_images, t.spec.name, job.pair))
        return sample_scores(job.pair.val_id, image, inputs.ground_truth, self.spec), self.verifier.feed(
            image
        )

    # ------------------------------------------------------------------------------------------------ end

    def close(self) -> None:
        """Stop reading, let what OpenVINO runs finish, join every thread, free every OpenVINO object here.

        Called on the calling thread whatever ended the run; afterwards this object holds no OpenVINO object,
        so a traceback that keeps it alive keeps no compiled model alive.
        """
        self.readers.shutdown(wait=True, cancel_futures=True)
        for stage in self.stages:
            stage.close()
        self.workers.shutdown(wait=True, cancel_futures=True)
        while True:  # events hold requests and outputs
            try:
                self.events.get_nowait()
            except queue.Empty:
                break
        self.stages.clear()
        self.verifier_stage = None  # type: ignore[assignment]
        self.translators.clear()
        self.verifier = None


__all__ = [
    "PREFETCH_DEPTH",
    "VERIFIER_STEP",
    "Executor",
    "InProcessExecutor",
    "OnError",
    "SequentialExecutor",
    "step_names",
]
