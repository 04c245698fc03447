"""Results -> CSV tables (pandas DataFrames).

``summary.csv``: one row per metric key of ``results.json`` (the registry's order), one column per model,
full precision. ``per_sample.csv``: one row per (pair, model) with the per-image metrics.
"""

from __future__ import annotations

import pandas as pd

from evalkit.metrics.registry import per_image_metrics, result_keys
from evalkit.results import RunResult


def summary_table(result: RunResult) -> pd.DataFrame:
    """Every metric of ``results.json`` as rows, one column per model (full precision)."""
    keys = list(result_keys(result.has_extended))
    data = {name: [m.metrics.to_dict()[k] for k in keys] for name, m in result.models.items()}
    return pd.DataFrame(data, index=pd.Index(keys, name="metric"))


def per_sample_table(result: RunResult) -> pd.DataFrame:
    """One row per (pair, model): pairs in file order, models in config order within a pair."""
    metric_keys = [m.key for m in per_image_metrics(result.has_extended)]
    columns = ["pair_id", "model", *metric_keys]
    rows = []
    names = list(result.models)
    n = max((len(m.samples) for m in result.models.values()), default=0)
    for i in range(n):
        for name in names:
            sample = result.models[name].samples[i]
            values = {k: sample.values[k] for k in metric_keys}
            rows.append({"pair_id": sample.pair_id, "model": name, **values})
    return pd.DataFrame(rows, columns=columns)
