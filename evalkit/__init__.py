"""evalkit: accuracy evaluation of exemplar-based image translation models (CoCosNet on ADE20k).

The library surface is small: :func:`evaluate` runs a config and returns a
:class:`~evalkit.results.RunResult`; :func:`write_reports` writes its files; :mod:`evalkit.metrics`
holds the pure metric functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "evaluate", "load_config", "write_reports"]

if TYPE_CHECKING:
    from evalkit.config import load_config
    from evalkit.execution.pipeline import evaluate
    from evalkit.report import write_reports


def __getattr__(name: str) -> Any:
    # Lazy, so that `import evalkit.metrics` does not pay for importing OpenVINO.
    if name == "evaluate":
        from evalkit.execution.pipeline import evaluate

        return evaluate
    if name == "load_config":
        from evalkit.config import load_config

        return load_config
    if name == "write_reports":
        from evalkit.report import write_reports

        return write_reports
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
