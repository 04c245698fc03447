"""Executors: who evaluates the pairs. The default runs them in this process; ``evalkit.distributed`` runs
them on a Dask cluster. Either way records come back in pair order, so the journal and the metrics are
the same whichever executor ran.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Protocol

from evalkit import config as cfg
from evalkit.data import Pair
from evalkit.errors import InputError
from evalkit.evaluation import PairInputs, evaluate_pair, prepare_pair, skipped_record
from evalkit.journal import PairRecord
from evalkit.runtime import make_core
from evalkit.translator import load_translator
from evalkit.verifier import load_verifier

OnError = Literal["fail", "skip"]
#: How many pairs are read and preprocessed ahead of inference.
PREFETCH_DEPTH = 4


class Executor(Protocol):
    """Evaluates pairs and hands each record to ``deliver`` in pair order.

    In ``on_error="fail"`` mode the first bad pair raises :class:`~evalkit.errors.InputError` after every
    record before it was delivered; in ``"skip"`` mode a bad pair is delivered as a skipped record.
    """

    def evaluate(
        self,
        config: cfg.Config,
        pairs: Sequence[Pair],
        deliver: Callable[[PairRecord], None],
        *,
        on_error: OnError,
    ) -> None: ...


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
        queue: deque[tuple[Pair, Future[PairInputs | InputError]]] = deque()
        it = iter(pairs)
        for pair in it:
            queue.append((pair, pool.submit(safe, pair)))
            if len(queue) >= depth:
                break
        while queue:
            pair, future = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(safe, nxt)))
            yield pair, future.result()


class InProcessExecutor:
    """Evaluates pairs in this process: models compiled once, inputs prepared one pair ahead.

    Parameters
    ----------
    save_images
        If given, every generated image is kept as ``save_images/MODEL/PAIR_ID.png`` (``--save-images``).
    """

    def __init__(self, save_images: Path | None = None) -> None:
        self.save_images = save_images

    def evaluate(
        self,
        config: cfg.Config,
        pairs: Sequence[Pair],
        deliver: Callable[[PairRecord], None],
        *,
        on_error: OnError,
    ) -> None:
        root = config.dataset.root
        assert root is not None
        core = make_core()
        translators = [load_translator(core, spec, config.runtime) for spec in config.models]
        verifier = load_verifier(core, config.verifier, config.runtime)
        for pair, inputs in _prefetched(lambda p: prepare_pair(root, p), pairs, PREFETCH_DEPTH):
            try:
                if isinstance(inputs, InputError):
                    raise inputs
                record = evaluate_pair(inputs, translators, verifier, config.metrics, self.save_images)
            except InputError as exc:
                if on_error != "skip":
                    raise
                record = skipped_record(pair, str(exc))
            deliver(record)
