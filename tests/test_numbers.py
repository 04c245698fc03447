"""Numbers agree with their sentences: one formatting rule, and the practical significance of a difference.

A non-zero difference never prints as zero (no ``-0.0000``), an exact zero prints as ``0.0000``, and each
comparison sentence and table row says whether the difference is within the gate's allowance (one-sided,
like the gate: the interval's worse end; an improvement never counts against a model).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import records
from hypothesis import given
from hypothesis import strategies as st

from evalkit.config import Allowance, GateSpec
from evalkit.number_format import MAX_FIXED_PLACES, format_number
from evalkit.report.gate import gate_table_cells
from evalkit.report.html import render_html
from evalkit.report.model import build_report, format_delta, format_value
from evalkit.results import ComparisonEntry, GateRow, SampleScores
from evalkit.stats.aggregate import ModelOutputs, allowance_limit, compare_models
from evalkit.stats.comparison import PairedDelta, SetDelta, within_allowance

NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?(?:e[+-]\d+)?")

# --- format_number -------------------------------------------------------------------------------------


def _shown_precision(text: str) -> float:
    """Half a unit in the last shown place of ``text`` (absolute for fixed, scaled for 1.5e-13)."""
    mantissa, _, exponent = text.lstrip("+-").partition("e")
    places = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (-places) * (10.0 ** int(exponent) if exponent else 1.0)


@given(
    value=st.floats(allow_nan=False, allow_infinity=False).filter(lambda v: v != 0.0),
    decimals=st.integers(0, 6),
    significant=st.integers(1, 5),
    signed=st.booleans(),
)
def test_a_non_zero_number_reads_back_non_zero_with_its_sign(
    value: float, decimals: int, significant: int, signed: bool
) -> None:
    text = format_number(value, decimals, " dB", signed=signed, significant=significant)
    assert text.endswith(" dB")
    number = text.removesuffix(" dB")
    parsed = float(number)
    assert parsed != 0.0 and math.copysign(1.0, parsed) == math.copysign(1.0, value), text
    assert abs(parsed - value) <= _shown_precision(number) * (1 + 1e-9), text
    if "e" not in number:  # at least the usual decimals (fixed notation)
        assert len(number.partition(".")[2]) >= decimals, text
    assert number.startswith("-") if value < 0 else (number.startswith("+") == signed), text


@pytest.mark.parametrize(
    ("value", "signed", "expected"),
    [
        (0.0, True, "0.0000"),
        (-0.0, True, "0.0000"),  # a zero has no sign
        (-4.04e-7, True, "-0.00000040"),
        (4.04e-7, True, "+0.00000040"),
        (-0.0123456, True, "-0.0123"),  # usual values keep the usual decimals
        (21.123456, False, "21.1235"),
        (-0.00012345, False, "-0.00012"),
        (3e-300, True, "+3.0e-300"),  # beyond MAX_FIXED_PLACES: scientific
        (math.nan, True, "n/a"),
        (math.inf, False, "n/a"),
    ],
)
def test_format_number_examples(value: float, signed: bool, expected: str) -> None:
    assert format_number(value, 4, signed=signed) == expected


def test_fixed_notation_up_to_the_place_limit() -> None:
    assert "e" not in format_number(1.5 * 10.0 ** (1 - MAX_FIXED_PLACES), 4)
    assert "e" in format_number(1.5 * 10.0 ** (-1 - MAX_FIXED_PLACES), 4)
    with pytest.raises(ValueError, match="decimals must be >= 0"):
        format_number(1.0, -1)


def test_report_cells_never_print_a_non_zero_difference_as_zero() -> None:
    assert format_delta(0.5, 0.5 + 4e-7, "", 4) == "-0.00000040"
    assert format_delta(0.5, 0.5, " dB", 4) == "0.0000 dB"
    assert format_delta(0.12901, 0.12900, "", 5) == "+0.000010"  # a KID delta, 5 decimals
    assert format_value(3e-6, "", 5, std=2e-7) == "0.0000030 ± 0.00000020"
    assert format_value(0.5, "", 4, std=0.0) == "0.5000 ± 0.0000"


def test_gate_table_prints_a_tiny_drop_with_its_sign() -> None:
    row = GateRow("converted", "original", "ssim", 0.5 - 4e-7, 0.5, -4e-7, 0.01, True, "PASS", "yes")
    cells = gate_table_cells(row)
    assert cells[5] == "-0.00000040"
    assert cells[6] == "≥ -0.0100"
    zero = GateRow("converted", "original", "psnr", 20.0, 20.0, 0.0, 0.0, True, "PASS", "no")
    assert gate_table_cells(zero, ascii_only=True)[5:7] == ["0.0000 dB", ">= 0.0000 dB"]


@pytest.mark.parametrize(
    ("drop", "caption"), [(-7.85e-7, "Δ PSNR -0.00000079 dB"), (-1.0, "Δ PSNR -1.00 dB")]
)
def test_gallery_caption_never_reads_minus_zero(tmp_path: Path, drop: float, caption: str) -> None:
    pair = {"pair_id": "ADE_val_00000001", "reason": "worst", "delta_psnr": drop, "images": {}, "scores": {}}
    (tmp_path / "gallery.json").write_text(json.dumps({"pairs": [pair]}))
    result = records.run({"original": records.metrics(), "converted": records.metrics()})
    page = render_html(result, gallery_dir=tmp_path)
    assert re.findall(r"Δ PSNR [^<]*", page) == [caption]


# --- practical significance ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "allowance", "expected"),
    [
        (PairedDelta("SSIM", -4e-7, -5e-7, -3e-7, 1e-9, 100, True), 0.01, True),  # detectable, tiny
        (PairedDelta("PSNR", -0.05, -0.15, 0.02, 0.2, 100, True), 0.1, False),  # worse end beyond 0.1
        (PairedDelta("PSNR", -0.1, -0.1, -0.1, 0.2, 100, True), 0.1, True),  # exactly the allowance
        (PairedDelta("PSNR", 0.5, 0.3, 0.7, 0.01, 100, True), 0.0, True),  # an improvement never counts
        (SetDelta("FID", 0.3, 0.1, 0.5, 200, False), 0.4, False),  # lower is better: the upper end
        (SetDelta("FID", -2.0, -3.0, -1.0, 200, False), 0.0, True),
        (SetDelta("KID", 0.0005, math.nan, math.nan, 0, False), 0.001, None),  # no interval
    ],
)
def test_within_allowance_is_one_sided_on_the_worse_end(
    delta: PairedDelta | SetDelta, allowance: float, expected: bool | None
) -> None:
    assert within_allowance(delta, allowance) is expected


def test_sentences_say_statistically_detectable_practically_equal() -> None:
    tiny = PairedDelta("SSIM", -4e-7, -5e-7, -3e-7, 1e-9, 2000, True)
    text = tiny.sentence("converted", "original", 0.01)
    assert text == (
        "converted is worse than original on SSIM by 0.0000004000, 95% CI [0.0000003000, 0.0000005000] "
        "(Wilcoxon p = 1e-09). Practically equal: even the interval's worse end is within the gate's "
        "allowance of 0.0100."
    )
    beyond = SetDelta("FID", 0.41, 0.12, 0.70, 200, False).sentence("new", "old", 0.5)
    assert beyond.endswith(
        "Not shown to be within the gate's allowance of 0.5000: the interval's worse end is 0.7000 worse."
    )
    better = SetDelta("KID", -0.00001, -0.00003, -0.000002, 200, False).sentence("new", "old", 0.001)
    assert better.endswith(
        "Within the gate's allowance of 0.00100: not worse even at the interval's worse end."
    )
    # No allowance: nothing is said; no interval: nothing either (the sentence says it has none).
    assert "allowance" not in tiny.sentence("converted", "original")
    assert "allowance" not in SetDelta("KID", 0.002, math.nan, math.nan, 0, False).sentence("a", "b", 0.001)


def test_sentence_and_table_agree_on_a_tiny_difference() -> None:
    entry = ComparisonEntry(
        PairedDelta("SSIM", -4e-7, -5e-7, -3e-7, 1e-9, 10, True),
        PairedDelta("SSIM", -4e-7, -5e-7, -3e-7, 1e-9, 10, True).sentence("converted", "original", 0.01),
    )
    result = records.run(
        {"original": records.metrics(), "converted": records.metrics()},
        comparison=records.comparison("original", {"converted": {"ssim": entry}}),
    )
    (model,) = build_report(result).comparison.models
    (row,) = model.rows
    assert row == ("SSIM", "-0.00000040", "[-0.00000050, -0.00000030]", "1e-09", "10", "yes", "yes")
    # Every number in the sentence and the row is non-zero; the row is signed, the sentence magnitudes.
    for text in (model.sentences[0], *row[1:3]):
        assert all(float(x) != 0.0 for x in NUMBER.findall(text.split("Wilcoxon")[0].replace("95%", "")))


def test_report_row_judges_with_the_run_configs_gate() -> None:
    entries = {
        "psnr": records.paired_entry("PSNR", -0.3, -0.05),  # worse end 0.3 dB > 0.1 dB
        "fid": records.set_entry("FID", 0.5, 0.2, 0.8),  # rel 2 % of 50.0 = 1.0 >= 0.8
        "kid": records.set_entry("KID", 0.0, None, None),  # no interval
        "ssim": records.paired_entry("SSIM", -0.001, 0.001),
    }
    base = records.metrics(fid=50.0)
    result = records.run(
        {"original": base, "converted": base},
        comparison=records.comparison("original", {"converted": entries}),
    )
    rows = {r[0]: r for r in build_report(result).comparison.models[0].rows}
    assert {k: rows[k][6] for k in rows} == {"PSNR": "no", "FID": "yes", "KID": "unknown", "SSIM": "yes"}
    # A config whose gate gives SSIM no allowance: its cell says nothing.
    only_psnr = records.run(
        {"original": base, "converted": base},
        comparison=records.comparison("original", {"converted": entries}),
        extra={"gate": {"psnr": {"abs": 0.5}, "ssim": None, "fid": None, "kid": None}},
    )
    rows = {r[0]: r for r in build_report(only_psnr).comparison.models[0].rows}
    assert {k: rows[k][6] for k in rows} == {"PSNR": "yes", "FID": "", "KID": "", "SSIM": ""}


def test_allowance_limit_takes_relative_allowances_of_the_reference_value() -> None:
    gate = GateSpec(allowances={"fid": Allowance(relative=0.02), "psnr": Allowance(absolute=0.1)})
    reference = records.metrics(fid=50.0)
    assert allowance_limit(gate, "fid", reference) == pytest.approx(1.0)
    assert allowance_limit(gate, "psnr", None) == 0.1  # absolute: no reference value needed
    assert allowance_limit(gate, "fid", None) is None  # relative of nothing
    assert allowance_limit(gate, "ssim", reference) is None  # not gated


def test_compare_models_sentences_use_the_gate_spec() -> None:
    rng = np.random.default_rng(0)
    n, d = 24, 6

    def outputs(psnr: np.ndarray, ssim: np.ndarray, features: np.ndarray) -> ModelOutputs:
        samples = tuple(
            SampleScores(pair_id=f"p{i}", values={"psnr": float(psnr[i]), "ssim": float(ssim[i])})
            for i in range(n)
        )
        probs = rng.dirichlet(np.ones(5), size=n).astype(np.float32)
        return ModelOutputs(samples=samples, probabilities=probs, features=features.astype(np.float32))

    psnr = 20 + rng.normal(0, 1, n)
    ssim = 0.5 + rng.normal(0, 0.05, n)
    features = rng.normal(size=(n, d))
    outs = {
        "original": outputs(psnr, ssim, features),
        # A tiny, consistent SSIM drop: detectable, far within its 0.01 allowance; PSNR 0.5 dB worse.
        "converted": outputs(psnr - 0.5 - rng.uniform(0, 0.01, n), ssim - 4e-7, features + 1e-3),
    }
    spec = records.config(["original", "converted"]).metrics
    gate = GateSpec(allowances={"psnr": Allowance(absolute=0.1), "ssim": Allowance(absolute=0.01)})
    comp = compare_models(rng.normal(size=(n, d)), outs, spec, "original", gate=gate)
    sentences = {k: e.sentence for k, e in comp.models["converted"].items()}
    assert sentences["ssim"].startswith("converted is worse than original on SSIM by 0.000000")
    assert "Practically equal: even the interval's worse end is within the gate's allowance of 0.0100." in (
        sentences["ssim"]
    )
    assert "Not shown to be within the gate's allowance of 0.1000 dB" in sentences["psnr"]
    assert all("allowance" not in sentences[k] for k in ("is", "fid", "kid"))  # not in this gate spec


@pytest.mark.parametrize(
    "delta",
    [
        SetDelta("FID", 3.0, 0.5, 1.5, 200, False, 100.0, 103.0),  # lower is better, interval shifted down
        SetDelta("IS", -0.3, -0.15, -0.05, 200, True, 9.2, 8.9),  # higher is better, interval shifted up
    ],
)
def test_an_estimate_beyond_the_allowance_is_never_called_within_it(delta: SetDelta) -> None:
    # A set metric's bootstrap interval can exclude its estimate (bias on resamples); the gate judges the
    # estimate, so neither the sentence nor the report column may call it within the allowance.
    allowance = 2.0 if delta.metric == "FID" else 0.184
    assert within_allowance(delta, allowance) is False
    text = delta.sentence("bad", "orig", allowance)
    assert "Practically equal" not in text
    assert "Not shown to be within the gate's allowance" in text
    assert f"the estimate is {abs(delta.delta):.4f} worse" in text


def test_a_count_delta_of_zero_has_no_sign() -> None:
    # The "images identical to GT" row: an exact zero difference reads "0", like format_number's zero.
    assert format_delta(3, 3, "", 0) == "0"
    assert format_delta(5, 3, "", 0) == "+2"
    assert format_delta(1, 3, "", 0) == "-2"
