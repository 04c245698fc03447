"""Verified error rate of the sequential gate: how often does an early decision differ from the full run's?

Two ladders of candidate models, from equal to clearly worse than the original stand-in
(``evalkit.demo.models.build_degraded_translation_model``): a fixed noise pattern of growing amplitude moves
PSNR and SSIM across their allowances, a growing fade towards grey moves KID, IS and FID across theirs.
Every rung is evaluated ONCE on N synthetic pairs (one run, every rung a model of it). The full run's gate
gives each (rung, metric) its verdict. Then, per rung and gated metric, many seeded orders are simulated by
permuting the per-pair records and running the sequential gate (``evalkit.stats.sequential.SequentialGate``,
the code the pipeline runs) look by look, each metric gated on its own. Printed per rung and metric: the
full run's worsening in allowances, its verdict, the rate at which the sequential decision differs from it,
and the mean and 95th percentile of the pairs used.

    python benchmarks/sequential.py            # N = 300; orders: 500 PSNR/SSIM, 200 IS/KID, 30 FID
    python benchmarks/sequential.py --pairs 120 --orders 40 --set-orders 10 --fid-orders 3   # quick

BLAS runs single-threaded (set below, before numpy loads): the bootstrap's many small eigenvalue problems
are ~20x slower with threads competing for two cores.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import openvino as ov  # noqa: E402

from evalkit import config as cfg  # noqa: E402
from evalkit.config import DEFAULT_ALLOWANCES, GateSpec, SequentialSpec  # noqa: E402
from evalkit.demo.dataset import build_synthetic_ade20k  # noqa: E402
from evalkit.demo.models import build_degraded_translation_model, save_standins  # noqa: E402
from evalkit.execution.inprocess import InProcessExecutor  # noqa: E402
from evalkit.execution.pipeline import run as run_pipeline  # noqa: E402
from evalkit.gate.engine import compare_within_run  # noqa: E402
from evalkit.metrics.registry import METRICS_BY_KEY  # noqa: E402
from evalkit.stats.sequential import LookData, SequentialGate  # noqa: E402

#: The ladders: (noise, fade) of each rung and the metrics it is simulated for. Noise (output units, 1 =
#: 127.5 levels) crosses PSNR's allowance near 0.08 and SSIM's near 0.12 on the stand-ins; fade crosses
#: KID's near 0.002, FID's near 0.009 and IS's near 0.014 (and improves PSNR). (0, 0) is the original.
LADDERS = {
    "noise": ([(z, 0.0) for z in (0.0, 0.03, 0.06, 0.075, 0.085, 0.1, 0.13, 0.2, 0.3)], ("psnr", "ssim")),
    "fade": (
        [(0.0, f) for f in (0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.008, 0.01, 0.013, 0.02, 0.03)],
        ("kid", "is", "fid"),
    ),
}
PER_IMAGE = ("psnr", "ssim")


@dataclass
class CapturingExecutor:
    """The default executor, keeping every record it delivers (the per-pair records to permute)."""

    inner: InProcessExecutor = field(default_factory=InProcessExecutor)
    records: list = field(default_factory=list)

    def evaluate(self, config, pairs, deliver, *, on_error, on_step=None):
        def keep(record):
            self.records.append(record)
            deliver(record)

        self.inner.evaluate(config, pairs, keep, on_error=on_error, on_step=on_step)


def build_inputs(work: Path, n_pairs: int, rungs: list[tuple[float, float]]) -> cfg.Config:
    """Stand-ins, the ladders' models and N synthetic pairs in ``work``; the config of the one run."""
    standins = save_standins(work / "models")
    data = build_synthetic_ade20k(work / f"data-{n_pairs}", n_pairs=n_pairs)
    rgb = {"color_order": "RGB", "mean": 127.5, "scale": 127.5}
    models = {"original": {"path": str(standins.original), "ref_image": rgb}}
    for k, (noise, fade) in enumerate(rungs):
        path = work / "ladder" / f"rung{k}-noise{noise:g}-fade{fade:g}.xml"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(build_degraded_translation_model(noise, fade), path, compress_to_fp16=False)
        models[f"rung{k}"] = {"path": str(path), "ref_image": rgb}
    raw = {
        "dataset": {"root": str(data.root), "pairs": str(data.pairs)},
        "models": models,
        "verifier": {"path": str(standins.verifier)},
        "metrics": {"profile": "all"},
    }
    return cfg.parse_config(raw, source="benchmarks/sequential.py")


def simulate(
    data: dict, rung: str, key: str, orders: int, settings: SequentialSpec, full_verdict: str
) -> tuple[float, float, float]:
    """Disagreement rate with the full run, mean and p95 pairs used, over ``orders`` seeded orders."""
    n_listed = data["gt"].shape[0]
    spec = GateSpec(allowances={key: DEFAULT_ALLOWANCES[key]}, source="benchmark")
    wrong, used = 0, []
    pair = ("original", rung)
    for seed in range(orders):
        metrics = cfg.MetricSpec(profile="all", seed=seed)
        gate = SequentialGate(settings, spec, metrics, "original", [rung], n_listed)
        n_done = n_listed
        for number, n in enumerate(gate.looks[:-1], start=1):
            idx = gate.order[:n]
            look = LookData(
                gt_features=data["gt"][idx],
                per_image={m: {k: v[idx] for k, v in data["per_image"][m].items()} for m in pair},
                features={m: data["features"][m][idx] for m in pair},
                probabilities={m: data["probs"][m][idx] for m in pair},
            )
            if gate.look(number, look):
                n_done = n
                break
        decision = gate.outcome(n_done).decisions[0]
        verdict = decision.verdict if decision.decided_by == "look" else full_verdict
        wrong += verdict != full_verdict
        used.append(n_done)
    return wrong / orders, float(np.mean(used)), float(np.percentile(used, 95))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300, help="synthetic pairs N (default 300)")
    parser.add_argument("--orders", type=int, default=500, help="orders per rung, PSNR and SSIM (500)")
    parser.add_argument("--set-orders", type=int, default=200, help="orders per rung, IS and KID (200)")
    parser.add_argument("--fid-orders", type=int, default=30, help="orders per rung, FID (30)")
    parser.add_argument("--alpha", type=float, default=SequentialSpec().alpha)
    parser.add_argument("--look-every", type=int, default=SequentialSpec().look_every)
    parser.add_argument("--work", type=Path, default=None, help="folder for models and data (default: temp)")
    args = parser.parse_args(argv)
    settings = SequentialSpec(alpha=args.alpha, look_every=args.look_every)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        t0 = time.perf_counter()
        rungs = [rung for ladder, _ in LADDERS.values() for rung in ladder]
        config = build_inputs(work, args.pairs, rungs)
        executor = CapturingExecutor()
        result = run_pipeline(config, executor=executor, journal=False)
        t_infer = time.perf_counter() - t0
        records = sorted(executor.records, key=lambda r: r.index)
        names = [m.name for m in config.models]
        data = {
            "gt": np.stack([r.gt_features for r in records]),
            "per_image": {
                m: {
                    k: np.array([r.models[m].scores[k] for r in records], dtype=np.float64)
                    for k in PER_IMAGE
                }
                for m in names
            },
            "features": {m: np.stack([r.models[m].features for r in records]) for m in names},
            "probs": {m: np.stack([r.models[m].probabilities for r in records]) for m in names},
        }
        spec = GateSpec(allowances=dict(DEFAULT_ALLOWANCES), source="benchmark")
        full = {(row.model, row.metric): row for row in compare_within_run(result, spec).rows}
        looks = SequentialGate(settings, spec, config.metrics, "original", names[1:], args.pairs).looks
        print(
            f"N = {args.pairs} synthetic pairs, {len(rungs)} rungs, one inference run ({t_infer:.0f} s); "
            f"alpha = {args.alpha}, looks after {', '.join(map(str, looks))} pairs; orders per rung: "
            f"PSNR/SSIM {args.orders}, IS/KID {args.set_orders}, FID {args.fid_orders}",
            flush=True,
        )
        print()
        print("| ladder | noise | fade | metric | full-run worsening / allowance | full-run verdict | "
              "disagreement | mean pairs | p95 pairs |")
        print("|---|---|---|---|---|---|---|---|---|")
        orders = {"psnr": args.orders, "ssim": args.orders, "kid": args.set_orders, "is": args.set_orders,
                  "fid": args.fid_orders}  # fmt: skip
        first = 0
        for ladder, (steps, keys) in LADDERS.items():
            for key in keys:
                for k, (noise, fade) in enumerate(steps, start=first):
                    rung = f"rung{k}"
                    row = full[(rung, key)]
                    worse = -row.delta if row.higher_is_better else row.delta
                    t = time.perf_counter()
                    rate, mean, p95 = simulate(data, rung, key, orders[key], settings, row.verdict)
                    print(
                        f"| {ladder} | {noise:g} | {fade:g} | {METRICS_BY_KEY[key].name} | "
                        f"{worse / row.allowance:+.2f} | {row.verdict} | {rate:.1%} | {mean:.0f} | "
                        f"{p95:.0f} |",
                        flush=True,
                    )
                    print(f"  ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
            first += len(steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
