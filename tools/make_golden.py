#!/usr/bin/env python3
"""Write ``tests/fixtures/golden_reference.json``: the reference tool's figures for the stand-ins.

The reference tool is the OMZ Accuracy Checker of ``openvino-dev==2023.3.0`` (cocosnet pipelined method), run
through ``../shared/tools/reference-tool/run.sh`` with ``--inference_precision_hint f32``. This script

1. optionally (``--rebuild-fixture``) regenerates ``tests/fixtures/ade20k_tiny`` with
   :func:`evalkit.demo.dataset.build_synthetic_ade20k` (otherwise the committed files are used as they are:
   they are the source of truth, so a different libjpeg cannot move them);
2. builds the stand-ins twice with :func:`evalkit.demo.models.save_standins` (seed 0) and stops unless both
   builds are byte-identical;
3. runs the reference tool once on ``original_baked.xml`` and once on ``converted.xml``, each with
   ``verifier.xml``, on a copy of the fixture in which each grayscale ground truth is stored as the RGB image
   that ``Image.convert("RGB")`` gives (lossless PNG bytes under the same ``.jpg`` name; Pillow opens files by
   content). The reference itself does not convert ground-truth modes and crashes on a grayscale JPEG; evalkit
   converts, and this is the only change from the committed fixture;
4. writes the figures, the commands, the hashes of the stand-ins and of the fixture, and library versions.

Usage (from the repository root)::

    /work/venv/bin/python tools/make_golden.py [--rebuild-fixture] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a plain checkout too

import openvino as ov  # noqa: E402
from PIL import Image  # noqa: E402

from evalkit.demo.dataset import PAIRS_FILE, ROOT_NAME, build_synthetic_ade20k  # noqa: E402
from evalkit.demo.models import BUILD_VERSION, StandinPaths, save_standins  # noqa: E402
from evalkit.fileio import sha256_file  # noqa: E402

FIXTURE = REPO / "tests" / "fixtures" / "ade20k_tiny"
GOLDEN = REPO / "tests" / "fixtures" / "golden_reference.json"
RUN_SH = "../shared/tools/reference-tool/run.sh"  # relative to the repository root, as documented
FIXTURE_PAIRS = 8
FIXTURE_SEED = 0
# (width, height): small, both orientations, so that the fixture stays well under 300 KB.
FIXTURE_SIZES = ((96, 64), (64, 96), (128, 96), (96, 128), (160, 120), (200, 160), (112, 112), (144, 96))
STANDIN_SEED = 0
REFERENCE_TOOL = "OMZ Accuracy Checker (openvino-dev 2023.3.0), cocosnet pipelined method"
_FIGURES = ("psnr", "psnr_std", "ssim", "ssim_std", "fid", "inception_score")


def tree_digest(directory: Path) -> str:
    """One SHA-256 over the relative paths and SHA-256 of every file under ``directory`` (stamp included)."""
    lines = [f"{p.relative_to(directory).as_posix()} {sha256_file(p)}\n"
             for p in sorted(directory.rglob("*")) if p.is_file()]
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def standin_hashes(paths: StandinPaths) -> dict[str, str]:
    """SHA-256 of each ``.xml`` and ``.bin`` of the stand-ins, by file name."""
    files = [f for xml in vars(paths).values() for f in (xml, xml.with_suffix(".bin"))]
    return {f.name: sha256_file(f) for f in sorted(files)}


def reference_copy(fixture: Path, destination: Path) -> tuple[Path, Path]:
    """Copy the fixture, storing every non-RGB validation image as the RGB PNG that ``convert("RGB")`` gives.

    Returns the copy's data root and pairs file.
    """
    shutil.copytree(fixture, destination)
    for path in sorted((destination / ROOT_NAME / "images" / "validation").glob("*.jpg")):
        with Image.open(path) as image:
            if image.mode == "RGB":
                continue
            rgb = image.convert("RGB")
        rgb.save(path, "PNG")  # lossless; the name keeps .jpg because the pairs file names it
    return destination / ROOT_NAME, destination / PAIRS_FILE


def run_reference(data_root: Path, pairs: Path, model: Path, verifier: Path, out: Path) -> tuple[str, dict]:
    """Run the reference tool; return the command line and the figures as run.sh prints them."""
    command = ["bash", RUN_SH, str(data_root), str(pairs), str(model), str(verifier), str(out)]
    print("+", shlex.join(command), flush=True)
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"reference tool failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    # run.sh prints "name repr(value)" lines: repr keeps every digit of the float.
    printed = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" ")
        if name in _FIGURES:
            printed[name] = float(value)
    if set(printed) != set(_FIGURES):
        sys.exit(f"unexpected output of run.sh:\n{done.stdout}")
    return shlex.join(command), {name: printed[name] for name in _FIGURES}


def reference_versions() -> dict[str, str]:
    """Versions of the libraries inside the reference tool's virtual environment (as run.sh locates it)."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    venv = Path(os.environ.get("EVALKIT_REFERENCE_VENV", cache / "evalkit-reference-tool"))
    code = ("import json, cv2, numpy, scipy, PIL, openvino; print(json.dumps({"
            "'openvino': openvino.__version__, 'numpy': numpy.__version__, 'opencv-python': cv2.__version__, "
            "'scipy': scipy.__version__, 'Pillow': PIL.__version__}))")
    python = str(venv / "bin" / "python")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild-fixture", action="store_true",
                        help="regenerate tests/fixtures/ade20k_tiny first (JPEG bytes follow the libjpeg)")
    parser.add_argument("--keep", type=Path, help="work in this new folder and keep it, not in a temp one")
    args = parser.parse_args(argv)

    if args.rebuild_fixture:
        shutil.rmtree(FIXTURE, ignore_errors=True)
        build_synthetic_ade20k(FIXTURE, n_pairs=FIXTURE_PAIRS, seed=FIXTURE_SEED, sizes=FIXTURE_SIZES)
    if not (FIXTURE / PAIRS_FILE).is_file():
        sys.exit(f"{FIXTURE} is missing: run with --rebuild-fixture")

    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="evalkit-golden-"))
    work.mkdir(parents=True, exist_ok=True)
    standins = save_standins(work / "standins", seed=STANDIN_SEED)
    hashes = standin_hashes(standins)
    # The golden figures are tied to these hashes: a second, independent build must give the same bytes.
    if standin_hashes(save_standins(work / "standins-again", seed=STANDIN_SEED)) != hashes:
        sys.exit("two builds of the stand-ins differ: figures tied to their hashes would not reproduce")

    data_root, pairs = reference_copy(FIXTURE, work / "ade20k_tiny_rgb_gt")
    commands = [shlex.join([sys.executable, *sys.argv])]
    models = {}
    for label, model in (("original", standins.original_baked), ("converted", standins.converted)):
        out = work / f"reference-{label}"
        command, figures = run_reference(data_root, pairs, model, standins.verifier, out)
        commands.append(command)
        models[label] = figures

    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    golden = {
        "produced_by": (
            f"{' && '.join(commands)} (from the repository root, {now}); reference tool = {REFERENCE_TOOL}, "
            "accuracy_check -td CPU --inference_precision_hint f32 --ignore_result_formatting True; "
            "original = original_baked.xml (ref_image BGR 0..255), converted = converted.xml (FP16 weights), "
            "verifier = verifier.xml; fixture = tests/fixtures/ade20k_tiny with each grayscale ground truth "
            "replaced by its Image.convert('RGB') (stored lossless): the reference does not convert modes"
        ),
        "commands": commands,
        "date": now,
        "reference_tool": {"name": REFERENCE_TOOL, "run_sh": RUN_SH, "versions": reference_versions()},
        "fixture": {
            "path": FIXTURE.relative_to(REPO).as_posix(),
            "n_pairs": sum(1 for line in (FIXTURE / PAIRS_FILE).read_text("utf-8").splitlines() if line),
            "tree_sha256": tree_digest(FIXTURE),
            "grayscale_ground_truth": "given to the reference as Pillow's Image.convert('RGB') of the JPEG",
        },
        "standins": {
            "seed": STANDIN_SEED,
            "build_version": BUILD_VERSION,
            "openvino": ov.get_version(),
            "sha256": hashes,
        },
        "models": models,
    }
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(models, indent=1))
    print(f"wrote {GOLDEN.relative_to(REPO)}; work files in {work}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
