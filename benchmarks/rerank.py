"""The second stage, measured: the demo reranker on the easy and the hard demo worlds, and its cost.

For each split, the held-out (test) queries are searched through an omniretrieve ``Store`` holding
the split's corpus (the shipped demo CLIP, embedded Chroma): raw cosine, calibrated (the default
calibration), calibrated + reranked (``reranked``: the shipped pipeline, ``Store.search`` with
``load_reranker("demo")`` over the first ``RERANK_TOP_N`` calibrated hits, its scores fused with the
calibrated ones at the shipped ``first_stage_weight``), and the reranker alone over the same
candidates (``reranker_alone``, ``first_stage_weight=0.0``). nDCG@10 per column, per query group
and over all.

The shipped weight was chosen when the reranker was trained, on validation scenes and bags that
are neither trained on nor tested here (``omniretrieve.demo.rerank_eval.validate_fusion``); the
report copies that choice and its validation figures (``validation``) from the reranker's
``omniretrieve_reranker.json``. ``fusion_sweep_diagnostic`` gives the test queries' nDCG@10 at
other weights, for information only: it was NOT used to choose the weight.

* easy: ``make_world(seed=0)`` with a query for every scene in each group, only the queries of the
  scenes held out from the demo CLIP's training (which the reranker never saw either);
* hard: ``make_hard_world(seed=0)``: the held-out bags (two-object scenes never seen in training).

Pairs (``hard_pairs``): on every held-out hard scene, how often the reranker alone scores the
right picture above its colours-swapped, its sides-swapped and its other-layout confuser (0.5 is
chance): whether it reads binding, the order of a relation, its axis.

The reranker's training recipe was itself chosen among a few candidates on validation only
(``recipe``, and ``recipe_selection`` in its ``omniretrieve_reranker.json`` and model card); these
test queries were measured for the chosen recipe only.

Latency: rerank time per query (the reranker alone, CPU, ``torch`` threads = 2) for the top 10,
30 and 100 candidates of hard text -> mixed queries, median over the queries.

Run: ``HF_HUB_OFFLINE=1 python benchmarks/rerank.py`` (writes ``benchmarks/results/rerank.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import machine, write_report  # noqa: E402

RERANK_TOP_N = 30
"""How many calibrated hits the reranker reads per query."""

FUSION_SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Weights of the test-set diagnostic sweep (not used to choose the shipped weight)."""
HISTORY = (
    "These test queries were measured before, for the recipe then chosen (binding-lists-balanced) "
    "with fusion on the reranker's sigmoid scores: hard 0.2688 -> 0.3403, short of +0.10, below "
    "the reranker alone (0.4421). Fusion was then moved to the reranker's logits (the sigmoid packs "
    "the candidates a model is sure of into a sliver near 1), a change of method made knowing that "
    "test result; the recipe and the weight were chosen again on validation only, by the same rules "
    "(see validation and the reranker card's recipe selection)."
)
"""What this benchmark's test queries have seen before: disclosed in the report (``history``)."""
LATENCY_SIZES = (10, 30, 100)
LATENCY_QUERIES = 12


def _checks(splits: dict[str, Any]) -> dict[str, bool]:
    """The issue's checks, on the shipped pipeline (``reranked``)."""
    hard, easy = splits["hard"], splits["easy"]
    return {
        "hard: calibrated nDCG@10 <= 0.85": hard["calibrated_ndcg@10"] <= 0.85,
        "hard: reranked >= calibrated + 0.10": hard["reranked_ndcg@10"] >= hard["calibrated_ndcg@10"] + 0.10,
        "easy: reranked >= calibrated - 0.01": easy["reranked_ndcg@10"] >= easy["calibrated_ndcg@10"] - 0.01,
    }


def _validation(folder: Path, weight: float) -> dict[str, Any]:
    """The weight's choice on validation, as the reranker's training recorded it."""
    from omniretrieve.rerank.loading import RERANKER_SETTINGS_FILE

    meta = json.loads((folder / RERANKER_SETTINGS_FILE).read_text(encoding="utf-8"))
    validation = meta.get("validation")
    if not validation or validation.get("first_stage_weight") != weight:
        raise SystemExit(f"{folder}: the shipped weight {weight} was not chosen on validation; retrain it")
    keep = ("rule", "grid", "seed", "chosen", "mean_ndcg@10", "splits", "pairs")
    return {
        "source": f"{RERANKER_SETTINGS_FILE} (python -m omniretrieve.demo.train_reranker)",
        "recipe": meta.get("recipe"),
    } | {k: validation[k] for k in keep if k in validation}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "rerank.json"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)

    import torch

    from omniretrieve.calibration import DEFAULT_CALIBRATION
    from omniretrieve.demo.loading import reranker_path
    from omniretrieve.demo.rerank_eval import (
        easy_split,
        hard_split,
        measure_split,
        pair_accuracy,
        rerank_latency,
    )
    from omniretrieve.rerank import load_reranker

    torch.set_num_threads(args.threads)
    reranker = load_reranker("demo")  # as shipped: fused at the weight chosen on validation
    weight = reranker.first_stage_weight
    validation = _validation(reranker_path(), weight)
    splits: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, world in (("easy", easy_split()), ("hard", hard_split())):
            splits[name] = measure_split(
                world, reranker, Path(tmp) / name, rerank_top_n=RERANK_TOP_N, sweep=FUSION_SWEEP
            )
            print(name, {k: v for k, v in splits[name].items() if k != "groups"}, flush=True)
        latency = rerank_latency(
            hard_split(), reranker, Path(tmp) / "latency", LATENCY_SIZES, LATENCY_QUERIES
        )
    pairs = pair_accuracy(reranker)
    print({"hard_pairs": pairs}, flush=True)
    checks = _checks(splits)
    report = {
        "benchmark": "rerank",
        "command": "HF_HUB_OFFLINE=1 python benchmarks/rerank.py",
        "machine": machine(),
        "torch_threads": args.threads,
        "embedder": "demo",
        "reranker": reranker.model_id,
        "calibration": DEFAULT_CALIBRATION,
        "rerank_top_n": RERANK_TOP_N,
        "first_stage_weight": weight,
        "first_stage_weight_chosen_on": "validation (see 'validation'); never on these test queries",
        "validation": validation,
        "history": HISTORY,
        "fusion_sweep_diagnostic": "splits.*.fusion_sweep_diagnostic: test-query nDCG@10 at other "
        "weights, for information only; NOT used to choose first_stage_weight",
        "splits": splits,
        "hard_pairs": pairs,
        "latency_ms": latency,
        "checks": checks,
    }
    write_report(args.out, report)
    print({"latency_ms": latency, "checks": checks})
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"{time.perf_counter() - started:.1f} s")
    raise SystemExit(code)
