"""In-process vs Dask wall time on the demo stand-ins, and the scaling model of the Dask executor.

Usage: ``python benchmarks/distributed.py [--pairs 64] [--workers 2] [--shard-size 8] [--repeats 2]
[--cache-dir DIR]``

Builds (or reuses) the stand-in models and ``--pairs`` synthetic pairs at the demo's image sizes, then on
this machine, one after the other:

* a ``LocalCluster`` of ``--workers`` single-threaded worker processes (``DaskExecutor(workers=W)``): its
  start-up and a first run (cold workers: the models compiled inside the run);
* ``--repeats`` times, alternated: the in-process run (``evalkit.execution.pipeline.run`` with its default
  executor) and a run on the same cluster (warm: models cached on
  the workers); the best of each is kept, since load from other processes hits both alike;
* the check that every run gave bit-identical metrics and per-pair values.

Then the scaling model, from measured parts: ``c`` the per-pair cost (the in-process evaluation time less
one model compilation, over N), ``merge`` the summary stage (``timings["metrics_s"]``: stacking the
records and computing PSNR/SSIM means, IS, FID, KID), ``startup`` the cluster's start (worker processes
spawned and registered, evalkit and OpenVINO imported) plus one model compilation (the workers compile in
parallel), and the expected speed-up for W workers::

    S(W) = N*c / (N*c/W + startup + merge)

which takes each worker to evaluate pairs at the in-process rate (a worker = a machine like this one). The
per-pair cost of one local single-threaded worker, ``c_w``, is measured too: with it in place of ``c`` the
model also predicts the local cluster's cold run, which is printed beside it, and the predictions for W
machines are printed both ways: ``c_w = c``, and each machine running one such worker per core.

Timings are wall times with ``time.perf_counter``; the load average is printed because other processes on
a shared machine slow every number.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from evalkit import config as cfg
from evalkit.config import bundled_config
from evalkit.demo.dataset import build_synthetic_ade20k
from evalkit.demo.models import save_standins
from evalkit.execution.distributed import DaskExecutor
from evalkit.execution.pipeline import run
from evalkit.results import RunResult
from evalkit.runtime.core import make_core
from evalkit.runtime.translator import load_translator
from evalkit.runtime.verifier import load_verifier


def demo_config(cache: Path, n_pairs: int) -> cfg.Config:
    """The demo config with the stand-ins and ``n_pairs`` synthetic pairs under ``cache``."""
    models = save_standins(cache / "models")
    data = build_synthetic_ade20k(cache / f"data-{n_pairs}", n_pairs=n_pairs)
    overrides = cfg.Overrides(
        data_root=data.root,
        pairs=data.pairs,
        models={"original": models.original, "converted": models.converted},
        verifier=models.verifier,
    )
    return replace(cfg.apply_overrides(cfg.load_config(bundled_config("demo.yaml")), overrides), output=None)


def compile_seconds(config: cfg.Config) -> float:
    """Wall time of compiling every model of ``config`` once in this process."""
    start = time.perf_counter()
    core = make_core()
    for spec in config.models:
        load_translator(core, spec, config.runtime)
    load_verifier(core, config.verifier, config.runtime)
    return time.perf_counter() - start


def import_seconds() -> float:
    """What a fresh worker process pays to import evalkit's per-pair code and OpenVINO (own interpreter)."""
    code = (
        "import time; t = time.perf_counter(); import evalkit.execution.pair, evalkit.runtime.core; "
        "print(time.perf_counter() - t)"
    )
    return float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, check=True, text=True).stdout
    )


def timed_run(config: cfg.Config, executor: DaskExecutor | None = None) -> tuple[float, RunResult]:
    """Wall time of one ``run`` and its result."""
    start = time.perf_counter()
    result = run(config, executor=executor)
    return time.perf_counter() - start, result


def identical(a: RunResult, b: RunResult) -> bool:
    """Whether two runs have the same metrics and per-pair values, bit for bit."""
    return all(
        a.models[name].metrics.to_dict() == b.models[name].metrics.to_dict()
        and a.models[name].samples == b.models[name].samples
        for name in a.models
    )


def speedup(
    n: int, c: float, workers: int, startup: float, merge: float, c_worker: float | None = None
) -> float:
    """The scaling model: ``N*c / (N*c_w/W + startup + merge)``, where ``c_w = c`` unless given.

    ``c`` is the in-process per-pair cost, ``c_w`` a worker's: equal when each worker is a machine that
    evaluates pairs as fast as the in-process run does there (the model's usual form).
    """
    c_w = c if c_worker is None else c_worker
    return n * c / (n * c_w / workers + startup + merge)


def unshadow_distributed() -> None:
    """Take this script's folder off ``sys.path``.

    Run as ``python benchmarks/distributed.py``, the script's folder comes first on ``sys.path`` and this
    file would shadow the ``distributed`` package, here and in the worker processes, which are spawned
    with the parent's ``sys.path``.
    """
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != here]


def main() -> None:
    unshadow_distributed()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pairs", type=int, default=64, help="synthetic pairs (default 64)")
    parser.add_argument("--workers", type=int, default=2, help="local Dask worker processes (default 2)")
    parser.add_argument("--shard-size", type=int, default=8, help="pairs per Dask task (default 8)")
    parser.add_argument("--repeats", type=int, default=2, help="in-process and warm Dask runs (default 2)")
    parser.add_argument(
        "--cache-dir", type=Path, help="where stand-ins and data go (default: a temporary one)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="evalkit-bench-") as tmp:
        cache = args.cache_dir or Path(tmp)
        config = demo_config(cache, args.pairs)
        n, w = args.pairs, args.workers
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) at the start")
        print(f"{n} demo pairs (stand-ins, synthetic data at the demo's sizes), 2 models + verifier")

        t_compile = compile_seconds(config)
        in_process: list[tuple[float, RunResult]] = []
        warm: list[tuple[float, RunResult]] = []
        start = time.perf_counter()
        with DaskExecutor(workers=w, shard_size=args.shard_size) as executor:
            t_cluster = time.perf_counter() - start
            wall_cold, cold = timed_run(config, executor)
            # Alternated, the best of each kept: load from other processes on a shared machine then hits
            # both executors alike. The idle workers take no CPU during the in-process runs.
            for _ in range(max(1, args.repeats)):
                in_process.append(timed_run(config))
                warm.append(timed_run(config, executor))
            stats = executor.worker_stats()
        t_import = import_seconds()
        wall_in, baseline = min(in_process, key=lambda run: run[0])
        wall_warm = min(seconds for seconds, _ in warm)
        c = (min(r.timings["evaluation_s"] for _, r in in_process) - t_compile) / n
        merge = min(r.timings["metrics_s"] for _, r in in_process)
        # Workers spawned from this script re-import it (multiprocessing's spawn), so evalkit and OpenVINO
        # are imported during the cluster's start here; from the CLI the import lands in the first task.
        startup = t_cluster + t_compile

        print()
        print(f"{'':<46}{'wall s':>9}{'pairs/s':>9}{'speed-up':>10}")
        rows = [
            ("in-process (best)", wall_in),
            (f"Dask {w} workers, cold (incl. cluster start)", t_cluster + wall_cold),
            (f"Dask {w} workers, cold run only", wall_cold),
            (f"Dask {w} workers, warm (best, models cached)", wall_warm),
        ]
        for label, seconds in rows:
            print(f"{label:<46}{seconds:9.2f}{n / seconds:9.2f}{wall_in / seconds:9.2f}x")
        every_in = ", ".join(f"{seconds:.2f}" for seconds, _ in in_process)
        every_warm = ", ".join(f"{seconds:.2f}" for seconds, _ in warm)
        print(f"every in-process run: {every_in} s; every warm Dask run: {every_warm} s")
        compilations = sorted(s["compilations"] for s in stats.values())
        print(f"model compilations per worker over all {1 + len(warm)} Dask runs: {compilations}")
        runs = [cold, *(r for _, r in warm), *(r for _, r in in_process)]
        same = all(identical(baseline, r) for r in runs)
        print(f"metrics and per-pair values bit-identical in every run, in-process and Dask: {same}")

        print()
        # a local worker's per-pair cost: the warm runs' evaluation stage (merge excluded) x W / N
        c_w = min(r.timings["evaluation_s"] for _, r in warm) * w / n
        print("scaling model  S(W) = N*c / (N*c/W + startup + merge)")
        print(f"  c (per pair, in-process)         {c * 1000:8.1f} ms")
        print(f"  merge (summary/metrics stage)    {merge * 1000:8.1f} ms  (N = {n})")
        print(f"  cluster start ({w} processes)      {t_cluster * 1000:8.1f} ms  (imports included, below)")
        print(f"    import evalkit + OpenVINO      {t_import * 1000:8.1f} ms  (fresh interpreter)")
        print(f"  model compilation (per worker)   {t_compile * 1000:8.1f} ms")
        print(f"  startup = start + compile        {startup * 1000:8.1f} ms")
        print(
            f"  cold run - best warm run         {(wall_cold - wall_warm) * 1000:8.1f} ms  (worker warm-up)"
        )
        print(
            f"  c_w, one local worker's per-pair cost  {c_w * 1000:8.1f} ms  (warm run: W x evaluation / N)"
        )
        measured = wall_in / (t_cluster + wall_cold)
        print(
            f"  W = {w} local workers: measured {measured:.2f}x (cold, cluster start included); "
            f"the model with c_w for c/W gives {speedup(n, c, w, startup, merge, c_worker=c_w):.2f}x, "
            f"with c_w = c {speedup(n, c, w, startup, merge):.2f}x"
        )
        if (os.cpu_count() or 1) <= w:
            print(
                f"  (this machine has {os.cpu_count()} cores for {w} single-threaded workers and the "
                "in-process run already keeps them busy: a local worker costs c_w = W x c or more, and "
                "only machines added as workers bring the c/W of the model)"
            )
        print(f"  load average {os.getloadavg()[0]:.2f} (1 min) at the end")
        print()
        cores = os.cpu_count() or 1
        print(f"  predicted speed-up over in-process, W machines like this one (startup {startup:.1f} s):")
        print(
            "    'c_w = c': each machine evaluates pairs as fast as the in-process run (the model as stated)"
        )
        print(f"    'measured': each machine runs {cores} single-threaded workers at the c_w measured above")
        ws = (1, 2, 4, 8, 16, 32)
        print(f"  {'N':>6}  {'':<9}" + "".join(f"{f'W={k}':>8}" for k in ws))
        for pairs in (n, 2000):
            # merge grows with N (stacking, FID/KID over N images): scaled linearly from the measured one
            m = merge * pairs / n
            for label, per_machine in (("c_w = c", c), ("measured", c_w / cores)):
                cells = "".join(f"{speedup(pairs, c, k, startup, m, c_worker=per_machine):7.1f}x" for k in ws)
                print(f"  {pairs:>6}  {label:<9}{cells}")


if __name__ == "__main__":  # LocalCluster starts worker processes with spawn: the guard is required
    main()
