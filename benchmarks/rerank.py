"""The second stage, measured: the demo reranker on the easy and the hard demo worlds, and its cost.

For each split, the held-out queries are searched through an omniretrieve ``Store`` holding the
split's corpus (the shipped demo CLIP, embedded Chroma): raw cosine, calibrated (the default
calibration) and calibrated + reranked (the shipped demo reranker over the first
``RERANK_TOP_N`` calibrated hits), and fused: the same candidates by the reranker's score
fused with the calibrated score (``CrossEncoderReranker(first_stage_weight=...)``, weight
``DEMO_FIRST_STAGE_WEIGHT``; ``fusion_sweep`` gives nDCG@10 at other weights). nDCG@10 per column,
per query group and over all.

* easy: ``make_world(seed=0)`` with a query for every scene in each group, only the queries of the
  scenes held out from the demo CLIP's training (which the reranker never saw either);
* hard: ``make_hard_world(seed=0)``: the held-out bags (two-object scenes never seen in training).

Pairs (``hard_pairs``): on every held-out hard scene, how often the reranker alone scores the
right picture above its colours-swapped and its sides-swapped confuser (0.5 is chance).

Latency: rerank time per query (the reranker alone, CPU, ``torch`` threads = 2) for the top 10,
30 and 100 candidates of hard text -> mixed queries, median over the queries.

Run: ``HF_HUB_OFFLINE=1 python benchmarks/rerank.py`` (writes ``benchmarks/results/rerank.json``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine, write_report  # noqa: E402

RERANK_TOP_N = 30
"""How many calibrated hits the reranker reads per query."""

FUSION_SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
LATENCY_SIZES = (10, 30, 100)
LATENCY_QUERIES = 12


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "rerank.json"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    from omniretrieve.calibration import DEFAULT_CALIBRATION
    from omniretrieve.demo.rerank_eval import (
        DEMO_FIRST_STAGE_WEIGHT,
        easy_split,
        hard_split,
        measure_split,
        pair_accuracy,
        rerank_latency,
    )
    from omniretrieve.rerank import load_reranker

    torch.set_num_threads(args.threads)
    reranker = load_reranker("demo")
    splits: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, world in (("easy", easy_split()), ("hard", hard_split())):
            splits[name] = measure_split(
                world,
                reranker,
                Path(tmp) / name,
                rerank_top_n=RERANK_TOP_N,
                first_stage_weight=DEMO_FIRST_STAGE_WEIGHT,
                sweep=FUSION_SWEEP,
            )
            print(name, {k: v for k, v in splits[name].items() if k != "groups"}, flush=True)
        latency = rerank_latency(
            hard_split(), reranker, Path(tmp) / "latency", LATENCY_SIZES, LATENCY_QUERIES
        )
    pairs = pair_accuracy(reranker)
    print({"hard_pairs": pairs}, flush=True)
    hard, easy = splits["hard"], splits["easy"]
    checks = {"hard: calibrated nDCG@10 <= 0.85": hard["calibrated_ndcg@10"] <= 0.85}
    for column in ("reranked", "fused"):
        checks[f"hard: {column} >= calibrated + 0.10"] = (
            hard[f"{column}_ndcg@10"] >= hard["calibrated_ndcg@10"] + 0.10
        )
        checks[f"easy: {column} >= calibrated - 0.01"] = (
            easy[f"{column}_ndcg@10"] >= easy["calibrated_ndcg@10"] - 0.01
        )
    report = {
        "benchmark": "rerank",
        "command": "HF_HUB_OFFLINE=1 python benchmarks/rerank.py",
        "machine": machine(),
        "torch_threads": args.threads,
        "embedder": "demo",
        "reranker": reranker.model_id,
        "calibration": DEFAULT_CALIBRATION,
        "rerank_top_n": RERANK_TOP_N,
        "first_stage_weight": DEMO_FIRST_STAGE_WEIGHT,
        "splits": splits,
        "hard_pairs": pairs,
        "latency_ms": latency,
        "checks": checks,
    }
    write_report(args.out, report)
    print({"latency_ms": latency, "checks": checks})
    fused_pass = all(v for name, v in checks.items() if "reranked" not in name)
    return 0 if fused_pass else 1


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"{time.perf_counter() - started:.1f} s")
    raise SystemExit(code)
