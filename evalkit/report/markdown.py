"""``report.md``: the card's table (one column per model) with deltas, and a header saying what was run."""

from __future__ import annotations

from evalkit.report.tables import (
    EXTENDED_METRICS,
    REFERENCE_METRICS,
    SPREAD_METRICS,
    MetricRow,
    format_delta,
    format_value,
    has_extended,
    published_rows,
)
from evalkit.results import RunResult


def _table(result: RunResult, metrics: tuple[MetricRow, ...], first_col: str) -> list[str]:
    names = list(result.models)
    base = names[0]
    labels = [result.models[n].label for n in names]
    delta_heads = [f"Δ {name} − {base}" for name in names[1:]]
    head = [first_col, *labels, *delta_heads]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    dicts = [result.models[n].metrics.to_dict() for n in names]
    for row in metrics:
        values = [d[row.key] for d in dicts]
        stds = [d[row.std_key] if row.std_key else None for d in dicts]
        cells = [row.display]
        cells += [format_value(v, row.unit, row.decimals, s) for v, s in zip(values, stds, strict=True)]
        cells += [format_delta(v, values[0], row.unit, row.decimals) for v in values[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _n_text(result: RunResult) -> str:
    ds = result.dataset
    if ds.n_listed is None or ds.n_listed == ds.n_pairs:
        return f"N = {ds.n_pairs}"
    return (
        f"N = {ds.n_pairs} evaluated / {ds.n_listed} listed ({ds.n_listed - ds.n_pairs} skipped, see below)"
    )


def render_markdown(result: RunResult) -> str:
    """The Markdown report of a run."""
    cfg = result.config
    ds = result.dataset
    lines = [
        "# evalkit report",
        "",
        f"- Data set: `{ds.root}`, pairs `{ds.pairs}` (sha256 `{ds.pairs_sha256[:12]}…`), {_n_text(result)}",
        f"- Verifier: `{result.verifier.path}` (sha256 `{result.verifier.sha256[:12]}…`)",
        "- Models: "
        + "; ".join(f"{m.label} = `{m.path}` (sha256 `{m.sha256[:12]}…`)" for m in result.models.values()),
        f"- Runtime: OpenVINO {result.environment.get('openvino', '?')}, device {cfg['runtime']['device']}, "
        f"inference precision {cfg['runtime']['inference_precision']}",
        f"- Metrics: reference method (OMZ Accuracy Checker cocosnet); SSIM constants "
        f"`{cfg['metrics']['ssim_constants']}`, FID route `{cfg['metrics']['fid_method']}`",
        f"- evalkit {result.evalkit_version}",
        "",
        "## Reference metrics",
        "",
        *_table(result, REFERENCE_METRICS, "Metric"),
        "",
        "Higher is better for PSNR, SSIM and IS; lower is better for FID. IS and FID depend on the verifier,",
        "N and the preprocessing: compare them only with runs that share all three.",
        "",
        "## Per-image spread",
        "",
        *_table(result, SPREAD_METRICS, "Statistic"),
        "",
    ]
    identical = {
        m.label: m.metrics.psnr_identical for m in result.models.values() if m.metrics.psnr_identical
    }
    if identical:
        lines += [
            "PSNR mean and std are over the images that differ from their ground truth; "
            + ", ".join(f"{label}: {k} identical" for label, k in identical.items())
            + ".",
            "",
        ]
    if result.comparison and result.comparison.get("models"):
        comp = result.comparison
        lines += [
            f"## Paired comparison with {comp['reference_model']}",
            "",
            f"Same pairs, candidate − {comp['reference_model']}; {comp['confidence']:.0%} percentile "
            f"bootstrap intervals over pairs ({comp['bootstrap']} resamples, seed {comp['seed']}), "
            "Wilcoxon signed-rank p-values for the per-image metrics.",
            "",
        ]
        for entries in comp["models"].values():
            lines += [f"- {entry['sentence']}" for entry in entries.values()]
        lines += [""]
    models, rows = published_rows(result)
    if models:
        labels = [result.models[m].label for m in models]
        head = ["Metric"] + [
            f"{label}: {what}" for label in labels for what in ("measured", "published", "Δ")
        ]
        lines += ["## Against the published table", "", "| " + " | ".join(head) + " |"]
        lines += ["|" + "|".join("---" for _ in head) + "|"]
        for display, cells in rows:
            values = [v for c in cells for v in (c.measured, c.published, c.delta)]
            lines.append("| " + " | ".join([display, *values]) + " |")
        lines += [
            "",
            "The published figures come from the config's `published:` table (the OMZ card: 2000 pairs, the "
            "original googlenet-v3, SSIM with the 2020 constants); they are comparable only with a run on "
            "the same data and verifier. `evalkit gate --published` checks them with allowances.",
            "",
        ]
    if result.skipped:
        lines += ["## Skipped pairs", "", "| Pair | Pairs-file line | Reason |", "|---|---|---|"]
        lines += [f"| {s.pair_id} | {s.line} | {s.reason.replace('|', '/')} |" for s in result.skipped]
        lines += [""]
    if has_extended(result):
        lines += [
            "## Extended metrics (not the reference method)",
            "",
            *_table(result, EXTENDED_METRICS, "Metric"),
            "",
            "IS, FID and KID computed with this verifier are comparable only with runs that use the same "
            "verifier, N and preprocessing — not with published GAN numbers. IS (10 splits) is n/a below 10 "
            "images.",
            "",
        ]
    return "\n".join(lines)
