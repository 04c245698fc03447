"""Hostile or huge inputs are bounded: YAML aliases and nesting, long values in messages, huge images."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

import evalkit
from evalkit import defaults
from evalkit.config import bundled_config, load_config, load_gate_file
from evalkit.data.ade20k import read_ground_truth, read_label_map
from evalkit.errors import InputError

SIZES = [(96, 128), (128, 96), (80, 80)]


def png_header(width: int, height: int) -> bytes:
    """A PNG declaring ``width x height`` gray pixels whose only data is one (short) compressed row."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


def billion_laughs() -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "evalkit", *args]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def test_billion_laughs_config_is_refused_fast_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(billion_laughs())
    start = time.perf_counter()
    with pytest.raises(InputError) as info:
        load_config(path)
    assert time.perf_counter() - start < 5
    assert str(info.value).startswith(f"{path}:")
    assert f"YAML aliases expand past {defaults.YAML_MAX_NODES} nodes" in str(info.value)
    proc = cli("check", str(path))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "YAML aliases expand past" in proc.stderr


def test_too_many_aliases_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "aliases.yaml"
    path.write_text("a: &a 1\nb: [" + ", ".join(["*a"] * (defaults.YAML_MAX_ALIASES + 1)) + "]\n")
    with pytest.raises(InputError, match=f"more than {defaults.YAML_MAX_ALIASES} YAML aliases"):
        load_gate_file(path)


def test_deep_nesting_is_exit_2_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("dataset: " + "[" * 200 + "]" * 200 + "\n")
    with pytest.raises(InputError, match=f"{path}:1: YAML nesting deeper than {defaults.YAML_MAX_DEPTH}"):
        load_gate_file(path)
    proc = cli("check", str(path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "RecursionError" not in proc.stderr


def test_a_few_aliases_in_a_normal_config_still_load(tmp_path: Path) -> None:
    """Anchors and aliases are legitimate YAML (a shared input convention): a few of them load."""
    path = tmp_path / "ok.yaml"
    path.write_text(
        "models:\n"
        "  a: {path: a.xml, ref_image: &rgb {color_order: RGB, mean: 127.5, scale: 127.5}}\n"
        "  b: {path: b.xml, ref_image: *rgb}\n"
        "verifier: {path: v.xml, input: *rgb}\n"
    )
    config = load_config(path)
    assert config.models[1].ref_image.color_order == "RGB" and config.verifier.input.mean == 127.5


def test_long_value_in_an_error_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(f"dataset:\n  limit: {'x' * 5000}\n")
    with pytest.raises(InputError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: key 'dataset.limit': expected a positive integer or null, got 'xxx")
    assert len(message) < len(str(path)) + 200


def test_max_pixels_is_a_config_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(bundled_config("demo.yaml").read_text() + "\ndataset:\n  max_pixels: 1000\n")
    assert load_config(path).dataset.max_pixels == 1000
    assert load_config(bundled_config("demo.yaml")).dataset.max_pixels == defaults.MAX_PIXELS


def test_huge_image_header_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(60000, 60000))
    expected = f"{path}: label map of 60000 x 60000 = 3600000000 pixels exceeds dataset.max_pixels"
    with pytest.raises(InputError, match=expected):
        read_label_map(path)
    with pytest.raises(InputError, match="ground-truth image of 60000 x 60000"):
        read_ground_truth(path)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc (Linux)")
def test_refusing_a_huge_image_keeps_memory_bounded(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_header(60000, 60000))
    code = (
        "import sys\nfrom pathlib import Path\nfrom evalkit.data.ade20k import read_label_map\n"
        "from evalkit.errors import InputError\n"
        f"try:\n    read_label_map(Path({str(path)!r}))\n"
        "except InputError:\n    pass\nelse:\n    sys.exit(1)\n"
        # VmHWM: this process's own peak (ru_maxrss would carry over the forking parent's, a big pytest)
        "print(next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) < 500 * 1024  # KiB on Linux


@pytest.fixture
def data(synthetic_data, tmp_path: Path):
    built = synthetic_data(4, SIZES)
    copy = tmp_path / "data"
    shutil.copytree(built.root.parent, copy)
    return copy / "ADEChallengeData2016", copy / built.pairs.name


def test_huge_image_in_a_run_is_exit_2_or_skipped(standins, data, tmp_path: Path) -> None:
    root, pairs = data
    path = root / "annotations" / "validation" / "ADE_val_00000002.png"
    path.write_bytes(png_header(60000, 60000))
    kwargs = {
        "data_root": root,
        "pairs": pairs,
        "models": {"original": standins.original, "converted": standins.converted},
        "verifier": standins.verifier,
    }
    with pytest.raises(InputError) as info:
        evalkit.evaluate(bundled_config("demo.yaml"), output=tmp_path / "out", **kwargs)
    assert str(info.value) == (
        f"{path}: label map of 60000 x 60000 = 3600000000 pixels exceeds dataset.max_pixels "
        f"({defaults.MAX_PIXELS}) (pairs line 2)"
    )
    demo = bundled_config("demo.yaml")
    result = evalkit.evaluate(demo, output=tmp_path / "skip", on_error="skip", **kwargs)
    (skipped,) = result.skipped
    assert skipped.pair_id == "ADE_val_00000002" and "60000 x 60000" in skipped.reason


def test_an_endless_pairs_file_is_refused_at_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    from evalkit.data.ade20k import read_pairs_file

    monkeypatch.setattr(defaults, "PAIRS_FILE_MAX_BYTES", 1000)  # the real bound is 64 MiB; same code path
    with pytest.raises(InputError) as info:
        read_pairs_file("/dev/zero")
    assert str(info.value) == (
        "/dev/zero: pairs file is larger than 1000 bytes "
        "(ADE20k's, 2000 pairs, has 962 kB; one pair per line)"
    )


def test_results_nested_past_the_stack_are_one_line(tmp_path: Path) -> None:
    from evalkit.results import load_results

    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    with pytest.raises(InputError, match=r"deep.json: nested too deeply to be an evalkit results file$"):
        load_results(deep)
