"""The regression gate: is a candidate worse than its baseline by more than the allowed margin?

The comparisons live in :mod:`evalkit.gate.engine`; the thresholds and the published table are parsed with
the config (:mod:`evalkit.config`); the outcome records are part of the run record (:mod:`evalkit.results`);
the renderers are in :mod:`evalkit.report.gate`. This package re-exports the engine and the types it takes
and returns, for convenience.
"""

from __future__ import annotations

from evalkit.config import (
    DEFAULT_ALLOWANCES,
    DEFAULT_GATE_SPEC,
    Allowance,
    GateSpec,
    PublishedTable,
    PublishedValue,
    load_gate_file,
)
from evalkit.gate.engine import compare_runs, compare_to_published, compare_within_run
from evalkit.results import GateReport, GateRow

__all__ = [
    "DEFAULT_ALLOWANCES",
    "DEFAULT_GATE_SPEC",
    "Allowance",
    "GateReport",
    "GateRow",
    "GateSpec",
    "PublishedTable",
    "PublishedValue",
    "compare_runs",
    "compare_to_published",
    "compare_within_run",
    "load_gate_file",
]
