"""Choosing and building an executor from the run's settings (what ``evalkit run`` flags ask for).

One function, so the CLI, ``evalkit demo`` and the library build the same executor with the same caches:
the ground-truth feature cache (``CACHE/features``) and OpenVINO's compiled-model cache
(``CACHE/ov-compiled``), both off with ``use_cache=False`` (``--no-cache``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from evalkit.errors import InputError
from evalkit.execution.cache import FeatureCache, compiled_models_dir, default_cache_dir
from evalkit.execution.check import output_problem
from evalkit.execution.inprocess import Executor, InProcessExecutor

ExecutorKind = Literal["inprocess", "dask"]


def make_executor(
    kind: ExecutorKind = "inprocess",
    *,
    use_cache: bool = True,
    cache_root: Path | None = None,
    save_images: Path | None = None,
    log: Callable[[str], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    shard_size: int | None = None,
) -> Executor:
    """The executor for a run: in this process (pipelined) or on a Dask cluster, with evalkit's caches.

    Parameters
    ----------
    kind
        ``"inprocess"`` or ``"dask"``.
    use_cache
        Use the ground-truth feature cache and OpenVINO's compiled-model cache in ``cache_root``
        (``--no-cache``: ``False``).
    cache_root
        evalkit's cache folder (``--cache-dir``; default :func:`evalkit.execution.cache.cache_root`). With
        Dask, the workers read and write it: on several machines it must be a shared folder.
    save_images
        Keep every generated image as ``save_images/MODEL/PAIR_ID.png`` (``--save-images``).
    log
        Receives the feature cache's line at the end of a run.
    scheduler, workers, shard_size
        Dask only: a scheduler address or a number of local workers (exactly one), and pairs per task.

    Returns
    -------
    Executor
        A :class:`~evalkit.execution.distributed.DaskExecutor` is a context manager: close it after use.

    Raises
    ------
    InputError
        Dask options without ``kind="dask"``, both or neither of ``scheduler`` and ``workers`` with it,
        Dask not installed, or a ``save_images`` folder that cannot be created or written.
    """
    # a folder that cannot take the images is bad input now, not an OSError after the first pairs
    problem = output_problem(save_images, "--save-images folder")
    if problem:
        raise InputError(problem)
    cache = FeatureCache(default_cache_dir(cache_root)) if use_cache else None
    compiled_cache = compiled_models_dir(cache_root) if use_cache else None
    if kind == "dask":
        if (scheduler is None) == (workers is None):
            raise InputError("--executor dask: give either --scheduler tcp://HOST:PORT or --workers N")
        # imports dask only now: without it, InputError "pip install 'evalkit[distributed]'"
        from evalkit.execution.distributed import DEFAULT_SHARD_SIZE, DaskExecutor

        return DaskExecutor(
            scheduler=scheduler,
            workers=workers,
            shard_size=shard_size or DEFAULT_SHARD_SIZE,
            cache=cache,
            log=log,
            save_images=save_images,
            compiled_cache=compiled_cache,
        )
    if any(value is not None for value in (scheduler, workers, shard_size)):
        raise InputError("--scheduler, --workers and --shard-size need --executor dask")
    return InProcessExecutor(cache=cache, save_images=save_images, log=log, compiled_cache=compiled_cache)


__all__ = ["ExecutorKind", "make_executor"]
