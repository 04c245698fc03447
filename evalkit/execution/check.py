"""The one list of checks of a run's inputs: ``evalkit check`` runs them all, ``evalkit run`` the first part.

:func:`pre_run_problems` yields, lazily and in order, the problems that ``run`` looks for before any
inference: the data root, the pairs file, the output folder, each model, the verifier (cheap checks first).
``run`` stops at the first one; :func:`check` lists every one and then checks every file of every pair
(in parallel threads: OpenCV and Pillow release the GIL while decoding), which ``run`` does lazily, pair by
pair, so that a two-hour run does not die at pair 1900.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit import config as cfg
from evalkit.data.ade20k import Pair, PairsFile, check_root, read_pair, read_pairs_file
from evalkit.errors import InputError
from evalkit.runtime.core import make_core
from evalkit.runtime.translator import read_translator_model
from evalkit.runtime.verifier import load_verifier


@dataclass(frozen=True)
class CheckReport:
    """What ``check`` looked at and the one-line problems it found (empty when all is well)."""

    n_pairs: int  #: pairs checked (0 when the data root or the pairs file is unusable)
    n_models: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def output_problem(output: Path | None, what: str = "output directory") -> str | None:
    """Why ``output`` cannot take a run's files (created if missing), or ``None`` if it can.

    ``what`` names the folder in the message (``--save-images`` folders are checked the same way).
    """
    if output is None:
        return None
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".evalkit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{output}: {what} is not writable ({exc.strerror})"
    return None


def _failure(step: Callable[..., Any], *args: Any, **kwargs: Any) -> Iterator[str]:
    # One check: its one-line problem, if it raises InputError.
    try:
        step(*args, **kwargs)
    except InputError as exc:
        yield str(exc)


def pre_run_problems(
    config: cfg.Config,
    *,
    output: Path | None,
    on_pairs_file: Callable[[PairsFile], None] | None = None,
) -> Iterator[str]:
    """Yield the problems of a run's inputs that are checked before inference, one line each, in order.

    Data root, pairs file, ``output`` (created if missing; ``None``: not checked), each translation model
    and the verifier (read, compiled and probed: files, inputs, output sizes, a probability vector; see
    :func:`evalkit.runtime.verifier.probe_verifier`). Lazy: a caller that stops at the
    first problem pays for no later check. The pairs file is read once, here: ``on_pairs_file`` receives
    it as parsed (pairs and the hash of the bytes read), so that no caller reads it again (a pipe cannot
    be read twice, and a file can change between two reads).

    Raises
    ------
    InputError
        When the config lacks a path a run needs (no check can be made without it).
    """
    cfg.require_complete(config)
    assert config.dataset.root is not None and config.dataset.pairs is not None
    yield from _failure(check_root, config.dataset.root)
    try:
        pairs_file = read_pairs_file(config.dataset.pairs, limit=config.dataset.limit)
    except InputError as exc:
        yield str(exc)
    else:
        if on_pairs_file is not None:
            on_pairs_file(pairs_file)
    problem = output_problem(output)
    if problem:
        yield problem
    core = make_core()
    for spec in config.models:
        yield from _failure(read_translator_model, core, spec)
    # Compiled and probed once (one inference on a grey image): a logits output or swapped outputs show
    # only in the values, and no IS/FID may come from such a verifier.
    yield from _failure(load_verifier, core, config.verifier, config.runtime)


def require_runnable(config: cfg.Config, *, output: Path | None) -> PairsFile:
    """Raise the first problem :func:`pre_run_problems` finds (what ``run`` does before inference).

    Returns
    -------
    PairsFile
        The pairs file as read by the checks (the one read a run makes of it).

    Raises
    ------
    InputError
        The first problem, one line naming the file or key.
    """
    read: list[PairsFile] = []
    problem = next(pre_run_problems(config, output=output, on_pairs_file=read.append), None)
    if problem is not None:
        raise InputError(problem)
    (pairs_file,) = read
    return pairs_file


def check(
    config: cfg.Config, *, workers: int = 4, progress: Callable[[int, int], None] | None = None
) -> CheckReport:
    """Check everything a run of ``config`` reads or writes; list every problem, not the first one.

    The checks of :func:`pre_run_problems` (with ``config.output``), then every file of every pair:
    present, decodable, labels within 0..150, masks the size of their images. ``progress(done, total)``
    is called as pairs are checked.

    Raises
    ------
    InputError
        Only when the config lacks a path a run needs.
    """
    read: list[PairsFile] = []
    problems = list(pre_run_problems(config, output=config.output, on_pairs_file=read.append))
    root = config.dataset.root
    assert root is not None
    try:
        check_root(root)
    except InputError:  # listed above; without a data root no pair can be checked
        read.clear()
    pairs = list(read[0].pairs) if read else []  # none when the pairs file is unusable (listed above)

    def pair_problem(pair: Pair) -> str | None:
        try:
            read_pair(root, pair)
        except InputError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalkit-check") as pool:
        for done, problem in enumerate(pool.map(pair_problem, pairs), start=1):
            if problem:
                problems.append(problem)
            if progress is not None:
                progress(done, len(pairs))
    return CheckReport(n_pairs=len(pairs), n_models=len(config.models), problems=tuple(problems))
