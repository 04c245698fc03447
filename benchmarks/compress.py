"""Time NNCF compression of a stand-in and print its accuracy table (issue 14).

Usage: ``python benchmarks/compress.py [--standin int8_sensitive|original] [--pairs 32] [--max-drop fid=2%]
[--work DIR]``  (needs ``pip install 'evalkit[compress]'``)

Builds the stand-ins and ``--pairs`` synthetic pairs, then, calibrating on every pair (so that "the
calibration pairs" and "the evaluation" are the same set):

1. times one evaluation of the calibration pairs by the source model alone (``evalkit.workflow.evaluate``:
   read, infer, verify, score; the verifier's ground-truth work included);
2. times ``evalkit.compress.compress_model`` in each mode: ``int8`` (calibration + quantization),
   ``int8`` with ``--max-drop`` (accuracy control: quantization, then validations of evalkit's metric),
   ``int8-weights``; and prints each as a multiple of (1);
3. evaluates the source (FP32), its FP16 IR, and the three compressed models in one run, gates them against
   the source with the built-in allowances, and prints the table (PSNR/SSIM/IS/FID and verdicts) and what
   accuracy control reverted. The figures come from stand-ins on synthetic data, not from CoCosNet.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import openvino as ov

from evalkit import config as cfg
from evalkit import workflow
from evalkit.compress import compress_model, parse_max_drop
from evalkit.data.ade20k import read_pairs
from evalkit.demo.dataset import build_synthetic_ade20k
from evalkit.demo.models import save_standins
from evalkit.gate import compare_within_run
from evalkit.metrics.registry import metrics_of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--standin", choices=("int8_sensitive", "original"), default="int8_sensitive")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--max-drop", default="fid=2%")
    parser.add_argument("--work", type=Path, help="build folder (default: a temporary one)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        run(work, args.standin, args.pairs, args.max_drop)


def run(work: Path, standin: str, n_pairs: int, max_drop: str) -> None:
    standins = save_standins(work / "models")
    data = build_synthetic_ade20k(work / f"data-{n_pairs}", n_pairs=n_pairs)
    source_path = getattr(standins, standin)
    fp16 = work / "models" / f"{standin}_fp16.xml"
    ov.save_model(ov.Core().read_model(str(source_path)), fp16, compress_to_fp16=True)
    config = workflow.configure(
        cfg.bundled_config("demo.yaml"),
        data_root=data.root,
        pairs=data.pairs,
        models={"original": source_path},
        verifier=standins.verifier,
    )
    # the source alone (the demo config's 'converted' has another interface than an FP16 copy of the source)
    config = replace(config, models=(config.model("original"),))
    config = replace(config, metrics=replace(config.metrics, profile="reference"))
    source = config.model("original")
    pairs = read_pairs(data.pairs)

    t0 = time.perf_counter()
    workflow.evaluate(config)
    t_eval = time.perf_counter() - t0
    print(f"stand-in '{standin}', {n_pairs} synthetic pairs, all of them calibration pairs")
    print(f"one evaluation of the calibration pairs (source model alone): {t_eval:.2f} s")

    made = {}
    timings = [("int8", None), ("int8", max_drop), ("int8-weights", None)]
    for mode, bound in timings:
        key = f"{mode} {bound}" if bound else mode
        t0 = time.perf_counter()
        made[key] = compress_model(
            config,
            "original",
            mode,  # type: ignore[arg-type]
            work / "out" / key.replace(" ", "_").replace("%", "pct").replace("=", "-"),
            pairs,
            calibration_pairs=n_pairs,
            max_drop=parse_max_drop(bound) if bound else None,
            quiet=True,
        )
        seconds = time.perf_counter() - t0
        print(f"compress_model {key:<22} {seconds:7.2f} s = {seconds / t_eval:5.2f} x the evaluation")

    names = {"int8": "int8", f"int8 {max_drop}": "int8-controlled", "int8-weights": "int8-weights"}
    specs = [source, replace(source, name="fp16", label="FP16 IR", path=fp16)]  # the source's interface
    specs += [replace(m.spec, name=names[key], label=key) for key, m in made.items()]
    result = workflow.evaluate(replace(config, models=tuple(specs)))
    gate = compare_within_run(result, config.gate, reference_model="original")
    verdicts = {(r.model, r.metric): r.verdict for r in gate.rows}
    reference = metrics_of("reference")
    print()
    print("| model | " + " | ".join(m.name for m in reference) + " | gate vs FP32 |")
    print("|---|" + "---|" * (len(reference) + 1))
    for spec in specs:
        values = result.models[spec.name].metrics
        cells = [f"{values.get(m.key):.{m.decimals}f}" for m in reference]
        failed = [m.name for m in reference if verdicts.get((spec.name, m.key)) == "FAIL"]
        verdict = "—" if spec.name == "original" else ("FAIL: " + ", ".join(failed) if failed else "PASS")
        label = "source FP32" if spec.name == "original" else spec.name
        print(f"| {label} | " + " | ".join(cells) + f" | {verdict} |")
    controlled = made[f"int8 {max_drop}"]
    total = (controlled.record["accuracy_control"] or {}).get("quantized_operations")
    print(f"\naccuracy control ({max_drop}) reverted {len(controlled.reverted)} of {total} quantized "
          f"operations to float: {', '.join(controlled.reverted) or 'none'}")
    print("(stand-in figures on synthetic data; the gate's built-in allowances: PSNR 0.1 dB, SSIM 0.01, "
          "IS and FID 2 %)")


if __name__ == "__main__":
    main()
