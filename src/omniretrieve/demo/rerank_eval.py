"""The demo's two splits measured end to end: raw -> calibrated -> calibrated + reranked.

Used by ``benchmarks/rerank.py`` (``benchmarks/results/rerank.json``) and the tests: each split
is indexed into a ``Store`` with the demo CLIP and its held-out queries are searched three ways.

* :func:`easy_split`: the one-object world, a query for every scene in each group, only the
  scenes held out from the demo CLIP's (and the demo reranker's) training;
* :func:`hard_split`: the two-object world (:mod:`omniretrieve.demo.hard_world`) of the held-out
  bags.

A fourth column, ``fused``, ranks the same candidates by the reranker's score fused with the
calibrated first stage's (:mod:`omniretrieve.rerank.fusion`, weight
:data:`DEMO_FIRST_STAGE_WEIGHT`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omniretrieve.calibration import DEFAULT_CALIBRATION
from omniretrieve.demo.world import DemoWorld, make_world

RERANK_TOP_N = 30
"""How many calibrated hits the reranker reads per query in the demo and ``benchmarks/rerank.py``."""

DEMO_FIRST_STAGE_WEIGHT = 0.2
"""The first stage's weight in the demo's fused column (``CrossEncoderReranker(first_stage_weight=)``).

Chosen from the sweep ``benchmarks/rerank.py`` records (``fusion_sweep``) on the same held-out
queries (there is no separate validation split); every weight from 0.1 to 0.4 passes both
splits' checks there."""

if TYPE_CHECKING:
    from omniretrieve.evaluation import JudgedQueries, JudgedRun
    from omniretrieve.rerank import Reranker
    from omniretrieve.store import Store


def easy_split(seed: int = 0) -> DemoWorld:
    """The easy world's held-out queries: every held-out scene asked once per query group."""
    world = make_world(seed, n_text_queries=120, n_text_to_image_queries=120, n_image_queries=120)
    kept = tuple(q for q in world.queries if world.is_heldout(q.scene))
    return DemoWorld(world.seed, world.docs, kept, world.train_scenes, world.heldout_scenes)


def hard_split(seed: int = 0) -> DemoWorld:
    """The hard world of the held-out bags (:func:`~omniretrieve.demo.hard_world.make_hard_world`)."""
    from omniretrieve.demo.hard_world import make_hard_world

    return make_hard_world(seed)


def open_indexed(world: DemoWorld, folder: Path) -> Store:
    """A store at ``folder`` holding ``world``'s corpus, embedded by the demo CLIP (close it after)."""
    from omniretrieve.demo.evaluation import index_demo_world
    from omniretrieve.embedding import load_embedder
    from omniretrieve.store import Store

    store = Store(load_embedder("demo"), path=folder, copy_media=True)
    index_demo_world(store, world)
    return store


def three_runs(
    store: Store, judged: JudgedQueries, reranker: Reranker, *, k: int = 10, rerank_top_n: int = RERANK_TOP_N
) -> dict[str, dict[str, list[str]]]:
    """The runs of raw cosine, the default calibration, and that calibration + ``reranker``."""
    from omniretrieve.evaluation import embed_judged_queries, run_judged_queries

    vectors = embed_judged_queries(store, judged)
    return {
        "raw": run_judged_queries(store, judged, calibration="none", k=k, query_vectors=vectors).run,
        "calibrated": run_judged_queries(
            store, judged, calibration=DEFAULT_CALIBRATION, k=k, query_vectors=vectors
        ).run,
        "reranked": run_judged_queries(
            store, judged, calibration=DEFAULT_CALIBRATION, k=k, reranker=reranker, rerank_top_n=rerank_top_n
        ).run,
    }


def fused_runs(
    store: Store,
    judged: JudgedQueries,
    reranker: Any,
    weights: Sequence[float],
    *,
    k: int = 10,
    rerank_top_n: int = RERANK_TOP_N,
    only: Collection[str] | None = None,
) -> dict[float, JudgedRun]:
    """The calibrated top ``rerank_top_n`` of each query reordered by fused scores, one run per weight.

    ``reranker`` is a :class:`~omniretrieve.rerank.CrossEncoderReranker`; each candidate list is
    scored once and fused at every weight (:func:`~omniretrieve.rerank.fusion.fuse_scores`, the
    same scores ``CrossEncoderReranker(first_stage_weight=w).rerank(..., first_stage_scores=...)``
    returns); the hits carry the fused score as ``rerank_score``.
    """
    from omniretrieve.evaluation import JudgedRun, run_judged_queries
    from omniretrieve.rerank.fusion import fuse_scores

    first = run_judged_queries(store, judged, calibration=DEFAULT_CALIBRATION, k=rerank_top_n, only=only)
    out = {w: JudgedRun({}, {}) for w in weights}
    by_id = {q.id: q for q in judged.queries}
    for qid, hits in first.hits.items():
        results = reranker.rerank(by_id[qid].item, [h.document.to_item() for h in hits])
        scores = [float("-inf")] * len(hits)
        for r in results:
            scores[r.index] = r.score
        for w in weights:
            fused = fuse_scores([h.score for h in hits], scores, w)
            order = sorted(range(len(hits)), key=lambda i: (-fused[i], i))[:k]
            out[w].hits[qid] = [replace(hits[i], rerank_score=fused[i]) for i in order]
            out[w].run[qid] = [judged.name_of(hits[i]) for i in order]
    return out


def measure_split(
    world: DemoWorld,
    reranker: Reranker,
    folder: Path,
    *,
    k: int = 10,
    rerank_top_n: int = RERANK_TOP_N,
    first_stage_weight: float = DEMO_FIRST_STAGE_WEIGHT,
    sweep: Sequence[float] = (),
) -> dict[str, Any]:
    """nDCG@k of raw, calibrated, reranked and fused search over ``world``'s queries, overall and per group.

    Returns:
        ``{"raw_ndcg@10", "calibrated_ndcg@10", "reranked_ndcg@10", "fused_ndcg@10", "queries",
        "groups": {group: {column: nDCG}}, "fusion_sweep": {weight: nDCG}}`` (the key names carry
        ``k``; ``fusion_sweep`` only with ``sweep``).
    """
    from omniretrieve.demo.evaluation import demo_judged_queries
    from omniretrieve.evaluation import evaluate, evaluate_by_group

    judged = demo_judged_queries(world)
    store = open_indexed(world, folder)
    weights = sorted({first_stage_weight, *sweep})
    try:
        runs = three_runs(store, judged, reranker, k=k, rerank_top_n=rerank_top_n)
        fused = fused_runs(store, judged, reranker, weights, k=k, rerank_top_n=rerank_top_n)
    finally:
        store.close()
    runs["fused"] = fused[first_stage_weight].run
    by_column = {column: evaluate_by_group(judged, run, k) for column, run in runs.items()}
    metric = f"ndcg@{k}"
    result: dict[str, Any] = {f"{c}_{metric}": round(by_column[c]["all"][metric], 4) for c in runs}
    result["queries"] = len(judged.queries)
    result["groups"] = {
        group: {c: round(by_column[c][group][metric], 4) for c in runs}
        for group in by_column["raw"]
        if group != "all"
    }
    if sweep:
        qrels = {q.id: judged.qrels.get(q.id, {}) for q in judged.queries}
        result["fusion_sweep"] = {
            str(w): round(evaluate(found.run, qrels, k)[metric], 4) for w, found in fused.items()
        }
    return result


def rerank_latency(
    world: DemoWorld,
    reranker: Reranker,
    folder: Path,
    sizes: Sequence[int] = (10, 30, 100),
    queries: int = 12,
) -> dict[str, float]:
    """Median milliseconds per query to rerank the first ``n`` calibrated hits, for each ``n`` in ``sizes``.

    Only the reranker is timed (candidates already in memory); the first call warms the model up.
    """
    from omniretrieve.types import Image

    store = open_indexed(world, folder)
    try:
        asked = [q for q in world.queries if q.target == "mixed"][:queries]
        lists = {q.id: [h.id for h in store.search(q.text or "", max(sizes))] for q in asked}
    finally:
        store.close()
    by_id = {d.id: d for d in world.docs}

    def item(doc_id: str) -> Any:
        doc = by_id[doc_id]
        return Image(doc.image) if doc.image is not None else doc.text

    reranker.rerank(asked[0].text or "", [item(i) for i in lists[asked[0].id][:10]])  # warm-up
    out: dict[str, float] = {}
    for n in sizes:
        times = []
        for q in asked:
            candidates = [item(i) for i in lists[q.id][:n]]
            started = time.perf_counter()
            reranker.rerank(q.text or "", candidates)
            times.append((time.perf_counter() - started) * 1000.0)
        out[f"top{n}"] = round(statistics.median(times), 1)
    return out


def pair_accuracy(reranker: Reranker, render_seed: int = 7) -> dict[str, Any]:
    """How often the reranker scores a held-out hard scene's picture above each of two confusers.

    For every scene of the held-out bags, query text template 0 against four pictures: the scene,
    its colours swapped between the two shapes, its two objects swapped between the places, and
    the same objects in the other layout (above/below instead of left/right, or back). 0.5 is
    chance: above it the reranker reads binding (colours), the order of a relation (places), or
    its axis (layout).

    Returns:
        ``{"scenes", "colors_swapped", "sides_swapped", "other_layout"}`` (fractions of scenes won).
    """
    from omniretrieve.demo.hard_world import Obj, PairScene, bag_scenes, split_bags
    from omniretrieve.types import Image

    wins = {"colors_swapped": 0, "sides_swapped": 0, "other_layout": 0}
    flip = {"horizontal": "vertical", "vertical": "horizontal"}
    scenes = [s for bag in split_bags()[1] for s in bag_scenes(bag)]
    for s in scenes:
        confusers = {
            "colors_swapped": PairScene(
                Obj(s.second.color, s.first.shape), Obj(s.first.color, s.second.shape), s.layout
            ),
            "sides_swapped": PairScene(s.second, s.first, s.layout),
            "other_layout": PairScene(s.first, s.second, flip[s.layout]),  # type: ignore[arg-type]
        }
        pictures = [Image(x.render(64, seed=render_seed)) for x in (s, *confusers.values())]
        scores = {r.index: r.score for r in reranker.rerank(s.query_text(0), pictures)}
        for i, name in enumerate(confusers, start=1):
            wins[name] += scores[0] > scores[i]
    return {"scenes": len(scenes)} | {name: round(won / len(scenes), 3) for name, won in wins.items()}


__all__ = [
    "DEMO_FIRST_STAGE_WEIGHT",
    "RERANK_TOP_N",
    "easy_split",
    "fused_runs",
    "hard_split",
    "measure_split",
    "open_indexed",
    "pair_accuracy",
    "rerank_latency",
    "three_runs",
]
