"""report.html: self-contained, escaped, the tables' numbers, plots, the gallery; and a headless screenshot.

The RunResult and the gallery are built in code (no model runs here), so these tests stay fast.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import io
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import records
from PIL import Image

from evalkit.gate import compare_within_run
from evalkit.metrics.registry import metrics_of
from evalkit.report.html import render_html, write_html
from evalkit.report.model import format_delta, format_value
from evalkit.report.palette import ADE20K_PALETTE, DIFFERENCE_MAP, colourise
from evalkit.report.plots import matplotlib_available
from evalkit.results import ComparisonEntry, DatasetInfo, RunResult, SkippedPair, VerifierInfo
from evalkit.stats.comparison import PairedDelta, SetDelta

DATE = "2025-01-02 03:04 UTC"
EVIL = "<script>alert('x')</script> & co"
N = 12


def make_result(*, comparison: bool = True, extended: bool = True, evil_label: bool = True) -> RunResult:
    """Two models with per-sample scores; the second model's label carries markup that must be escaped."""
    rng = np.random.default_rng(1)
    models, per_pair, labels = {}, {}, {}
    for i, (name, label) in enumerate([("original", "Original model"), ("converted", EVIL)]):
        psnr = 17.0 + rng.normal(0, 2, N) - 0.3 * i
        ssim = np.clip(0.5 + rng.normal(0, 0.1, N) - 0.01 * i, 0, 1)
        extra = {"ssim_wang": 0.7, "psnr_rgb": 12.0} if extended else {}
        per_pair[name] = records.samples(N, psnr=list(psnr), ssim=list(ssim), **extra)
        labels[name] = label if evil_label or i == 0 else "Converted model"
        models[name] = records.metrics(
            extended,
            psnr=float(psnr.mean()),
            ssim=float(ssim.mean()),
            psnr_std=float(psnr.std()),
            ssim_std=float(ssim.std()),
            fid=103.47 + 0.5 * i,
            ssim_wang=0.75 - 0.01 * i,
            psnr_rgb=12.7 - 0.2 * i,
            is_10=2.6 + 0.1 * i,
            is_10_std=0.47,
            kid=0.129 + 0.001 * i,
            kid_std=0.002,
            **{"is": 9.2 + 0.01 * i},
        )
    psnr_entry = ComparisonEntry(
        PairedDelta("PSNR", -0.3, -0.5, -0.1, 0.01, N, True), "PSNR is 0.30 dB lower <b>than</b> original."
    )
    fid_entry = ComparisonEntry(
        SetDelta("FID", 0.5, math.nan, math.nan, 0, False), "FID is 0.5 higher; no interval (bootstrap 0)."
    )
    comp = records.comparison("original", {"converted": {"psnr": psnr_entry, "fid": fid_entry}})
    result = records.run(
        models,
        n=N,
        labels=labels,
        model_samples=per_pair,
        comparison=comp if comparison else None,
        environment={"openvino": "2025.0", "cpu": "Test CPU", "python": "3.11", "date": DATE},
    )
    return dataclasses.replace(
        result,
        dataset=DatasetInfo("/data/ADEChallengeData2016", "/data/pairs.txt", N, "c" * 64),
        models={
            name: dataclasses.replace(m, path=f"/models/{name}.xml", sha256=f"{i}" * 64)
            for i, (name, m) in enumerate(result.models.items())
        },
        verifier=VerifierInfo("/models/verifier.xml", "d" * 64),
    )


def make_gallery(directory: Path, n_pairs: int = 3) -> Path:
    """A small gallery as the pipeline writes it: raw label-map PNG, JPEG exemplar/GT, PNG outputs."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    pairs = []
    for k in range(n_pairs):
        pid = f"ADE_val_{k + 1:08d}"
        labels = np.zeros((48, 64), dtype=np.uint8)
        labels[:, 20:40] = 3
        labels[24:, 40:] = 150
        Image.fromarray(labels, mode="L").save(directory / f"{pid}_mask.png")
        for suffix, fmt in (("exemplar.jpg", "JPEG"), ("gt.jpg", "JPEG")):
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
                directory / f"{pid}_{suffix}", fmt
            )
        for model in ("original", "converted"):
            Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(
                directory / f"{pid}_{model}.png"
            )
        levels = np.zeros((48, 64), dtype=np.uint8)
        levels[:8, :8] = 255  # the difference is in one corner: drawn in the map's top colour
        Image.fromarray(levels, mode="L").save(directory / f"{pid}_converted_diff.png")
        difference = {"image": f"{pid}_converted_diff.png", "mean_abs_difference": 0.25, "full_scale": 5.0}
        images = {
            "input_mask": f"{pid}_mask.png",
            "exemplar": f"{pid}_exemplar.jpg",
            "ground_truth": f"{pid}_gt.jpg",
            "models": {"original": f"{pid}_original.png", "converted": f"{pid}_converted.png"},
        }
        scores = {"original": {"psnr": 17.25, "ssim": 0.5123}, "converted": {"psnr": 16.75, "ssim": 0.4987}}
        reason = "worst" if k == 0 else "random"
        pairs.append(
            {
                "pair_id": pid,
                "reason": reason,
                "delta_psnr": -0.5 * (k + 1),
                "images": images,
                "scores": scores,
                "mean_abs_difference": 0.25,
                "differences": {"converted": difference},
            }
        )
    (directory / "gallery.json").write_text(json.dumps({"worst_by": "mean_abs_difference", "pairs": pairs}))
    return directory


class PageParser(HTMLParser):
    """Collects what the tests look at: tags, attributes, image sources, gallery rows, cell texts."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.images: list[dict[str, str]] = []
        self.gallery_rows: list[str] = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        d = {k: v or "" for k, v in attrs}
        self.attrs += [(tag, k, v) for k, v in d.items()]
        if tag == "img":
            self.images.append(d)
        if tag == "tr" and "gallery-row" in d.get("class", "").split():
            self.gallery_rows.append(d.get("data-pair", ""))
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.cells.append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def parse(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    return parser


def decode_image(src: str) -> Image.Image:
    head, _, payload = src.partition(",")
    assert head in ("data:image/png;base64", "data:image/jpeg;base64"), head[:40]
    try:
        raw = base64.b64decode(payload, validate=True)
    except binascii.Error as exc:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"bad base64 in {head}") from exc
    image = Image.open(io.BytesIO(raw))
    image.load()
    assert image.format == ("PNG" if "png" in head else "JPEG")
    return image


@pytest.fixture(scope="module")
def gallery(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_gallery(tmp_path_factory.mktemp("report") / "gallery")


@pytest.fixture(scope="module")
def result() -> RunResult:
    return make_result()


@pytest.fixture(scope="module")
def page(result: RunResult, gallery: Path) -> str:
    return render_html(result, gallery_dir=gallery, gate=compare_within_run(result))


@pytest.fixture(scope="module")
def parsed(page: str) -> PageParser:
    return parse(page)


# -------------------------------------------------------------------------------------------- the page


def test_self_contained_no_external_reference(page: str, parsed: PageParser) -> None:
    for tag, attr, value in parsed.attrs:
        if attr in ("src", "href", "srcset", "action", "poster", "data"):
            assert not value.lower().startswith(("http:", "https:", "//", "file:")), (tag, attr, value[:60])
            assert value.startswith(("data:", "#")), (tag, attr, value[:60])
    assert "http://" not in page and "https://" not in page
    assert not {"script", "link", "iframe", "object", "embed"} & set(parsed.tags)
    assert "url(" not in page  # no CSS fetches either


def test_every_image_is_a_valid_embedded_png_or_jpeg(parsed: PageParser) -> None:
    plots = 2 if matplotlib_available() else 0
    # per gallery pair: mask, exemplar, 2 models, the candidate's difference from the reference, ground truth
    assert len(parsed.images) == plots + 3 * 6
    for img in parsed.images:
        image = decode_image(img["src"])
        assert image.width > 0 and image.height > 0
        assert img.get("alt")


def test_tables_show_the_formatted_values(result: RunResult, parsed: PageParser) -> None:
    cells = set(parsed.cells)
    dicts = {n: m.metrics.to_dict() for n, m in result.models.items()}
    for m in metrics_of():
        for d in dicts.values():
            std = d.get(m.std_key) if m.std_key and not m.std_label else None
            assert format_value(d[m.key], m.unit, m.decimals, std) in cells, m.key
        delta = format_delta(dicts["converted"][m.key], dicts["original"][m.key], m.unit, m.decimals)
        assert delta in cells, m.key
    assert "12 pairs" in "".join(parsed.text)


def test_header_comparison_and_gate(parsed: PageParser) -> None:
    text = " ".join(parsed.text)
    for expected in (
        "/data/ADEChallengeData2016",
        "f32",
        "0.1.0",
        "2025-01-02 03:04 UTC",
        "/models/verifier.xml",
    ):
        assert expected in text
    assert "PSNR is 0.30 dB lower <b>than</b> original." in text  # a sentence, shown as text
    assert "[-0.5000, -0.1000]" in parsed.cells
    assert "Regression gate" in text and ("PASS" in parsed.cells or "FAIL" in parsed.cells)


def test_text_from_files_is_escaped(page: str, parsed: PageParser) -> None:
    assert "<script>" not in page and "<b>than</b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in page
    assert EVIL in "".join(parsed.text)  # and reads correctly once parsed
    assert "script" not in parsed.tags


def test_gallery_rows_and_colourised_mask(gallery: Path, parsed: PageParser) -> None:
    manifest = json.loads((gallery / "gallery.json").read_text())
    assert parsed.gallery_rows == [p["pair_id"] for p in manifest["pairs"]]
    masks = [img for img in parsed.images if "mask" in img.get("class", "")]
    assert len(masks) == len(manifest["pairs"])
    colours = {tuple(c) for c in np.asarray(decode_image(masks[0]["src"]).convert("RGB")).reshape(-1, 3)}
    assert colours == {(0, 0, 0), tuple(ADE20K_PALETTE[3]), tuple(ADE20K_PALETTE[150])}
    assert "PSNR 16.7500 dB · SSIM 0.4987" in parsed.cells
    assert any("Δ PSNR -1.00 dB" in c for c in parsed.cells)


def test_one_difference_image_per_candidate_with_its_scale(gallery: Path, parsed: PageParser) -> None:
    manifest = json.loads((gallery / "gallery.json").read_text())
    diffs = [img for img in parsed.images if "difference of converted" in img["alt"]]
    assert len(diffs) == len(manifest["pairs"])  # one candidate: one per pair, none for the reference
    assert not [img for img in parsed.images if "difference of original" in img["alt"]]
    pixels = np.asarray(decode_image(diffs[0]["src"]).convert("RGB"))
    assert tuple(pixels[0, 0]) == tuple(DIFFERENCE_MAP[255])
    assert tuple(pixels[-1, -1]) == tuple(DIFFERENCE_MAP[0])
    assert parsed.cells.count("mean |Δ| 0.25 grey levels · ×51, brightest = Δ ≥ 5 grey levels") == 3
    text = " ".join(parsed.text)
    assert "largest mean absolute pixel difference" in text
    assert sum(" − " in t and t.strip().startswith("|") for t in parsed.text) == 1  # its column header


def test_identical_outputs_say_so_instead_of_a_scale(result: RunResult, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", n_pairs=1)
    manifest = json.loads((gallery / "gallery.json").read_text())
    for entry in manifest["pairs"]:
        for diff in entry["differences"].values():
            diff.update(mean_abs_difference=0.0, full_scale=1.0)
    (gallery / "gallery.json").write_text(json.dumps(manifest))
    cells = parse(render_html(result, gallery_dir=gallery)).cells
    assert "identical to the reference model's output" in cells
    assert not any("brightest" in c for c in cells)


def test_a_gallery_chosen_by_psnr_drop_says_so(result: RunResult, tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "g", n_pairs=1)
    manifest = json.loads((gallery / "gallery.json").read_text())
    (gallery / "gallery.json").write_text(json.dumps({**manifest, "worst_by": "psnr_drop"}))
    text = " ".join(parse(render_html(result, gallery_dir=gallery)).text)
    assert "largest PSNR drop against the reference model" in text
    assert "largest mean absolute pixel difference" not in text


def test_deterministic(result: RunResult, gallery: Path, page: str) -> None:
    assert render_html(result, gallery_dir=gallery, gate=compare_within_run(result)) == page


def test_plots_are_embedded(parsed: PageParser) -> None:
    pytest.importorskip("matplotlib")
    plots = [img for img in parsed.images if img["alt"].startswith(("Paired", "Per-image"))]
    assert len(plots) == 2
    for img in plots:
        image = decode_image(img["src"])
        assert image.size == (1000, 400)
        assert np.asarray(image.convert("L")).std() > 5  # something is drawn


# --------------------------------------------------------------------------------------- degraded inputs


def test_without_gallery_comparison_or_extended(tmp_path: Path) -> None:
    result = make_result(comparison=False, extended=False, evil_label=False)
    for gallery_dir, says in [
        (None, "without a gallery folder"),
        (tmp_path / "nowhere", "does not exist"),
        (tmp_path, "no gallery.json"),
    ]:
        parsed = parse(render_html(result, gallery_dir=gallery_dir))
        text = " ".join(parsed.text)
        assert says in text and not parsed.gallery_rows
        assert "Not in these results" in text  # the comparison section
        assert "Extended metrics" not in text and "Regression gate" not in text
    (tmp_path / "gallery.json").write_text("{not json")
    assert "not readable JSON" in " ".join(parse(render_html(result, gallery_dir=tmp_path)).text)


def test_missing_or_hostile_gallery_files_become_placeholders(tmp_path: Path, result: RunResult) -> None:
    gallery = make_gallery(tmp_path / "g", n_pairs=2)
    manifest = json.loads((gallery / "gallery.json").read_text())
    (gallery / manifest["pairs"][0]["images"]["exemplar"]).unlink()
    manifest["pairs"][0]["images"]["ground_truth"] = "../../etc/passwd"
    manifest["pairs"][1]["images"]["models"]["converted"] = "garbage.png"
    (gallery / "garbage.png").write_bytes(b"not an image")
    (gallery / "gallery.json").write_text(json.dumps(manifest))
    parsed = parse(render_html(result, gallery_dir=gallery))
    assert len(parsed.gallery_rows) == 2
    text = " ".join(parsed.text)
    assert "missing" in text and "outside the gallery folder" in text and "not a readable image" in text
    assert len([img for img in parsed.images if "ADE_val" in img["alt"]]) == 2 * 6 - 3
    for img in parsed.images:
        decode_image(img["src"])


def test_large_images_are_downsized(tmp_path: Path, result: RunResult) -> None:
    gallery = make_gallery(tmp_path / "g", n_pairs=1)
    manifest = json.loads((gallery / "gallery.json").read_text())
    name = manifest["pairs"][0]["images"]["ground_truth"]
    Image.fromarray(np.full((1200, 900, 3), 128, dtype=np.uint8)).save(gallery / name, "JPEG")
    Image.fromarray(np.full((800, 600), 7, dtype=np.uint8)).save(
        gallery / manifest["pairs"][0]["images"]["input_mask"]
    )
    parsed = parse(render_html(result, gallery_dir=gallery))
    sizes = {img["alt"]: decode_image(img["src"]).size for img in parsed.images}
    assert max(sizes["ADE_val_00000001 ground truth"]) <= 384
    assert max(sizes["ADE_val_00000001 input mask"]) <= 384


def test_skipped_pairs_are_listed_in_the_header() -> None:
    result = dataclasses.replace(
        make_result(evil_label=False),
        dataset=dataclasses.replace(make_result().dataset, n_listed=N + 1),
        skipped=(SkippedPair("ADE_val_00000099", 99, "truncated JPEG <exemplar>"),),
    )
    parsed = parse(render_html(result, gallery_dir=None))
    text = " ".join(parsed.text)
    assert f"{N} pairs evaluated of {N + 1} listed; 1 skipped" in text
    assert "ADE_val_00000099" in text and "truncated JPEG <exemplar>" in text


def test_write_html_is_atomic_and_dated(tmp_path: Path) -> None:
    result = dataclasses.replace(make_result(), environment={"openvino": "2025.0"})
    results_file = tmp_path / "results.json"
    results_file.write_text("{}")
    out = write_html(result, tmp_path / "report.html", gallery_dir=None, results_file=results_file)
    text = out.read_text(encoding="utf-8")
    assert "(results file)" in text and text.startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_palette() -> None:
    assert ADE20K_PALETTE.shape == (151, 3) and ADE20K_PALETTE.dtype == np.uint8
    assert tuple(ADE20K_PALETTE[0]) == (0, 0, 0)
    assert tuple(ADE20K_PALETTE[1]) == (120, 120, 120)  # wall
    assert tuple(ADE20K_PALETTE[3]) == (6, 230, 230)  # sky
    assert tuple(ADE20K_PALETTE[150]) == (92, 0, 255)
    assert len({tuple(c) for c in ADE20K_PALETTE}) >= 148  # the standard palette repeats very few colours
    rgb = colourise(np.array([[0, 1], [150, 200]], dtype=np.uint8))
    assert rgb.shape == (2, 2, 3) and tuple(rgb[1, 1]) == (255, 255, 255)
    assert not ADE20K_PALETTE.flags.writeable


# ------------------------------------------------------------------------------------------- in a browser


def test_renders_in_headless_chromium(tmp_path: Path, page: str) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium not installed")
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    shot = tmp_path / "shot.png"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    flags += ["--disable-component-update", "--disable-sync", "--no-first-run"]
    flags += [f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000"]
    cmd = [browser, *flags, html.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    assert shot.is_file(), proc.stderr.decode(errors="replace")[-2000:]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 20
    colours = np.unique(pixels[::4, ::4].reshape(-1, 3), axis=0)
    assert len(colours) > 50
    # The gate's badge and verdict cells and the plots' dots are saturated colours; a blank, grey or
    # text-only page has none.
    saturation = pixels.max(axis=2).astype(int) - pixels.min(axis=2).astype(int)
    assert (saturation > 100).sum() > 500
