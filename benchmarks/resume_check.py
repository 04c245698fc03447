"""What resuming by content costs: hashing each pair's four files, against evaluating the pair.

A run hashes every file it decodes (the journal keeps the hashes); a resumed run hashes the files of every
journaled pair again to find those that changed. Both are compared, in one process and one run, with the
time the stand-in models take to evaluate the same pairs (a stand-in translation is about a thousand
times cheaper than CoCosNet's, so against the real model the ratio is smaller still).

Run: ``python benchmarks/resume_check.py [N_PAIRS]`` (default 60 pairs at ADE20k's typical 512 x 683).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import evalkit
from evalkit.config import bundled_config
from evalkit.data.ade20k import pair_file_hashes, pair_files, read_pair, read_pairs
from evalkit.demo.dataset import build_synthetic_ade20k
from evalkit.demo.models import save_standins
from evalkit.execution import pipeline
from evalkit.execution.journal import PairRecord


def seconds(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    n_pairs = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = build_synthetic_ade20k(tmp_path / "data", n_pairs=n_pairs, sizes=[(512, 683), (683, 512)])
        standins = save_standins(tmp_path / "models")
        pairs = read_pairs(data.pairs)

        def evaluate() -> None:
            evalkit.evaluate(
                bundled_config("demo.yaml"),
                data_root=data.root,
                pairs=data.pairs,
                models={"original": standins.original, "converted": standins.converted},
                verifier=standins.verifier,
            )

        t_eval = seconds(evaluate, repeat=1)
        t_hash = seconds(lambda: [pair_file_hashes(data.root, p) for p in pairs])
        t_read = seconds(lambda: [read_pair(data.root, p) for p in pairs])

        # the resume check: what a resumed run does for every journaled pair before evaluating the rest
        journaled = [
            PairRecord(p.index, p.val_id, None, {}, files_sha256=pair_file_hashes(data.root, p))
            for p in pairs
        ]
        t_check = seconds(lambda: pipeline.still_valid(data.root, pairs, journaled))
        n_bytes = sum(f.stat().st_size for p in pairs for f in pair_files(data.root, p).by_role().values())

    per = 1000 / n_pairs
    print(f"{n_pairs} pairs, images 512 x 683 (ADE20k's typical size), 2 stand-in models + verifier")
    print(f"  evaluating (stand-ins, default executor): {t_eval * per:8.2f} ms/pair")
    print(f"  reading + decoding the four files:        {t_read * per:8.2f} ms/pair (hashing included)")
    kb = n_bytes / n_pairs / 1e3
    print(f"  hashing the four files:                   {t_hash * per:8.2f} ms/pair ({kb:.0f} kB a pair)")
    print(f"  SHA-256 throughput:                       {n_bytes / t_hash / 1e6:8.0f} MB/s")
    print(f"  resume check of a journaled pair:         {t_check * per:8.2f} ms/pair")
    print(f"  hashing / evaluation (stand-ins):         {t_hash / t_eval:8.1%}")
    print(f"  resume check / evaluation (stand-ins):    {t_check / t_eval:8.1%}")


if __name__ == "__main__":
    main()
