"""The verifier is checked for what the config claims it is, at ``check`` and before any inference.

Small verifiers built with OpenVINO's opset API (input [1,3,8,8]: a spatial mean, a MatMul to the features, a
MatMul to the logits, a Softmax) stand for a googlenet-v3 that is pointed at the wrong outputs: each bad one
gives exit 2 with one line from ``evalkit check`` and from ``evalkit run``, and the run writes no results.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset13 as ops
import pytest

from evalkit import cli, defaults
from evalkit.config import bundled_config, load_config
from evalkit.runtime.core import make_core
from evalkit.runtime.verifier import load_verifier

FEATURES = 16  # small, declared with verifier.feature_size
SOFTMAX, LOGITS, POOL = "probs/Softmax", "probs/Logits", "features/MatMul"


def build_verifier(path: Path, *, features: int = FEATURES, classes: int = 1001) -> Path:
    """A classifier [1,3,8,8] -> features [1,features] (inner node) -> logits -> softmax [1,classes]."""
    rng = np.random.default_rng(0)
    image = ops.parameter([1, 3, 8, 8], np.float32, name="input")
    image.output(0).get_tensor().set_names({"input"})
    pooled = ops.reduce_mean(image, ops.constant(np.array([2, 3], np.int64)), False)  # [1,3]
    weights = rng.normal(0.0, 0.01, (3, features)).astype(np.float32)
    feats = ops.matmul(pooled, ops.constant(weights), False, False, name=POOL)
    feats.output(0).get_tensor().set_names({POOL})
    logits = ops.matmul(
        feats, ops.constant(rng.normal(0.0, 1.0, (features, classes)).astype(np.float32)), False, False,
        name=LOGITS,
    )  # fmt: skip
    logits.output(0).get_tensor().set_names({LOGITS})
    softmax = ops.softmax(logits, 1, name=SOFTMAX)
    softmax.output(0).get_tensor().set_names({SOFTMAX})
    ov.save_model(ov.Model([ops.result(softmax)], [image], "verifier"), str(path))
    return path


def write_config(tmp_path: Path, verifier: dict[str, object]) -> Path:
    """The demo config with the verifier keys replaced (its interfaces are those of the small verifiers)."""
    lines = [f"  {key}: {value}" for key, value in verifier.items()]
    text = bundled_config("demo.yaml").read_text().replace(
        "verifier:\n", "verifier:\n" + "\n".join(lines) + "\n_drop:\n", 1
    )
    # The demo's own verifier keys now sit under _drop; remove that block.
    head, _, rest = text.partition("_drop:\n")
    rest = rest.split("\n\n", 1)[1]
    path = tmp_path / "verifier-check.yaml"
    path.write_text(head + "\n" + rest)
    return path


GOOD = {"input": "{color_order: BGR, mean: 0, scale: 1}", "probabilities_output": SOFTMAX,
        "features_output": POOL, "feature_size": FEATURES}  # fmt: skip

CASES = {
    "logits": (
        {**GOOD, "probabilities_output": LOGITS},
        {},
        "verifier output 'probs/Logits' is not a probability vector (sums to ",
        "point verifier.probabilities_output at the softmax",
    ),
    "swapped": (
        {**GOOD, "probabilities_output": POOL, "features_output": SOFTMAX},
        {},
        "verifier outputs look swapped: probabilities_output 'features/MatMul'",
        "exchange verifier.probabilities_output and verifier.features_output",
    ),
    "wrong feature size": (
        {**GOOD, "feature_size": 2048},
        {},
        "verifier output 'features/MatMul' has 16 values, verifier.feature_size is 2048",
        "or set verifier.feature_size",
    ),
    "too few classes": (
        GOOD,
        {"classes": 10},
        "verifier output 'probs/Softmax' has 10 values, expected a probability vector of at least 1000 "
        "classes",
        "point verifier.probabilities_output at the classifier's softmax",
    ),
}


@pytest.fixture
def data(synthetic_data):
    built = synthetic_data(4, [(64, 64)])
    return built.root, built.pairs


def cli_args(command: str, config: Path, verifier: Path, data, standins, out: Path) -> list[str]:
    root, pairs = data
    return [
        command, str(config), "--data-root", str(root), "--pairs", str(pairs),
        "--model", f"original={standins.original}", "--model", f"converted={standins.converted}",
        "--verifier", str(verifier), "--output", str(out),
    ]  # fmt: skip


def test_good_verifier_loads_and_check_passes(tmp_path: Path, standins, data) -> None:
    verifier = build_verifier(tmp_path / "good.xml")
    config = load_config(write_config(tmp_path, GOOD))
    loaded = load_verifier(make_core(), replace(config.verifier, path=verifier), config.runtime)
    out = loaded(np.full((64, 64, 3), 128, np.uint8))
    assert out.probabilities.size == 1001 and out.features.size == FEATURES
    assert abs(float(out.probabilities.sum()) - 1.0) < 1e-5
    args = cli_args("check", write_config(tmp_path, GOOD), verifier, data, standins, tmp_path / "o")
    assert cli.main(args) == 0


def test_demo_standin_is_a_googlenet_v3_shape(standins) -> None:
    # The demo's stand-in passes with the defaults: 1001 classes, 2048 features.
    config = load_config(bundled_config("demo.yaml"))
    assert config.verifier.feature_size == defaults.VERIFIER_FEATURE_DIM == 2048
    verifier = load_verifier(make_core(), replace(config.verifier, path=standins.verifier), config.runtime)
    out = verifier(np.zeros((32, 32, 3), np.uint8))
    assert out.probabilities.size == defaults.VERIFIER_CLASSES >= defaults.VERIFIER_MIN_CLASSES
    assert out.features.size == 2048


@pytest.mark.parametrize("command", ["check", "run"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_verifier_exits_2_with_one_line(
    case: str, command: str, tmp_path: Path, standins, data, capsys: pytest.CaptureFixture[str]
) -> None:
    keys, build, start, end = CASES[case]
    verifier = build_verifier(tmp_path / "verifier.xml", **build)
    out = tmp_path / "out"
    code = cli.main(cli_args(command, write_config(tmp_path, keys), verifier, data, standins, out))
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("evalkit: error: ")]
    assert len(lines) == 1, lines
    message = lines[0].removeprefix("evalkit: error: ")
    assert message.startswith(f"{verifier}: {start}"), message
    assert message.endswith(end), message
    assert not (out / "results.json").exists()
    assert not list(out.glob("*.csv")) if out.exists() else True


def test_feature_size_is_validated(tmp_path: Path) -> None:
    from evalkit.errors import InputError

    with pytest.raises(InputError, match=r"verifier\.feature_size.*positive integer"):
        load_config(write_config(tmp_path, {**GOOD, "feature_size": 0}))
