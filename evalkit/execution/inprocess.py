"""Executors: who evaluates the pairs. The default runs them in this process, pipelined;
``evalkit.execution.distributed``
runs them on a Dask cluster. Either way records come back in pair order, so the
journal and the metrics are the same whichever executor ran.

:class:`InProcessExecutor` (the default) overlaps every step of every pair: reader threads read, decode
and resize pairs; each model and the verifier has a ring of infer requests started asynchronously
(THROUGHPUT hint); worker threads turn outputs into images and scores; the calling thread only routes
finished steps and delivers records in pair order. :class:`SequentialExecutor` does one step after the
other with one synchronous request per model: it is the oracle the pipelined one is tested against.
Both run the steps of :class:`~evalkit.execution.pair.PairEvaluator` (the sequential one its pair loop,
which the Dask workers run too) with models compiled by :func:`evalkit.runtime.models.compile_models`;
they differ only in how they schedule them.

Every model is compiled with one CPU thread per stream (:data:`evalkit.runtime.core.THREADS_PER_STREAM`), so
both executors, and any number of streams, requests or threads, give the same bits.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import openvino as ov

from evalkit import config as cfg
from evalkit.data.ade20k import Pair
from evalkit.errors import InputError
from evalkit.execution.cache import FeatureCache, GroundTruthCache
from evalkit.execution.journal import PairRecord
from evalkit.execution.pair import (
    PREFETCH_DEPTH,
    ImageSink,
    OnError,
    PairEvaluator,
    PairInputs,
    finish_image,
    model_record,
    pair_record,
    skipped_record,
)
from evalkit.runtime.core import CompiledModel, optimal_requests
from evalkit.runtime.models import ModelSet, compile_models
from evalkit.runtime.translator import Translator
from evalkit.runtime.verifier import Verifier, VerifierOutput

#: The progress step of the verifier (the models' steps are their names).
VERIFIER_STEP = "verifier"


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


def ground_truth_cache(
    cache: FeatureCache | None, models: ModelSet, config: cfg.Config
) -> GroundTruthCache | None:
    """The run's :class:`~evalkit.execution.cache.GroundTruthCache` over ``cache`` (``None``: no cache)."""
    if cache is None:
        return None
    assert config.dataset.root is not None
    return GroundTruthCache(cache, models.verifier, config.runtime)


def _log_cache_use(ground_truths: GroundTruthCache | None, log: Callable[[str], None] | None) -> None:
    if ground_truths is not None and log is not None:
        log(ground_truths.report())


@dataclass
class InProcessOptions:
    """What both in-process executors take (one set of fields, one place that documents them).

    Parameters
    ----------
    cache
        Ground-truth verifier outputs to reuse and fill (``None``: verify every ground truth).
    log
        Receives one line with the cache's hits and misses at the end of a run (the CLI's ``log``).
    save_images
        If given, every generated image is kept as ``save_images/MODEL/PAIR_ID.png`` (``--save-images``).
    compiled_cache
        OpenVINO's compiled-model cache folder (``None``: the models are compiled every run).
    on_image
        Receives every generated image and its scores (:data:`evalkit.execution.pair.ImageSink`); the
        pipelined executor calls it from its worker threads.
    """

    cache: FeatureCache | None = None
    log: Callable[[str], None] | None = None
    save_images: Path | None = None
    compiled_cache: Path | None = None
    on_image: ImageSink | None = None


@dataclass
class SequentialExecutor(InProcessOptions):
    """One pair after the other, one synchronous request per model (inputs read a few pairs ahead).

    The oracle of :class:`InProcessExecutor`; also the loop each Dask worker runs. Options: see
    :class:`InProcessOptions`.
    """

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
        models = compile_models(config, compiled_cache=self.compiled_cache)
        ground_truths = ground_truth_cache(self.cache, models, config)
        evaluator = PairEvaluator(
            root, models, config.metrics, ground_truths, self.save_images, self.on_image,
            max_pixels=config.dataset.max_pixels,
        )
        steps = step_names(config)
        try:
            with contextlib.closing(evaluator.records(pairs, on_error)) as records:
                for record in records:
                    deliver(record)
                    for step in steps if on_step is not None else ():
                        on_step(step)
        finally:
            _log_cache_use(ground_truths, self.log)


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
    files_sha256: Mapping[str, str] | None = None  #: kept after ``inputs`` is freed, for the record
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
class InProcessExecutor(InProcessOptions):
    """Evaluates pairs in this process, pipelined (the default executor).

    Reader threads (``runtime.reader_threads``) read and resize each pair once; each model and the verifier
    has a ring of infer requests (THROUGHPUT hint, ``runtime.streams`` streams, ``runtime.requests``
    requests; ``None``: OpenVINO's choice); worker threads turn each output into the image at ground-truth
    size, score it and queue it for the verifier. Only a window of pairs is in flight, so memory does not
    grow with the data set, and records are delivered in pair order with the sequential executor's fail and
    skip semantics and its numbers, bit for bit.

    Parameters
    ----------
    window
        Most pairs in flight (read but not yet delivered); default from the number of requests and threads.

    The other options: see :class:`InProcessOptions`.
    """

    window: int | None = None

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
        run = _PipelinedRun(config, self, on_step or (lambda _: None))
        try:
            run.evaluate(pairs, deliver, on_error)
        finally:
            run.close()
            _log_cache_use(run.ground_truths, self.log)


class _PipelinedRun:
    """One :meth:`InProcessExecutor.evaluate` call: compiled models, request rings, threads, pairs in flight.

    Every method but the thread targets runs on the calling thread, which alone changes the jobs: reader
    and worker threads and the waiters send events (``self.events``) and never touch shared state.
    """

    def __init__(
        self, config: cfg.Config, executor: InProcessExecutor, on_step: Callable[[str], None]
    ) -> None:
        self.on_step = on_step
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.stages: list[_InferStage] = []
        self.readers = ThreadPoolExecutor(config.runtime.reader_threads, thread_name_prefix="evalkit-read")
        self.workers = ThreadPoolExecutor(config.runtime.reader_threads, thread_name_prefix="evalkit-work")
        self.translators: list[Translator] = []
        self.verifier: Verifier | None = None
        self.evaluator: PairEvaluator | None = None
        self.ground_truths: GroundTruthCache | None = None
        try:
            self._start(config, executor)
        except BaseException:
            self.close()  # a model that does not compile: join what was started, then report
            raise

    def _start(self, config: cfg.Config, executor: InProcessExecutor) -> None:
        root = config.dataset.root
        assert root is not None
        runtime = config.runtime
        models = compile_models(config, mode="throughput", compiled_cache=executor.compiled_cache)
        self.translators, self.verifier = list(models.translators), models.verifier
        self.ground_truths = ground_truth_cache(executor.cache, models, config)
        self.evaluator = PairEvaluator(
            root, models, config.metrics, self.ground_truths, executor.save_images, executor.on_image,
            max_pixels=config.dataset.max_pixels,
        )
        for t in self.translators:
            n = optimal_requests(t.model.compiled, runtime)
            self.stages.append(_InferStage(t.spec.name, t.model, n, self.events))
        n = optimal_requests(self.verifier.model.compiled, runtime)
        self.verifier_stage = _InferStage(VERIFIER_STEP, self.verifier.model, n, self.events)
        self.stages.append(self.verifier_stage)
        requests = sum(len(s.idle) for s in self.stages)
        self.window = executor.window or 2 * requests + 2 * runtime.reader_threads

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
        job.files_sha256 = inputs.files_sha256
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
        assert job.gt is not None and self.evaluator is not None
        if not job.gt_cached:
            self.evaluator.keep_ground_truth(job.gt_key, job.gt)
        models = {}
        for t, part in zip(self.translators, job.parts, strict=True):
            assert part.scores is not None and part.out is not None
            models[t.spec.name] = model_record(part.scores, part.out)
        assert job.files_sha256 is not None
        return pair_record(job.pair, job.files_sha256, job.gt, models)

    # ------------------------------------------------------------------------- reader and worker threads

    def _read(self, job: _Job) -> None:
        # On a reader thread; the job is not yet known to the calling thread's handlers (its "read" event
        # comes after this returns), so writing it here is safe.
        assert self.evaluator is not None
        try:
            inputs = self.evaluator.read(job.pair)
            job.gt_key, job.gt = self.evaluator.cached_ground_truth(inputs)
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
        assert inputs is not None and self.verifier is not None and self.evaluator is not None
        image = finish_image(outs[0], inputs.ground_truth)
        return self.evaluator.score(t.spec.name, image, inputs), self.verifier.feed(image)

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
        self.evaluator = None  # holds the compiled models too


__all__ = [
    "PREFETCH_DEPTH",
    "VERIFIER_STEP",
    "Executor",
    "InProcessExecutor",
    "InProcessOptions",
    "OnError",
    "SequentialExecutor",
    "step_names",
]
