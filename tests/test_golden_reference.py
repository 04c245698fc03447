"""evalkit reproduces the reference tool on a committed fixture.

The golden figures in ``fixtures/golden_reference.json`` were printed by the reference tool itself (the OMZ
Accuracy Checker from openvino-dev 2023.3.0, cocosnet pipelined method, ``--inference_precision_hint f32``),
run by ``tools/make_golden.py`` through ``../shared/tools/reference-tool/run.sh`` on ``fixtures/ade20k_tiny``
with the stand-in models of ``evalkit.demo.models`` (seed 0). The reference only takes BGR 0..255 translation
models, so "original" was measured on ``original_baked.xml``, the FP32 twin with the same weights; evalkit
measures the RGB-normalised ``original.xml`` with its own input convention, which must give the same numbers.
The file records the sha256 of every stand-in file: if the stand-ins change, the figures must be remade.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import evalkit
from evalkit.config import bundled_config

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = json.loads((FIXTURES / "golden_reference.json").read_text())
DATA = FIXTURES / "ade20k_tiny"

# Tolerances of the contract: PSNR, SSIM, IS within 1e-5 relative, FID within 1e-4 relative.
REL = {"psnr": 1e-5, "psnr_std": 1e-5, "ssim": 1e-5, "ssim_std": 1e-5, "inception_score": 1e-5, "fid": 1e-4}


@pytest.fixture(scope="module")
def standins(standins):
    """The test run's stand-ins (conftest: seed 0), checked against the ones of the golden figures."""
    assert GOLDEN["standins"]["seed"] == 0, "the golden figures were made with other stand-ins"
    paths = standins
    for name, digest in GOLDEN["standins"]["sha256"].items():
        got = hashlib.sha256((paths.original.parent / name).read_bytes()).hexdigest()
        assert got == digest, (
            f"stand-in {name} differs from the one the golden figures were made with; "
            "rerun tools/make_golden.py (see tests/fixtures/README.md)"
        )
    return paths


@pytest.fixture(scope="module")
def result(standins):
    return evalkit.evaluate(
        bundled_config("demo.yaml"),
        data_root=DATA / "ADEChallengeData2016",
        pairs=DATA / "ade20k_ref_test.txt",
        models={"original": standins.original, "converted": standins.converted},
        verifier=standins.verifier,
    )


@pytest.mark.parametrize("model", ["original", "converted"])
@pytest.mark.parametrize("metric", sorted(REL))
def test_matches_reference_tool(result, model: str, metric: str) -> None:
    m = result.models[model].metrics
    got = {
        "psnr": m.psnr,
        "psnr_std": m.psnr_std,
        "ssim": m.ssim,
        "ssim_std": m.ssim_std,
        "inception_score": m.inception_score,
        "fid": m.fid,
    }[metric]
    assert got == pytest.approx(GOLDEN["models"][model][metric], rel=REL[metric])


def test_fixture_is_the_one_measured(result) -> None:
    assert result.dataset.n_pairs == GOLDEN["fixture"]["n_pairs"]
