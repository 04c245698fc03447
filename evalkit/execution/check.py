"""``evalkit check``: validate a run's every input before any inference, and list every problem found.

The same checks run lazily, pair by pair, during ``evalkit run``; ``check`` runs them all up front (the
pairs in parallel threads: OpenCV and Pillow release the GIL while decoding) so that a two-hour run does
not die at pair 1900.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from evalkit import config as cfg
from evalkit.data.ade20k import Pair, check_root, read_pair, read_pairs
from evalkit.errors import InputError
from evalkit.runtime.core import make_core
from evalkit.runtime.translator import read_translator_model
from evalkit.runtime.verifier import read_verifier_model


@dataclass(frozen=True)
class CheckReport:
    """What ``check`` looked at and the one-line problems it found (empty when all is well)."""

    n_pairs: int
    n_models: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def output_problem(output: Path | None) -> str | None:
    """Why ``output`` cannot take a run's files (created if missing), or ``None`` if it can."""
    if output is None:
        return None
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".evalkit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{output}: output directory is not writable ({exc.strerror})"
    return None


def check(
    config: cfg.Config, *, workers: int = 4, progress: Callable[[int, int], None] | None = None
) -> CheckReport:
    """Check config, data root, pairs file, every file of every pair, the models and the output folder.

    Problems that make further checks meaningless (an incomplete config, a missing data root or pairs
    file) are raised as :class:`~evalkit.errors.InputError`; everything else is collected.
    """
    cfg.require_complete(config)
    assert config.dataset.root is not None and config.dataset.pairs is not None
    root = config.dataset.root
    check_root(root)
    pairs = read_pairs(config.dataset.pairs, limit=config.dataset.limit)
    problems: list[str] = []

    core = make_core()
    for spec in config.models:
        try:
            read_translator_model(core, spec)
        except InputError as exc:
            problems.append(str(exc))
    try:
        read_verifier_model(core, config.verifier)
    except InputError as exc:
        problems.append(str(exc))
    problem = output_problem(config.output)
    if problem:
        problems.append(problem)

    def check_pair(pair: Pair) -> str | None:
        try:
            read_pair(root, pair)
        except InputError as exc:
            return str(exc)
        return None

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="evalkit-check") as pool:
        for done, problem in enumerate(pool.map(check_pair, pairs), start=1):
            if problem:
                problems.append(problem)
            if progress is not None:
                progress(done, len(pairs))
    return CheckReport(n_pairs=len(pairs), n_models=len(config.models), problems=tuple(problems))
