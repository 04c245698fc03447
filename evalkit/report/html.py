"""``report.html``: one self-contained page (inline CSS, images as data URIs, no script, no external URL).

The page shows what was run, the reference and extended tables with deltas (the rows and formatters of
:mod:`evalkit.report.tables`, so it says what ``report.md`` says), the paired comparison, the gate verdicts
when given, per-image plots and a gallery of examples. It only renders: every number comes from the
``RunResult``, the gate report or the gallery manifest.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from evalkit.fileio import finite_or_none, write_text_atomic
from evalkit.metrics.registry import metrics_of
from evalkit.number_format import format_number
from evalkit.report.gate import GATE_TABLE_HEAD, gate_summary, gate_table_cells
from evalkit.report.model import (
    EXTENDED_NOTE,
    PUBLISHED_NOTE,
    REFERENCE_NOTE,
    MetricTable,
    PublishedTable,
    Report,
    build_report,
    delta_heading,
)
from evalkit.report.palette import colour_magnitudes, colourise
from evalkit.report.plots import matplotlib_available, report_plots
from evalkit.results import GateReport, RunResult

__all__ = ["GALLERY_MANIFEST", "render_html", "write_html"]

#: The gallery's manifest, inside the gallery folder.
GALLERY_MANIFEST = "gallery.json"
#: Longest side of an embedded gallery image: cells show ~170 px, so this stays sharp on a 2x screen
#: while keeping the page a few MB. Smaller PNG/JPEG files are embedded byte for byte.
_THUMB_MAX = 384
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg"}
#: Keys of ``environment`` that may hold when the run happened (newest pipelines may record one).
_DATE_KEYS = ("date", "timestamp", "finished", "finished_at", "started", "started_at")

_CSS = """
:root { --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --bg-alt: #f6f8fa;
        --pass: #1a7f37; --fail: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; }
p.note, .muted { color: var(--muted); font-size: 13.5px; }
nav { font-size: 13.5px; margin: 6px 0 18px; }
nav a { margin-right: 14px; color: #0969da; text-decoration: none; }
dl.header { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 12px 0; }
dl.header dt { font-weight: 600; }
dl.header dd { margin: 0; overflow-wrap: anywhere; }
code { font: 12.5px/1.4 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
       background: var(--bg-alt); padding: 1px 4px; border-radius: 4px; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 5px 10px; vertical-align: top; }
th { background: var(--bg-alt); text-align: left; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr:nth-child(even) td { background: #fbfcfd; }
.badge { display: inline-block; padding: 1px 10px; border-radius: 12px; color: #fff; font-weight: 700; }
.badge.pass, table tr td.pass { background: var(--pass); }
.badge.fail, table tr td.fail { background: var(--fail); }
table tr td.pass, table tr td.fail { color: #fff; font-weight: 700; }
figure.plot { margin: 14px 0; }
figure.plot img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; }
table.gallery td { text-align: center; padding: 6px; }
table.gallery figure { margin: 0; }
table.gallery img { width: 140px; height: auto; max-height: 240px; object-fit: contain; display: block;
                    margin: 0 auto; }
table.gallery img.mask { image-rendering: pixelated; }
table.gallery td.pair { text-align: left; min-width: 120px; font-size: 13px; }
.missing { width: 170px; padding: 30px 6px; color: var(--muted); font-size: 12px;
           border: 1px dashed var(--line); }
ul.sentences li { margin: 3px 0; }
""".strip()


def _e(text: object) -> str:
    """HTML-escape anything shown on the page (labels, paths and sentences come from files)."""
    return escape(str(text), quote=True)


def _short_sha(sha: str) -> str:
    return f"{sha[:12]}…" if len(sha) > 12 else sha


# ------------------------------------------------------------------------------------------------- sections


def _n_text(result: RunResult) -> str:
    """``N pairs``, and which pairs ``--on-error skip`` left out, if any."""
    ds = result.dataset
    skipped = tuple(getattr(result, "skipped", ()))
    seq = getattr(result, "sequential", None)
    if seq is not None and seq.stopped_early and not skipped:
        return f"{ds.n_pairs} pairs evaluated of {seq.n_listed} listed (stopped early: sequential gate)"
    if not skipped:
        return f"{ds.n_pairs} pairs"
    listed = getattr(ds, "n_listed", None) or ds.n_pairs + len(skipped)
    shown = "".join(
        f"<li><code>{_e(s.pair_id)}</code> (line {_e(s.line)}): {_e(s.reason)}</li>" for s in skipped[:10]
    )
    more = f"<li>… and {len(skipped) - 10} more (see results.json)</li>" if len(skipped) > 10 else ""
    return (
        f"{ds.n_pairs} pairs evaluated of {listed} listed; {len(skipped)} skipped (--on-error skip):"
        f"<ul style='margin:0;padding-left:18px'>{shown}{more}</ul>"
    )


def _header(result: RunResult, date: str | None) -> str:
    config = result.config
    ds = result.dataset
    env = result.environment
    when = date or next((str(env[k]) for k in _DATE_KEYS if env.get(k)), None) or "not recorded"
    models = "".join(
        f"<li>{_e(m.label)} (<code>{_e(name)}</code>): <code>{_e(m.path)}</code>, sha256 "
        f"<code>{_e(_short_sha(m.sha256))}</code></li>"
        for name, m in result.models.items()
    )
    items = [
        (
            "Data set",
            f"<code>{_e(ds.root)}</code>; pairs <code>{_e(ds.pairs)}</code> (sha256 "
            f"<code>{_e(_short_sha(ds.pairs_sha256))}</code>)",
        ),
        ("N", _n_text(result)),
        ("Models", f"<ul style='margin:0;padding-left:18px'>{models}</ul>"),
        (
            "Verifier",
            f"<code>{_e(result.verifier.path)}</code>, sha256 "
            f"<code>{_e(_short_sha(result.verifier.sha256))}</code>",
        ),
        (
            "Runtime",
            f"OpenVINO {_e(env.get('openvino', '?'))}, device {_e(config.runtime.device)}, "
            f"inference precision {_e(config.runtime.inference_precision)}",
        ),
        (
            "Metrics",
            f"reference method (OMZ Accuracy Checker cocosnet); SSIM constants "
            f"<code>{_e(config.metrics.ssim_constants)}</code>, FID route "
            f"<code>{_e(config.metrics.fid_method)}</code>, profile "
            f"<code>{_e(config.metrics.profile)}</code>",
        ),
        ("evalkit", _e(result.evalkit_version)),
        ("Date", _e(when)),
        ("Machine", f"{_e(env.get('cpu', '?'))}; Python {_e(env.get('python', '?'))}"),
    ]
    rows = "".join(f"<dt>{_e(k)}</dt><dd>{v}</dd>" for k, v in items)
    return f"<header><h1>evalkit report</h1><dl class='header'>{rows}</dl></header>"


def _table(table: MetricTable | PublishedTable, css: str = "metrics") -> str:
    """A report-model table: the first column as row headers, the others as numbers."""
    head = "".join(f"<th>{_e(h)}</th>" for h in table.head)
    body = "".join(
        f"<tr><th>{_e(row[0])}</th>" + "".join(f"<td class='num'>{_e(c)}</td>" for c in row[1:]) + "</tr>"
        for row in table.rows
    )
    return f"<table class='{css}'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _tables(report: Report) -> str:
    parts = [
        "<section id='reference'><h2>Reference metrics</h2>",
        _table(report.reference),
        f"<p class='note'>{_e(REFERENCE_NOTE)}</p>",
        "<h3>Per-image spread</h3>",
        _table(report.spread),
        "</section>",
    ]
    if report.published is not None:
        parts += [
            "<section id='published'><h2>Against the published table</h2>",
            _table(report.published, css="published"),
            f"<p class='note'>{_e(PUBLISHED_NOTE)}</p></section>",
        ]
    if report.extended is not None:
        parts += [
            "<section id='extended'><h2>Extended metrics (not the reference method)</h2>",
            _table(report.extended),
            f"<p class='note'>{_e(EXTENDED_NOTE)}</p></section>",
        ]
    return "".join(parts)


def _comparison(report: Report) -> str:
    comp = report.comparison
    if comp is None:
        return (
            "<section id='comparison'><h2>Paired comparison</h2><p class='note'>Not in these results (a "
            "<code>--metrics reference</code> run, or results written before the comparison existed).</p>"
            "</section>"
        )
    ref = comp.reference_model
    parts = [
        f"<section id='comparison'><h2>Paired comparison with {_e(ref)}</h2>",
        f"<p class='note'>Differences {_e(delta_heading('model', ref))}; {comp.confidence} bootstrap "
        f"intervals from {comp.bootstrap} resamples (seed {comp.seed}). A difference is outside noise when "
        "its interval excludes 0; it is within the gate's allowance when even the interval's worse end is "
        "no worse than the run config's allowance for that metric (an improvement never counts against a "
        "model; empty: the metric has no allowance).</p>",
    ]
    head = (
        "Metric",
        delta_heading("model", ref),
        f"{comp.confidence} interval",
        "p",
        "n",
        "Outside noise",
        "Within gate allowance",
    )
    for model in comp.models:
        parts.append(f"<h3>{_e(model.label)} (<code>{_e(model.name)}</code>)</h3>")
        if model.sentences:
            items = "".join(f"<li>{_e(sentence)}</li>" for sentence in model.sentences)
            parts.append(f"<ul class='sentences'>{items}</ul>")
        rows = "".join(
            f"<tr><th>{_e(r[0])}</th>"
            + "".join(f"<td class='num'>{_e(c)}</td>" for c in r[1:5])
            + f"<td>{_e(r[5])}</td><td>{_e(r[6])}</td></tr>"
            for r in model.rows
        )
        parts.append(
            "<table class='comparison'><thead><tr>"
            + "".join(f"<th>{_e(h)}</th>" for h in head)
            + f"</tr></thead><tbody>{rows}</tbody></table>"
        )
    parts.append("</section>")
    return "".join(parts)


def _sequential(report: Report) -> str:
    seq = report.sequential
    if seq is None:
        return ""
    title = "Stopped early: sequential gate" if seq.stopped_early else "Sequential gate"
    rows = "".join(
        f"<tr><th>{_e(r[0])}</th>" + "".join(f"<td>{_e(c)}</td>" for c in r[1:]) + "</tr>" for r in seq.rows
    )
    notes = "".join(f"<p class='note'>{_e(n)}</p>" for n in seq.notes)
    return (
        f"<section id='sequential'><h2>{_e(title)}</h2><p>{_e(seq.headline)}</p>"
        "<table class='sequential'><thead><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in seq.head)
        + f"</tr></thead><tbody>{rows}</tbody></table>{notes}</section>"
    )


def _gate(gate: GateReport | None) -> str:
    if gate is None:
        return ""
    verdict = "pass" if gate.passed else "fail"
    rows = []
    for row in gate.rows:
        cells = gate_table_cells(row)
        tds = [f"<td>{_e(c)}</td>" for c in cells[:3]]
        tds += [f"<td class='num'>{_e(c)}</td>" for c in cells[3:7]]
        tds.append(f"<td>{_e(cells[7])}</td>")
        cls = {"PASS": " class='pass'", "FAIL": " class='fail'"}.get(row.verdict, "")
        tds.append(f"<td{cls}>{_e(cells[8])}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    thresholds = ", ".join(f"{m} {a.describe()}" for m, a in gate.spec.allowances.items())
    notes = "".join(f"<li>{_e(n)}</li>" for n in gate.notes)
    return (
        f"<section id='gate'><h2>Regression gate <span class='badge {verdict}'>{verdict.upper()}</span></h2>"
        f"<p>{_e(gate_summary(gate))}</p>"
        f"<p class='note'>{_e(gate.candidate)} against {_e(gate.baseline)}; thresholds from "
        f"{_e(gate.spec.source)}: {_e(thresholds)}. A metric fails when it is worse than its baseline by "
        "more than max(abs, rel × |baseline|); an improvement never fails.</p>"
        "<table class='gate'><thead><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in GATE_TABLE_HEAD)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
        + (f"<ul class='note'>{notes}</ul>" if notes else "")
        + "</section>"
    )


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _plots(result: RunResult, ref: str) -> str:
    head = "<section id='plots'><h2>Per-image scores</h2>"
    if not matplotlib_available():
        return (
            head
            + "<p class='note'>No plots: matplotlib is not installed (pip install matplotlib).</p></section>"
        )
    plots = report_plots(result, ref)
    if not plots:
        return head + "<p class='note'>No per-image scores in these results.</p></section>"
    figures = "".join(
        f"<figure class='plot'><img src='{_data_uri('image/png', p.png)}' alt='{_e(p.title)}'>"
        f"<figcaption><b>{_e(p.title)}.</b> {_e(p.caption)}</figcaption></figure>"
        for p in plots
    )
    return head + figures + "</section>"


# -------------------------------------------------------------------------------------------------- gallery


class _ImageProblem(Exception):
    """An image of the gallery that cannot be shown; the page says why instead of failing."""


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buf, format="JPEG", quality=90)
    else:
        image.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _image_uri(directory: Path, name: object, *, mask: bool, difference: bool = False) -> str:
    """A gallery file as a data URI: label maps colourised, difference images colour-mapped, large images
    downsized, anything else as PNG."""
    if not isinstance(name, str) or not name:
        raise _ImageProblem("not listed")
    path = (directory / name).resolve()
    if not path.is_relative_to(directory.resolve()):
        # The manifest is data: it may not make the report embed files from elsewhere on disk.
        raise _ImageProblem(f"{name}: outside the gallery folder")
    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            fmt = img.format or ""
            if mask and img.mode in ("L", "P", "I", "I;16", "1"):
                # Label values 0..150 drawn with the ADE20k palette; nearest keeps the class edges.
                coloured = Image.fromarray(colourise(np.asarray(img)))
                coloured.thumbnail((_THUMB_MAX, _THUMB_MAX), Image.Resampling.NEAREST)
                return _data_uri("image/png", _encode(coloured, "PNG"))
            if difference and img.mode == "L":
                # Grey value v = v/255 of the pair's full scale: the top of the perceptual map at 255.
                coloured = Image.fromarray(colour_magnitudes(np.asarray(img), 255.0))
                coloured.thumbnail((_THUMB_MAX, _THUMB_MAX), Image.Resampling.LANCZOS)
                return _data_uri("image/png", _encode(coloured, "PNG"))
            if fmt in _MIME and max(img.size) <= _THUMB_MAX:
                return _data_uri(_MIME[fmt], raw)
            out = img.convert("RGBA" if img.mode in ("RGBA", "LA", "PA") else "RGB")
            out.thumbnail((_THUMB_MAX, _THUMB_MAX), Image.Resampling.LANCZOS)
            fmt = "JPEG" if fmt == "JPEG" else "PNG"
            return _data_uri(_MIME[fmt], _encode(out, fmt))
    except FileNotFoundError:
        raise _ImageProblem(f"{name}: missing") from None
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise _ImageProblem(f"{name}: not a readable image ({type(exc).__name__})") from None


def _image_cell(
    directory: Path, name: object, alt: str, caption: str, *, mask: bool = False, difference: bool = False
) -> str:
    try:
        uri = _image_uri(directory, name, mask=mask, difference=difference)
    except _ImageProblem as problem:
        body = f"<div class='missing'>{_e(problem)}</div>"
    else:
        cls = " class='mask'" if mask else ""
        body = f"<img{cls} src='{uri}' alt='{_e(alt)}'>"
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f"<td><figure>{body}{cap}</figure></td>"


@dataclass(frozen=True)
class _GalleryPair:
    pair_id: str
    reason: str
    delta_psnr: float | None
    images: Mapping[str, Any]
    scores: Mapping[str, Any]
    differences: Mapping[str, Any]


#: What ``worst_by`` of gallery.json means, for the page.
_WORST_BY = {
    "mean_abs_difference": "the pairs where the candidate models' outputs differ most from the reference "
    "model's (largest mean absolute pixel difference)",
    "psnr_drop": "the pairs with the largest PSNR drop against the reference model (the run did not keep "
    "every pair's images to compare: a Dask or resumed run; or there is one model)",
}


def _read_manifest(gallery_dir: Path) -> tuple[list[_GalleryPair], str]:
    """Parse ``gallery.json`` into its pairs and ``worst_by``; raises ``_ImageProblem`` with a sentence for
    the page when unusable."""
    manifest = gallery_dir / GALLERY_MANIFEST
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _ImageProblem(f"no {GALLERY_MANIFEST} in {gallery_dir}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _ImageProblem(f"{manifest} is not readable JSON ({exc})") from None
    pairs = data.get("pairs") if isinstance(data, Mapping) else None
    if not isinstance(pairs, list):
        raise _ImageProblem(f"{manifest} has no 'pairs' list")
    out = []
    for i, p in enumerate(pairs):
        if not isinstance(p, Mapping):
            raise _ImageProblem(f"{manifest}: pairs[{i}] is not an object")
        images = p.get("images") if isinstance(p.get("images"), Mapping) else {}
        scores = p.get("scores") if isinstance(p.get("scores"), Mapping) else {}
        differences = p.get("differences") if isinstance(p.get("differences"), Mapping) else {}
        out.append(
            _GalleryPair(
                pair_id=str(p.get("pair_id", f"pair {i + 1}")),
                reason=str(p.get("reason", "")),
                delta_psnr=_number(p.get("delta_psnr")),
                images=images,
                scores=scores,
                differences=differences,
            )
        )
    worst_by = data.get("worst_by")
    return out, worst_by if isinstance(worst_by, str) else "psnr_drop"  # older manifests: the PSNR drop


def _difference_caption(entry: Any) -> str:
    """'mean |Δ| 0.83 · ×51, brightest = Δ ≥ 5 grey levels' for one candidate's difference image."""
    if not isinstance(entry, Mapping):
        return ""
    parts = []
    mean = _number(entry.get("mean_abs_difference"))
    if mean == 0:
        return _e("identical to the reference model's output")  # no scale to print: every pixel is black
    if mean is not None:
        parts.append(f"mean |Δ| {format_number(mean, 2, '')} grey levels")
    full_scale = _number(entry.get("full_scale"))
    if full_scale is not None and full_scale > 0:
        parts.append(f"×{255 / full_scale:.3g}, brightest = Δ ≥ {full_scale:.3g} grey levels")
    return _e(" · ".join(parts))


def _number(x: Any) -> float | None:
    # manifest values come from a file: anything but a finite number is "not shown"
    return finite_or_none(x) if isinstance(x, int | float) and not isinstance(x, bool) else None


def _score_caption(scores: Mapping[str, Any], model: str) -> str:
    s = scores.get(model)
    if not isinstance(s, Mapping):
        return ""
    parts = []
    for metric in metrics_of("reference", "per_image"):
        value = _number(s.get(metric.key))
        if value is not None:
            parts.append(f"{metric.name} {value:.{metric.decimals}f}{metric.unit}")
        elif metric.finite_mean and metric.key in s and s[metric.key] is None:
            parts.append(f"{metric.name} ∞")  # null per-image PSNR: identical to the ground truth
    return _e(" · ".join(parts))


def _gallery(result: RunResult, gallery_dir: Path | None) -> str:
    head = "<section id='gallery'><h2>Gallery</h2>"
    if gallery_dir is None:
        return (
            head
            + "<p class='note'>No gallery: this report was rendered without a gallery folder.</p></section>"
        )
    gallery_dir = Path(gallery_dir)
    if not gallery_dir.is_dir():
        return head + f"<p class='note'>No gallery: {_e(gallery_dir)} does not exist.</p></section>"
    try:
        pairs, worst_by = _read_manifest(gallery_dir)
    except _ImageProblem as problem:
        return head + f"<p class='note'>No gallery: {_e(problem)}.</p></section>"
    if not pairs:
        return head + "<p class='note'>The gallery lists no pairs.</p></section>"
    models = list(result.models)
    for p in pairs:  # models of the manifest that the results do not have still get a column
        listed = p.images.get("models")
        for name in listed if isinstance(listed, Mapping) else ():
            if name not in models:
                models.append(name)
    labels = [result.models[m].label if m in result.models else m for m in models]
    # A difference column per candidate that the manifest has difference images of.
    candidates = [m for m in models if any(m in p.differences for p in pairs)]
    reference = result.models[result.reference_model].label
    diff_heads = [f"|{labels[models.index(m)]} − {reference}|" for m in candidates]
    head_cells = ["Pair", "Input mask", "Exemplar", *labels, *diff_heads, "Ground truth"]
    rows = []
    for p in pairs:
        # Two decimals, more for a drop that would print as 0.00 (never "-0.00 dB").
        drop = None if p.delta_psnr is None else format_number(p.delta_psnr, 2, " dB", signed=True)
        delta = "" if drop is None else f"<br>Δ PSNR {drop}"
        reason = f"<br><span class='muted'>{_e(p.reason)}</span>" if p.reason else ""
        cells = [f"<td class='pair'><code>{_e(p.pair_id)}</code>{reason}{delta}</td>"]
        cells.append(
            _image_cell(gallery_dir, p.images.get("input_mask"), f"{p.pair_id} input mask", "", mask=True)
        )
        cells.append(_image_cell(gallery_dir, p.images.get("exemplar"), f"{p.pair_id} exemplar", ""))
        outputs = p.images.get("models") if isinstance(p.images.get("models"), Mapping) else {}
        for m in models:
            cells.append(
                _image_cell(gallery_dir, outputs.get(m), f"{p.pair_id} {m}", _score_caption(p.scores, m))
            )
        for m in candidates:
            entry = p.differences.get(m)
            cells.append(
                _image_cell(
                    gallery_dir,
                    entry.get("image") if isinstance(entry, Mapping) else None,
                    f"{p.pair_id} difference of {m} from the reference",
                    _difference_caption(entry),
                    difference=True,
                )
            )
        cells.append(_image_cell(gallery_dir, p.images.get("ground_truth"), f"{p.pair_id} ground truth", ""))
        rows.append(f"<tr class='gallery-row' data-pair='{_e(p.pair_id)}'>" + "".join(cells) + "</tr>")
    return (
        head + "<p class='note'>Per pair: the input label map (ADE20k palette), the exemplar, each model's "
        "output with its PSNR and SSIM against the ground truth, "
        + (
            "each candidate's absolute difference from the reference model's output (per pixel, mean over "
            "the colour channels; black = none, pale yellow = the pair's largest difference, whose size is "
            "printed below it, so errors spread everywhere and errors in a few regions look different), "
            if candidates
            else ""
        )
        + f"and the ground truth. <i>worst</i>: {_e(_WORST_BY.get(worst_by, worst_by))}; <i>random</i>: a "
        "seeded random sample.</p>"
        + "<table class='gallery'><thead><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in head_cells)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></section>"
    )


# ------------------------------------------------------------------------------------------------------ page


def render_html(
    result: RunResult,
    *,
    gallery_dir: Path | None,
    gate: GateReport | None = None,
    date: str | None = None,
) -> str:
    """The HTML report of a run, as one self-contained page.

    Parameters
    ----------
    result : RunResult
        The run.
    gallery_dir : Path or None
        Folder with ``gallery.json`` and its images; ``None`` or a missing folder gives a page that says so.
    gate : GateReport, optional
        Verdicts to show.
    date : str, optional
        When the run happened, for the header; default: a date recorded in the results' ``environment``,
        else "not recorded" (never the current time, so the same inputs give the same page).

    Returns
    -------
    str
        The page: inline CSS, images as ``data:`` URIs, no script and no external URL.
    """
    report = build_report(result)
    ref = report.reference_model
    nav = [("gate", "Gate")] if gate is not None else []
    if report.sequential is not None:
        nav.append(("sequential", "Sequential"))
    nav.append(("reference", "Reference metrics"))
    if report.extended is not None:
        nav.append(("extended", "Extended"))
    nav += [("comparison", "Comparison"), ("plots", "Plots"), ("gallery", "Gallery")]
    title = report.title
    body = [
        _header(result, date),
        "<nav>" + "".join(f"<a href='#{k}'>{_e(v)}</a>" for k, v in nav) + "</nav>",
        _gate(gate),
        _sequential(report),
        _tables(report),
        _comparison(report),
        _plots(result, ref),
        _gallery(result, gallery_dir),
        f"<footer><p class='muted'>Written by evalkit {_e(result.evalkit_version)}. Self-contained: every "
        "image is embedded in this file.</p></footer>",
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>\n{_CSS}\n</style></head>\n<body><main>\n"
        + "\n".join(part for part in body if part)
        + "\n</main></body></html>\n"
    )


def write_html(
    result: RunResult,
    path: Path,
    *,
    gallery_dir: Path | None = None,
    gate: GateReport | None = None,
    results_file: Path | None = None,
) -> Path:
    """Write :func:`render_html`'s page to ``path`` atomically and return ``path``.

    ``results_file``: the ``results.json`` the run came from; when the results record no date, its
    modification time (UTC) dates the report.
    """
    date = None
    if results_file is not None and Path(results_file).is_file():
        mtime = Path(results_file).stat().st_mtime
        date = datetime.fromtimestamp(mtime, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC (results file)")
    env_date = next((str(result.environment[k]) for k in _DATE_KEYS if result.environment.get(k)), None)
    write_text_atomic(
        Path(path), render_html(result, gallery_dir=gallery_dir, gate=gate, date=env_date or date)
    )
    return Path(path)
