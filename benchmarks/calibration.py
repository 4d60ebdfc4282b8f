"""Calibration quality and exactness on every world of ``omniretrieve.demo.worlds``, through a real Store.

For each world (an embedded mixed corpus with graded judgments), the documents are written to a
real embedded :class:`omniretrieve.store.Store` (``Store.add_vectors``, in a temporary folder), and
every query is answered by ``Store.search_vector(q, k=10, calibration=...)`` for each calibration
(``none``, ``rrf``, ``gap``, ``auto`` and the default, :data:`omniretrieve.calibration.DEFAULT_CALIBRATION`),
scored by nDCG@10. Also reported:

* ``oracle_interleave_ndcg@10``: the best merge, by the judgments, of the per-kind raw-cosine
  top-10 lists (the best any interleaving of the kinds' own rankings could do);
* ``exact_topk_agreement``: the fraction of (query, calibration) pairs whose store top 10 equals
  the brute-force reference: every stored vector (read back from the store) scored by
  :func:`omniretrieve.calibration.fuse` with the store's statistics, and for ``auto`` the choice
  made from the store's own sampling rule (:func:`omniretrieve.store._samples.sample_ids`);
* ``k_prefix_consistency``: the fraction of (query, calibration) pairs where the store's top 10 is
  the first 10 of its top 60;
* ``exact_topk_agreement_chroma_hnsw``: the same agreement with every kind fetched from Chroma's
  HNSW index (what a kind beyond :data:`omniretrieve.store._samples.EXACT_LIMIT` documents gets;
  these worlds' kinds are small enough to be searched in memory by default);
* ``cost``: per calibration, the mean and max number of vectors fetched (candidates scored) and
  of fetches per query (``Search.last_cost``);
* ``gap_statistic`` and ``auto``: :func:`omniretrieve.calibration.gap_statistic` of the store's
  samples and what ``auto`` applied;
* ``checks`` (of the default) and ``auto_checks`` (of ``auto``): the issue's bars;
* ``heldout``: whether the world was never looked at while designing a method
  (:data:`omniretrieve.demo.worlds.HELDOUT_WORLDS`).

Run: ``python benchmarks/calibration.py`` (the first run embeds the worlds and trains the
patterns model, about a minute on 2 CPU cores; later runs read the cache; writing the worlds to
stores takes about half a minute more); writes ``benchmarks/results/calibration.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _oracle import oracle_interleave
from _report import machine, write_report

from omniretrieve.calibration import (
    DEFAULT_CALIBRATION,
    Calibration,
    FusedHit,
    KindCandidates,
    auto_choice,
    cosine_scores,
    fuse,
    gap_statistic,
)
from omniretrieve.demo.worlds import HELDOUT_WORLDS, VectorWorld, make_worlds
from omniretrieve.documents import Document
from omniretrieve.evaluation import ndcg_at_k
from omniretrieve.store import Store
from omniretrieve.store._samples import SAMPLE_SIZE, sample_ids
from omniretrieve.testing.fakes import FakeEmbedder
from omniretrieve.vectors import check_vector

RESULTS = Path(__file__).resolve().parent / "results" / "calibration.json"
K = 10
K_LARGE = 60
BATCH = 2000
NOTE = (
    "The default stays 'gap' (it misses on gap-free models, whose kind means hold content, and on "
    "demo-weak-images). 'auto' ('gap' or 'none' by the store's gap statistic) meets both bars on every "
    "world but demo-weak-images: an image tower made noisy without a gap, where the image scores must be "
    "stretched (rrf, or a per-pair standardisation of the scores) to interleave; the same construction on "
    "another model (heldout2-patterns-s2-weak-images) loses by that stretching ('none' is best there). No "
    "per-pair affine standardisation measured (location and width**a, a in [0, 1], on raw or on gap scores, "
    "from the store's samples) met both bars on both worlds, so none of the store-level statistics tried "
    "tells the two apart without judgments."
)

METHODS = {"none": "none", "rrf": "rrf", "gap": "gap", "auto": "auto", "default": DEFAULT_CALIBRATION}


def write_store(store: Store, world: VectorWorld) -> None:
    """Every document of the world, with its vector, through ``Store.add_vectors``."""
    docs = [
        Document(id=i, parts=(kind,), sha256=i, text=i if kind == "text" else None)  # type: ignore[arg-type]
        for i, kind in zip(world.doc_ids, world.doc_kinds, strict=True)
    ]
    for lo in range(0, len(docs), BATCH):
        results = store.add_vectors(world.doc_vectors[lo : lo + BATCH], docs[lo : lo + BATCH])
        assert all(r.status == "added" for r in results), [r for r in results if not r.ok][:2]


class Reference:
    """Brute force over what the store holds: its stored vectors, statistics and sampling rule."""

    def __init__(self, store: Store, world: VectorWorld, kinds: Sequence[str]) -> None:
        self.stats = store.statistics()
        self.full: list[KindCandidates] = []
        samples: dict[str, np.ndarray] = {}
        for kind in kinds:
            ids = [world.doc_ids[i] for i in world.kind_rows(kind)]
            vectors = np.asarray(store.get_vectors(ids), dtype=np.float32)
            self.full.append(KindCandidates(kind, ids, vectors))
            rows = {i: n for n, i in enumerate(ids)}
            samples[kind] = vectors[[rows[i] for i in sample_ids(ids, SAMPLE_SIZE)]]
        self.statistic = gap_statistic(samples)
        self.auto: Calibration = auto_choice(self.statistic)
        self.prior_count = store.prior_count

    def top(self, q: np.ndarray, qkind: str, calibration: str, k: int = K) -> list[FusedHit]:
        query = check_vector(q).astype(np.float64)  # what the store searches with
        return fuse(
            query,
            self.full,
            k,
            calibration=calibration,  # type: ignore[arg-type]
            stats=self.stats,
            query_kind=qkind,
            query_parts=(qkind,),
            prior_count=self.prior_count,
            auto=self.auto,
        )


def measure_world(world: VectorWorld, folder: Path) -> dict[str, Any]:
    kinds = sorted(set(world.doc_kinds))
    rows = {k: world.kind_rows(k) for k in kinds}
    ids = {k: [world.doc_ids[i] for i in rows[k]] for k in kinds}
    vecs = {k: world.doc_vectors[rows[k]] for k in kinds}
    ndcg: dict[str, list[float]] = {m: [] for m in METHODS}
    costs: dict[str, list[tuple[int, int]]] = {m: [] for m in METHODS}
    agree = prefix = hnsw_agree = total = 0
    oracle: list[float] = []
    with Store(FakeEmbedder(dimension=world.doc_vectors.shape[1]), path=folder / world.name) as store:
        write_store(store, world)
        reference = Reference(store, world, kinds)
        references: dict[tuple[int, str], list[str]] = {}
        for qi, qid in enumerate(world.query_ids):
            q, qkind = world.query_vectors[qi], world.query_kinds[qi]
            judged = world.judgments[qid]
            lists = [[ids[k][i] for i in np.lexsort((ids[k], -cosine_scores(q, vecs[k])))[:K]] for k in kinds]
            oracle.append(oracle_interleave(lists, judged))
            for method, calibration in METHODS.items():
                args: dict[str, Any] = {"query_modality": qkind, "calibration": calibration}
                hits = [h.id for h in store.search_vector(q, K, **args)]
                cost = store._search.last_cost
                assert cost is not None
                costs[method].append((cost.fetched, cost.fetches))
                ndcg[method].append(ndcg_at_k(hits, judged, K))
                large = [h.id for h in store.search_vector(q, K_LARGE, **args)]
                references[(qi, method)] = [h.id for h in reference.top(q, qkind, calibration)]
                agree += hits == references[(qi, method)]
                prefix += hits == large[:K]
                total += 1
        # again with every kind fetched from Chroma's HNSW index (as for kinds beyond EXACT_LIMIT)
        store._search.samples.exact_limit = 0
        for qi in range(len(world.query_ids)):
            q, qkind = world.query_vectors[qi], world.query_kinds[qi]
            for method, calibration in METHODS.items():
                args = {"query_modality": qkind, "calibration": calibration}
                hits = [h.id for h in store.search_vector(q, K, **args)]
                hnsw_agree += hits == references[(qi, method)]
        state = store._search.samples.current(store._statistics.current())
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
        "exact_topk_agreement_chroma_hnsw": round(hnsw_agree / total, 4),
        "gap_statistic": None if state.gap_statistic is None else round(state.gap_statistic, 4),
        "auto": state.auto,
        "cost": {
            m: {
                "mean_fetched": round(float(np.mean([c[0] for c in v])), 1),
                "max_fetched": int(max(c[0] for c in v)),
                "mean_fetches": round(float(np.mean([c[1] for c in v])), 2),
            }
            for m, v in costs.items()
        },
    }


def checks(world: dict[str, Any], method: str = "default") -> dict[str, bool]:
    n = world["ndcg@10"]
    best = max(n["none"], n["rrf"], n["gap"])
    oracle = world["oracle_interleave_ndcg@10"]
    return {
        f"{method} >= max(none, rrf, gap) - 0.01": n[method] >= best - 0.01,
        f"{method} >= 0.9 x oracle": n[method] >= 0.9 * oracle,
        f"{method} >= 0.95 x oracle": n[method] >= 0.95 * oracle,
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
    with tempfile.TemporaryDirectory(prefix="omniretrieve-calibration-") as tmp:
        for world in make_worlds(args.worlds):
            result = _jsonable(measure_world(world, Path(tmp)))
            result["checks"] = checks(result)
            result["auto_checks"] = checks(result, "auto")
            worlds.append(result)
            n = result["ndcg@10"]
            cells = "  ".join(f"{m}={v:.3f}" for m, v in n.items())
            print(
                f"{world.name:24s} {cells}  oracle={result['oracle_interleave_ndcg@10']:.3f}  "
                f"agree={result['exact_topk_agreement']:.3f} prefix={result['k_prefix_consistency']:.3f} "
                f"hnsw={result['exact_topk_agreement_chroma_hnsw']:.3f}",
                flush=True,
            )
            for check, ok in {**result["checks"], **result["auto_checks"]}.items():
                if not ok and "0.95" not in check:
                    print(f"   FAIL {check}")
    report = {
        "benchmark": "calibration",
        "description": "nDCG@10 per calibration on each world (text and image queries over the mixed corpus), "
        "through Store.search_vector on a real embedded store holding the world's vectors; agreement with a "
        "brute-force reference over the stored vectors",
        "default": DEFAULT_CALIBRATION,
        "note": NOTE,
        "k": K,
        "sample_per_kind": SAMPLE_SIZE,
        "worlds": worlds,
        "seconds": round(time.perf_counter() - started, 1),
        "machine": machine(),
    }
    write_report(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
