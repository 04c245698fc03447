"""The one place that compiles a config's models: every translation model and the verifier.

Every executor, the Dask workers and the gallery call :func:`compile_models` (or
:func:`compile_translators`), so the models are compiled the same way everywhere (one thread per stream,
the inference precision pinned: :func:`evalkit.runtime.core.compile_model`) and any of them can use
OpenVINO's compiled-model cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import openvino as ov

from evalkit import config as cfg
from evalkit.runtime.core import CompileMode, make_core
from evalkit.runtime.translator import Translator, load_translator
from evalkit.runtime.verifier import Verifier, load_verifier


@dataclass
class ModelSet:
    """The compiled models of one config: every translator, in config order, and the verifier."""

    translators: list[Translator]
    verifier: Verifier


def compile_translators(
    config: cfg.Config,
    *,
    mode: CompileMode = "latency",
    compiled_cache: Path | None = None,
    core: ov.Core | None = None,
) -> list[Translator]:
    """Read, check and compile every translation model of ``config`` (see :func:`compile_models`)."""
    core = core if core is not None else make_core()
    return [
        load_translator(core, spec, config.runtime, mode=mode, cache_dir=compiled_cache)
        for spec in config.models
    ]


def compile_models(
    config: cfg.Config, *, mode: CompileMode = "latency", compiled_cache: Path | None = None
) -> ModelSet:
    """Read, check and compile every model of ``config`` with one OpenVINO core.

    Parameters
    ----------
    config
        Its models, verifier and runtime settings are used.
    mode
        ``"latency"`` (one synchronous request at a time: the sequential executor, Dask workers, the
        gallery) or ``"throughput"`` (the pipelined executor); see
        :func:`evalkit.runtime.core.compile_model`. Both give the same bits.
    compiled_cache
        OpenVINO's compiled-model cache folder (``None``: compile every time). A model already compiled
        with the same graph, weights and properties is imported from it; the outputs are the same bits.

    Raises
    ------
    InputError
        A model file that is missing, unreadable, does not match its declared interface, or does not
        compile for the device.
    """
    core = make_core()
    translators = compile_translators(config, mode=mode, compiled_cache=compiled_cache, core=core)
    verifier = load_verifier(core, config.verifier, config.runtime, mode=mode, cache_dir=compiled_cache)
    return ModelSet(translators=translators, verifier=verifier)


__all__ = ["ModelSet", "compile_models", "compile_translators"]
