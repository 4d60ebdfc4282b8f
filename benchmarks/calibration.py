"""Calibration quality and exactness on every world of ``omniretrieve.demo.worlds``.

For each world (an embedded mixed corpus with graded judgments) and each calibration (``none``,
``rrf``, ``gap`` and the default, :data:`omniretrieve.calibration.DEFAULT_CALIBRATION`), every query is answered by the
exact top-k search (:func:`omniretrieve.topk.top_k`) over per-kind brute-force indexes
(:class:`omniretrieve.topk.ArrayIndex`), and scored by nDCG@10. Also reported:

* ``oracle_interleave_ndcg@10``: the best merge, by the judgments, of the per-kind raw-cosine
  top-10 lists (the best any interleaving of the kinds' own rankings could do);
* ``exact_topk_agreement``: the fraction of (query, calibration) pairs whose top 10 equals the
  brute-force reference (every document scored by :func:`omniretrieve.calibration.fuse`);
* ``k_prefix_consistency``: the fraction of (query, calibration) pairs where top-10 is the first
  10 of top-60;
* ``cost``: per calibration, the mean and max number of vectors fetched (candidates scored) and
  of index fetches per query;
* ``heldout``: whether the world was added after the default was designed
  (:data:`omniretrieve.demo.worlds.HELDOUT_WORLDS`).

The default's per-pair widths (:func:`omniretrieve.calibration.pair_scales`) are computed once per
world from a fixed sample of each kind, as a store would keep them.

Run: ``python benchmarks/calibration.py`` (the first run embeds the worlds and trains the
patterns model, about a minute on 2 CPU cores; later runs read the cache); writes
``benchmarks/results/calibration.json``.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _report import machine, write_report

from omniretrieve.calibration import (
    DEFAULT_CALIBRATION,
    KindCandidates,
    ModalityStats,
    cosine_scores,
    fuse,
    pair_scales,
)
from omniretrieve.demo.worlds import HELDOUT_WORLDS, VectorWorld, make_worlds
from omniretrieve.evaluation import ndcg_at_k
from omniretrieve.topk import ArrayIndex, KindSource, TopKCost, top_k

RESULTS = Path(__file__).resolve().parent / "results" / "calibration.json"
K = 10
K_LARGE = 60
SAMPLE = 256
METHODS = {"none": "none", "rrf": "rrf", "gap": "gap", "default": DEFAULT_CALIBRATION}


def _dcg(grades: Sequence[int]) -> float:
    return sum(g / math.log2(r + 1) for r, g in enumerate(grades, start=1))


def oracle_interleave(lists: Sequence[Sequence[str]], judgments: dict[str, int], k: int = K) -> float:
    """The best nDCG@k of any interleaving of ranked lists that keeps each list's own order."""
    ideal = _dcg(sorted((g for g in judgments.values() if g > 0), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    lists = [list(x[:k]) for x in lists]

    @functools.cache
    def best(pos: tuple[int, ...]) -> float:
        rank = sum(pos) + 1
        if rank > k:
            return 0.0
        options = [0.0]
        for i, p in enumerate(pos):
            if p < len(lists[i]):
                nxt = tuple(q + 1 if j == i else q for j, q in enumerate(pos))
                options.append(judgments.get(lists[i][p], 0) / math.log2(rank + 1) + best(nxt))
        return max(options)

    return best(tuple(0 for _ in lists)) / ideal


def kind_sample(vectors: np.ndarray, n: int = SAMPLE, seed: int = 0) -> np.ndarray:
    """A fixed sample of a kind's vectors (what a store would keep per kind)."""
    rows = np.sort(np.random.default_rng([seed, len(vectors)]).permutation(len(vectors))[:n])
    return vectors[rows]


def measure_world(world: VectorWorld) -> dict[str, Any]:
    kinds = sorted(set(world.doc_kinds))
    rows = {k: world.kind_rows(k) for k in kinds}
    ids = {k: [world.doc_ids[i] for i in rows[k]] for k in kinds}
    vecs = {k: world.doc_vectors[rows[k]] for k in kinds}
    stats = ModalityStats.from_vectors(world.doc_vectors.shape[1], vecs)
    samples = {k: kind_sample(vecs[k]) for k in kinds}
    scales = pair_scales(samples, stats)
    sources = [KindSource(k, len(ids[k]), ArrayIndex(ids[k], vecs[k]).fetch, samples[k]) for k in kinds]
    full = [KindCandidates(k, ids[k], vecs[k]) for k in kinds]
    ndcg: dict[str, list[float]] = {m: [] for m in METHODS}
    costs: dict[str, list[tuple[int, int]]] = {m: [] for m in METHODS}
    agree = prefix = total = 0
    oracle: list[float] = []
    for qi, qid in enumerate(world.query_ids):
        q, qkind = world.query_vectors[qi], world.query_kinds[qi]
        judged = world.judgments[qid]
        lists = [[ids[k][i] for i in np.lexsort((ids[k], -cosine_scores(q, vecs[k])))[:K]] for k in kinds]
        oracle.append(oracle_interleave(lists, judged))
        for method, calibration in METHODS.items():
            cost = TopKCost()
            args: dict[str, Any] = {
                "calibration": calibration,
                "stats": stats,
                "query_kind": qkind,
                "scales": scales,
            }
            hits = [h.id for h in top_k(q, sources, K, cost=cost, **args)]
            costs[method].append((cost.fetched, cost.fetches))
            ndcg[method].append(ndcg_at_k(hits, judged, K))
            large = [h.id for h in top_k(q, sources, K_LARGE, **args)]
            reference = [h.id for h in fuse(q, full, K, samples=samples, query_parts=(qkind,), **args)]
            agree += hits == reference
            prefix += hits == large[:K]
            total += 1
    return {
        "name": world.name,
        "model": world.model,
        "heldout": world.name in HELDOUT_WORLDS,
        "documents": world.counts(),
        "queries": dict(zip(*np.unique(world.query_kinds, return_counts=True), strict=True)),
        "ndcg@10": {m: round(float(np.mean(v)), 4) for m, v in ndcg.items()},
        "oracle_interleave_ndcg@10": round(float(np.mean(oracle)), 4),
        "exact_topk_agreement": round(agree / total, 4),
        "k_prefix_consistency": round(prefix / total, 4),
        "scales": {f"{a}->{b}": round(w, 4) for (a, b), w in sorted(scales.items())},
        "cost": {
            m: {
                "mean_fetched": round(float(np.mean([c[0] for c in v])), 1),
                "max_fetched": int(max(c[0] for c in v)),
                "mean_fetches": round(float(np.mean([c[1] for c in v])), 2),
            }
            for m, v in costs.items()
        },
    }


def checks(world: dict[str, Any]) -> dict[str, bool]:
    n = world["ndcg@10"]
    best = max(n["none"], n["rrf"], n["gap"])
    oracle = world["oracle_interleave_ndcg@10"]
    return {
        "default >= max(none, rrf, gap) - 0.01": n["default"] >= best - 0.01,
        "default >= 0.9 x oracle": n["default"] >= 0.9 * oracle,
        "default >= 0.95 x oracle": n["default"] >= 0.95 * oracle,
        "exact and prefix-consistent": world["exact_topk_agreement"] == 1.0
        and world["k_prefix_consistency"] == 1.0,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.integer):
        return int(value)
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worlds", nargs="*", help="only these worlds")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    worlds = []
    for world in make_worlds(args.worlds):
        result = _jsonable(measure_world(world))
        result["checks"] = checks(result)
        worlds.append(result)
        n = result["ndcg@10"]
        cells = "  ".join(f"{m}={v:.3f}" for m, v in n.items())
        print(f"{world.name:24s} {cells}  oracle={result['oracle_interleave_ndcg@10']:.3f}")
        for check, ok in result["checks"].items():
            if not ok:
                print(f"   FAIL {check}")
    report = {
        "benchmark": "calibration",
        "description": "nDCG@10 per calibration on each world (text and image queries over the mixed corpus), "
        "through the exact top-k search over brute-force per-kind indexes",
        "default": DEFAULT_CALIBRATION,
        "k": K,
        "sample_per_kind": SAMPLE,
        "worlds": worlds,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    write_report(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
