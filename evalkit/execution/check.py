"""The one list of checks of a run's inputs: ``evalkit check`` runs them all, ``evalkit run`` the first part.

:func:`pre_run_problems` yields, lazily and in order, the problems that ``run`` looks for before any
inference: the data root, the pairs file, the output folder, each model, the verifier (cheap checks first).
``run`` stops at the first one; :func:`check` lists every one and then checks every file of every pair
(in parallel threads: OpenCV and Pillow release the GIL while decoding), which ``run`` does lazily, pair by
pair, so that a two-hour run does not die at pair 1900.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalkit import config as cfg
from evalkit.data.ade20k import Pair, PairsFile, check_root, read_pair, read_pairs_file
from evalkit.errors import InputError
from evalkit.execution.cache import cache_root as cache_folder
from evalkit.execution.pair import IMAGES_MARKER, saved_image_path
from evalkit.fileio import SET_CHECKSUMS, foreign_files
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
    """Why ``output`` cannot take a run's files, or ``None`` if it can.

    Nothing is created: a missing folder is judged by its nearest existing parent (a check that refuses a
    run must leave no folder behind, e.g. inside the data root). ``what`` names the folder in the message
    (``--save-images`` folders are checked the same way).
    """
    if output is None:
        return None
    if output.exists() and not output.is_dir():
        return f"{output}: {what} is a file, not a folder"
    existing = output
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{output}: {what} is not writable ({existing} is a file, not a folder)"
    if existing != output:  # access() also says EROFS for a read-only file system
        if not os.access(existing, os.W_OK | os.X_OK):
            return f"{output}: {what} is not writable (cannot create it in {existing})"
        return None
    try:
        probe = output / ".evalkit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return f"{output}: {what} is not writable ({exc.strerror})"
    return None


#: The keys of a run's outputs (see :func:`executor_outputs`): the flag or folder each message names.
OUTPUT_KEY = "--output"
SAVE_IMAGES_KEY = "--save-images"
CACHE_KEY = "--cache-dir"
GALLERY_KEY = "gallery folder"
#: The gallery's folder inside ``--output``.
GALLERY_FOLDER = "gallery"
#: What a run's result set may hold in ``--output`` (see :func:`evalkit.fileio.file_set`); results.json last.
RESULT_SET_NAMES = (
    "summary.csv", "per_sample.csv", "report.md", "report.html", "gate.md", GALLERY_FOLDER, "results.json",
)  # fmt: skip


def executor_outputs(executor: object) -> dict[str, Path]:
    """The folders ``executor`` writes into, keyed by the flag that names them: its ``--save-images``
    folder and evalkit's cache folder (``--cache-dir``: the parent of its ``features`` and
    ``ov-compiled`` folders), as far as the executor has them (any executor may have none)."""
    outputs: dict[str, Path] = {}
    save_images = getattr(executor, "save_images", None)
    if save_images is not None:
        outputs[SAVE_IMAGES_KEY] = Path(save_images)
    feature_cache = getattr(getattr(executor, "cache", None), "directory", None)
    for inner in (feature_cache, getattr(executor, "compiled_cache", None)):
        if inner is not None:  # CACHE/features, CACHE/ov-compiled: the flag names CACHE
            outputs.setdefault(CACHE_KEY, Path(inner).parent)
    return outputs


def run_outputs(
    output: Path | None,
    *,
    save_images: Path | None = None,
    cache_root: Path | None = None,
    use_cache: bool = True,
    gallery: bool = True,
) -> dict[str, Path | None]:
    """The folders ``evalkit run`` with these flags writes into, keyed by flag (what ``evalkit check``
    checks; a run takes them from its executor, :func:`executor_outputs`)."""
    return {
        OUTPUT_KEY: output,
        GALLERY_KEY: output / GALLERY_FOLDER if output is not None and gallery else None,
        SAVE_IMAGES_KEY: save_images,
        CACHE_KEY: cache_folder(cache_root) if use_cache else None,
    }


def output_conflicts(config: cfg.Config, outputs: Mapping[str, Path | None]) -> Iterator[str]:
    """Yield, one line each, every output folder that would land on an input of ``config``.

    An output (``outputs``: flag or folder name -> folder) may not be the data root or inside it, nor the
    folder that holds a model or the verifier, nor the pairs file's folder itself (a new sub-folder of
    those folders is fine: nothing of the run's inputs is in it). Paths are compared resolved (symlinks
    followed, relative paths made absolute), so that another spelling of an input folder is caught too.
    """
    inputs: list[tuple[Path, str]] = []  # (folder, what it is), for the folders an output may not be
    for spec in config.models:
        if spec.path is not None:
            inputs.append((_holding_folder(spec.path), f"the folder of model {spec.name!r} ({spec.path})"))
    if config.verifier.path is not None:
        verifier = config.verifier.path
        inputs.append((_holding_folder(verifier), f"the folder of the verifier ({verifier})"))
    if config.dataset.pairs is not None:
        inputs.append(
            (config.dataset.pairs.resolve().parent, f"the folder of the pairs file ({config.dataset.pairs})")
        )
    root = config.dataset.root.resolve() if config.dataset.root is not None else None
    for key, folder in outputs.items():
        if folder is None:
            continue
        where = Path(folder).expanduser().resolve()
        if root is not None and (where == root or root in where.parents):
            inside = "the data root" if where == root else "inside the data root"
            yield f"{folder}: {key} is {inside} {config.dataset.root}; outputs never go among the inputs"
            continue
        for input_folder, what in inputs:
            if where == input_folder:
                yield f"{folder}: {key} is {what}; use a new folder (a new sub-folder of it is fine)"
                break


def _holding_folder(path: Path) -> Path:
    # The folder that holds a model file (a model given as a folder is that folder).
    resolved = path.expanduser().resolve()
    return resolved if resolved.is_dir() else resolved.parent


def saved_images_conflict(
    save_images: Path | None, model_names: list[str], pairs: tuple[Pair, ...] | list[Pair]
) -> str | None:
    """Why the run's saved images would overwrite files evalkit did not write, or ``None``.

    A ``--save-images`` folder without evalkit's marker (:data:`evalkit.execution.pair.IMAGES_MARKER`,
    written with its first image) is not evalkit's: an existing ``MODEL/PAIR_ID.png`` there is someone
    else's file, and the run is refused before any inference, naming the first such file.
    """
    if save_images is None or (save_images / IMAGES_MARKER).is_file():
        return None
    taken = [
        path
        for name in model_names
        for pair in pairs
        if (path := saved_image_path(save_images, name, pair)).exists()
    ]
    if not taken:
        return None
    more = f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""
    return (
        f"{taken[0]}: exists and was not written by evalkit{more}; --save-images never overwrites it "
        "(choose an empty folder)"
    )


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
    outputs: Mapping[str, Path | None] | None = None,
    on_pairs_file: Callable[[PairsFile], None] | None = None,
) -> Iterator[str]:
    """Yield the problems of a run's inputs that are checked before inference, one line each, in order.

    Data root, pairs file, the run's output folders (``outputs``: flag -> folder, see
    :func:`executor_outputs`; ``output`` is one of them, ``--output``) kept off its inputs
    (:func:`output_conflicts`) and ``--save-images`` off files evalkit did not write
    (:func:`saved_images_conflict`), ``output`` (created if missing; ``None``: not checked), each
    translation model and the verifier (read, compiled and probed: files, inputs, output sizes, a
    probability vector; see :func:`evalkit.runtime.verifier.probe_verifier`). Lazy: a caller that stops at the
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
    all_outputs = {OUTPUT_KEY: output, **(outputs or {})}
    try:
        pairs_file = read_pairs_file(config.dataset.pairs, limit=config.dataset.limit)
    except InputError as exc:
        yield str(exc)
    else:
        if on_pairs_file is not None:
            on_pairs_file(pairs_file)
        problem = saved_images_conflict(
            all_outputs.get(SAVE_IMAGES_KEY), [m.name for m in config.models], pairs_file.pairs
        )
        if problem:
            yield problem
    # before the output folder is created: a refused run leaves nothing among its inputs
    conflicts = list(output_conflicts(config, all_outputs))
    yield from conflicts
    problem = None if conflicts else output_problem(output)
    if problem:
        yield problem
    foreign = foreign_files(output, RESULT_SET_NAMES) if output is not None and output.is_dir() else []
    if foreign:  # the result set would replace it: say so now, not after the inference
        yield (
            f"{foreign[0]}: not written by evalkit (not listed in {output / SET_CHECKSUMS}); move it away or "
            "choose another --output"
        )
    core = make_core()
    for spec in config.models:
        yield from _failure(read_translator_model, core, spec)
    # Compiled and probed once (one inference on a grey image): a logits output or swapped outputs show
    # only in the values, and no IS/FID may come from such a verifier.
    yield from _failure(load_verifier, core, config.verifier, config.runtime)


def require_runnable(
    config: cfg.Config, *, output: Path | None, outputs: Mapping[str, Path | None] | None = None
) -> PairsFile:
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
    problem = next(
        pre_run_problems(config, output=output, outputs=outputs, on_pairs_file=read.append), None
    )
    if problem is not None:
        raise InputError(problem)
    (pairs_file,) = read
    return pairs_file


def check(
    config: cfg.Config,
    *,
    outputs: Mapping[str, Path | None] | None = None,
    workers: int = 4,
    progress: Callable[[int, int], None] | None = None,
) -> CheckReport:
    """Check everything a run of ``config`` reads or writes; list every problem, not the first one.

    The checks of :func:`pre_run_problems` (with ``config.output`` and ``outputs``), then every file of
    every pair: present, decodable, labels within 0..150, masks the size of their images.
    ``progress(done, total)`` is called as pairs are checked.

    Raises
    ------
    InputError
        Only when the config lacks a path a run needs.
    """
    read: list[PairsFile] = []
    problems = list(
        pre_run_problems(config, output=config.output, outputs=outputs, on_pairs_file=read.append)
    )
    root = config.dataset.root
    assert root is not None
    try:
        check_root(root)
    except InputError:  # listed above; without a data root no pair can be checked
        read.clear()
    pairs = list(read[0].pairs) if read else []  # none when the pairs file is unusable (listed above)

    def pair_problem(pair: Pair) -> str | None:
        try:
            read_pair(root, pair, max_pixels=config.dataset.max_pixels)
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
