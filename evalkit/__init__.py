"""evalkit: accuracy evaluation of exemplar-based image translation models (CoCosNet on ADE20k).

The library surface is small (see :mod:`evalkit.workflow`): :func:`run_and_report` does the whole job of
``evalkit run`` (evaluation, gallery, optional gate, reports); :func:`evaluate` runs a config and returns a
:class:`~evalkit.results.RunResult` without writing anything; :func:`write_reports` writes a result's
files; :func:`load_config` reads a YAML config; :mod:`evalkit.metrics` holds the pure metric functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "load_config", "run_and_report", "write_reports"]

if TYPE_CHECKING:
    from evalkit.config import load_config
    from evalkit.report import write_reports
    from evalkit.workflow import evaluate, run_and_report


def __getattr__(name: str) -> Any:
    # Lazy, so that `import evalkit.metrics` does not pay for importing OpenVINO.
    if name in ("evaluate", "run_and_report"):
        from evalkit import workflow

        return getattr(workflow, name)
    if name == "load_config":
        from evalkit.config import load_config

        return load_config
    if name == "write_reports":
        from evalkit.report import write_reports

        return write_reports
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
