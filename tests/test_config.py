"""Config loading: the shipped configs, defaults, overrides, and one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.config import (
    InputConvention,
    Overrides,
    apply_overrides,
    bundled_config,
    config_to_dict,
    load_config,
    parse_config,
    require_complete,
)
from evalkit.errors import InputError

REPO = Path(__file__).resolve().parents[1]


def test_cocosnet_config_declares_the_real_conventions() -> None:
    config = load_config(REPO / "configs" / "cocosnet.yaml")
    assert [m.name for m in config.models] == ["original", "converted"]
    assert config.model("original").ref_image == InputConvention("RGB", 127.5, 127.5)
    assert config.model("converted").ref_image == InputConvention("BGR", 0.0, 1.0)
    assert config.verifier.input == InputConvention("BGR", 0.0, 1.0)
    assert config.verifier.features_output == "InceptionV3/Logits/AvgPool_1a_8x8/AvgPool"
    assert config.runtime.inference_precision == "f32"
    assert config.metrics.ssim_constants == "reference"


def test_demo_config_is_the_packaged_one() -> None:
    packaged = bundled_config("demo.yaml").read_text(encoding="utf-8")
    assert packaged == (REPO / "configs" / "demo.yaml").read_text(encoding="utf-8")
    config = parse_config(__import__("yaml").safe_load(packaged), "demo.yaml")
    assert config.model("original").ref_image.color_order == "RGB"
    assert config.model("converted").ref_image.color_order == "BGR"


def minimal() -> dict:
    return {"models": {"a": {"path": "a.xml"}}, "verifier": {"path": "v.xml"}}


def test_defaults_are_the_reference_ones() -> None:
    config = parse_config(minimal())
    m = config.model("a")
    assert m.label == "a"
    assert (m.tensors.input_seg_map, m.tensors.ref_image, m.tensors.ref_seg_map, m.tensors.output) == (
        "input_seg_map",
        "ref_image",
        "ref_seg_map",
        "exemplar_based_output",
    )
    assert config.verifier.probabilities_output == "InceptionV3/Predictions/Softmax"
    assert config.runtime.device == "CPU" and config.runtime.inference_precision == "f32"
    assert config.metrics.fid_method == "auto"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.update(modles={}), "key 'modles': unknown key; did you mean 'models'?"),
        (
            lambda c: c["models"]["a"].update(ref_imag={}),
            "key 'models.a.ref_imag': unknown key; did you mean 'ref_image'?",
        ),
        (
            lambda c: c["models"]["a"].update(ref_image={"color_order": "RGBA"}),
            "key 'models.a.ref_image.color_order': expected one of RGB, BGR",
        ),
        (
            lambda c: c["models"]["a"].update(ref_image={"scale": 0}),
            "key 'models.a.ref_image.scale': must not be 0",
        ),
        (
            lambda c: c["models"]["a"].update(ref_image={"mean": "x"}),
            "key 'models.a.ref_image.mean': expected a number",
        ),
        (lambda c: c.update(dataset={"limit": 0}), "key 'dataset.limit': expected a positive integer"),
        (lambda c: c.update(runtime={"inference_precision": "f64"}), "key 'runtime.inference_precision'"),
        (lambda c: c.update(metrics={"ssim_constants": "wang"}), "key 'metrics.ssim_constants'"),
        (lambda c: c.update(models={}), "key 'models': expected a mapping"),
        (lambda c: c.update(verifier=[1]), "key 'verifier': expected a mapping"),
    ],
)
def test_bad_config_names_the_key(mutate, message: str) -> None:
    raw = minimal()
    mutate(raw)
    with pytest.raises(InputError) as info:
        parse_config(raw, "my.yaml")
    assert str(info.value).startswith("my.yaml: ")
    assert message in str(info.value)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("models:\n  a: {path: x\nverifier: 1\n")
    with pytest.raises(InputError, match=r"c\.yaml:\d+: invalid YAML"):
        load_config(path)
    with pytest.raises(InputError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
    path.write_text("- models\n")
    with pytest.raises(InputError, match=r"c\.yaml: expected a mapping at the top level, got list$"):
        load_config(path)


def test_overrides_apply_in_one_place() -> None:
    config = parse_config(minimal() | {"dataset": {"root": "r", "pairs": "p"}})
    out = apply_overrides(
        config,
        Overrides(
            data_root=Path("/d"), models={"a": Path("b.onnx")}, limit=5, device="GPU", output=Path("o")
        ),
    )
    assert out.dataset.root == Path("/d") and out.dataset.pairs == Path("p") and out.dataset.limit == 5
    assert out.model("a").path == Path("b.onnx") and out.runtime.device == "GPU" and out.output == Path("o")
    assert config.model("a").path == Path("a.xml")  # the original record is untouched
    with pytest.raises(InputError, match="'b' is not a model of"):
        apply_overrides(config, Overrides(models={"b": Path("x")}))


def test_require_complete_names_missing_settings_and_flags() -> None:
    config = parse_config({"models": {"a": {}}, "verifier": {}})
    with pytest.raises(InputError) as info:
        require_complete(config)
    for piece in (
        "dataset.root (--data-root)",
        "dataset.pairs (--pairs)",
        "models.a.path (--model a=PATH)",
        "verifier.path (--verifier)",
    ):
        assert piece in str(info.value)


def test_resolved_config_is_plain_data() -> None:
    import json

    d = config_to_dict(load_config(REPO / "configs" / "cocosnet.yaml"))
    assert json.loads(json.dumps(d)) == d
    assert d["models"]["original"]["ref_image"] == {"color_order": "RGB", "mean": 127.5, "scale": 127.5}


def test_gate_and_published_keys_are_typed_fields() -> None:
    from evalkit.config import DEFAULT_ALLOWANCES, Allowance, GateSpec, PublishedValue

    config = parse_config(minimal())
    assert config.gate == GateSpec(source="<config> (defaults)") and config.published is None
    assert config.gate.allowances == DEFAULT_ALLOWANCES and "published" not in config_to_dict(config)
    raw = minimal() | {
        "gate": {"psnr": {"abs": 0.05}, "kid": None},
        "published": {"a": {"psnr": 12.99, "ssim": "0.340", "fid": 33}},
    }
    config = parse_config(raw, "my.yaml")
    assert config.gate.allowances["psnr"] == Allowance(absolute=0.05) and "kid" not in config.gate.allowances
    assert config.gate.source == "my.yaml" and config.gate.required == {"psnr"}
    assert config.published is not None and config.published.source == "my.yaml"
    assert config.published.models["a"]["ssim"] == PublishedValue(0.34, 3, "0.340")
    # results.json records the figures as written (strings), as before the table was typed.
    assert config_to_dict(config)["published"] == {"a": {"psnr": "12.99", "ssim": "0.340", "fid": "33"}}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"gate": {"pnsr": {"abs": 0.1}}}, "my.yaml: key 'gate.pnsr': unknown metric; did you mean 'psnr'?"),
        ({"gate": {"psnr": {"abs": -1}}}, "my.yaml: key 'gate.psnr.abs': expected a number >= 0"),
        ({"published": {"a": {"fdi": 1.0}}}, "my.yaml: key 'published.a.fdi': unknown metric"),
        ({"published": []}, "my.yaml: key 'published': expected a mapping"),
    ],
)
def test_bad_gate_or_published_key_fails_when_the_config_is_read(extra: dict, message: str) -> None:
    with pytest.raises(InputError) as info:
        parse_config(minimal() | extra, "my.yaml")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_importing_config_imports_no_higher_stage() -> None:
    import subprocess
    import sys

    code = (
        "import sys, evalkit.config\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pandas', 'matplotlib')"
        " or m.startswith(('evalkit.gate', 'evalkit.report'))]\n"
        "print(bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
