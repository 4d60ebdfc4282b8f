"""The demo's two splits measured end to end: raw -> calibrated -> calibrated + reranked.

Used by ``benchmarks/rerank.py`` (``benchmarks/results/rerank.json``), by
:mod:`omniretrieve.demo.train_reranker` (the fusion weight, on validation) and the tests: each
split is indexed into a ``Store`` with the demo CLIP and its queries are searched several ways.

Test splits (the held-out queries the benchmark reports):

* :func:`easy_split`: the one-object world, a query for every scene in each group, only the
  scenes held out from the demo CLIP's (and the demo reranker's) training;
* :func:`hard_split`: the two-object world (:mod:`omniretrieve.demo.hard_world`) of the held-out
  bags.

Validation splits (what the demo reranker's fusion weight is chosen on, never the test splits):

* :func:`easy_validation_split`: the reranker's validation scenes
  (:func:`~omniretrieve.demo.world.split_reranker_scenes`: kept out of its training, but seen by
  the demo CLIP, which trained on every non-held-out scene), in a corpus without the test scenes;
* :func:`hard_validation_split`: the reranker's validation bags
  (:func:`~omniretrieve.demo.hard_world.split_reranker_bags`).

Fusion (:mod:`omniretrieve.rerank.fusion`): the reranker's score fused with the calibrated first
stage's at a weight ``w``. :func:`validate_fusion` measures the grid :data:`FUSION_GRID` on the
validation splits and :func:`choose_first_stage_weight` picks one by :data:`WEIGHT_RULE`; the
shipped demo reranker records it (``first_stage_weight`` in its ``omniretrieve_reranker.json``) and
uses it by default (``load_reranker("demo")``).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omniretrieve.calibration import DEFAULT_CALIBRATION
from omniretrieve.demo.world import DemoWorld, make_world
from omniretrieve.errors import InvalidInputError

RERANK_TOP_N = 30
"""How many calibrated hits the reranker reads per query in the demo and ``benchmarks/rerank.py``."""

VALIDATION_SEED = 1
"""The seed of the validation worlds' renders, templates and queries (the test worlds use 0)."""

FUSION_GRID: tuple[float, ...] = tuple(i / 10 for i in range(11))
"""The first-stage weights :func:`validate_fusion` measures: 0 (the reranker alone), 0.1, ..., 1
(the first stage alone)."""

WEIGHT_RULE = (
    "the weight of the grid 0, 0.1, ..., 1 with the highest mean validation nDCG@10 over the easy "
    "and the hard validation split (the mean rounded to 4 decimals); ties go to the larger "
    "first-stage weight"
)
"""How :func:`choose_first_stage_weight` picks the demo reranker's fusion weight, in words."""

if TYPE_CHECKING:
    from omniretrieve.demo.hard_world import Bag
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


def easy_validation_split(seed: int = VALIDATION_SEED) -> DemoWorld:
    """The easy world's validation queries: every validation scene asked twice per query group.

    The corpus is ``make_world(seed)``'s without the documents of the held-out (test) scenes, so
    nothing of the test split takes part; judgments are restricted to the documents kept. The
    world's ``train_scenes`` / ``heldout_scenes`` are the reranker's training / validation scenes.
    """
    from omniretrieve.demo.world import split_reranker_scenes

    train, validation, test = split_reranker_scenes()
    world = make_world(seed, n_text_queries=240, n_text_to_image_queries=240, n_image_queries=240)
    docs = tuple(d for d in world.docs if d.scene not in set(test))
    kept = {d.id for d in docs}
    asked = set(validation)
    queries = tuple(
        replace(q, judgments={d: g for d, g in q.judgments.items() if d in kept})
        for q in world.queries
        if q.scene in asked
    )
    return DemoWorld(world.seed, docs, queries, train, validation)


def hard_validation_split(seed: int = VALIDATION_SEED) -> DemoWorld:
    """The hard world of the reranker's validation bags, every scene asked once per query group."""
    from omniretrieve.demo.hard_world import bag_scenes, make_hard_world, split_reranker_bags

    bags = split_reranker_bags()[1]
    scenes = sum(len(bag_scenes(b)) for b in bags)
    return make_hard_world(seed, bags=bags, n_text_queries=scenes, n_text_to_image_queries=scenes)


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
    scored once (:meth:`~omniretrieve.rerank.CrossEncoderReranker.raw_scores`: the logits) and
    fused at every weight (:func:`~omniretrieve.rerank.fusion.fuse_scores`, the same scores
    ``CrossEncoderReranker(first_stage_weight=w).rerank(..., first_stage_scores=...)`` returns);
    the hits carry the fused score as ``rerank_score``.
    """
    from omniretrieve.evaluation import JudgedRun, run_judged_queries
    from omniretrieve.rerank.fusion import fuse_scores

    first = run_judged_queries(store, judged, calibration=DEFAULT_CALIBRATION, k=rerank_top_n, only=only)
    out = {w: JudgedRun({}, {}) for w in weights}
    by_id = {q.id: q for q in judged.queries}
    for qid, hits in first.hits.items():
        scores = reranker.raw_scores(by_id[qid].item, [h.document.to_item() for h in hits])
        for w in weights:
            fused = fuse_scores([h.score for h in hits], scores, w)
            order = sorted(range(len(hits)), key=lambda i: (-fused[i], i))[:k]
            out[w].hits[qid] = [replace(hits[i], rerank_score=fused[i]) for i in order]
            out[w].run[qid] = [judged.name_of(hits[i]) for i in order]
    return out


def _ndcg(judged: JudgedQueries, run: Mapping[str, list[str]], k: int) -> float:
    from omniretrieve.evaluation import evaluate

    qrels = {q.id: judged.qrels.get(q.id, {}) for q in judged.queries}
    return round(evaluate(dict(run), qrels, k)[f"ndcg@{k}"], 4)


def sweep_split(
    world: DemoWorld,
    reranker: Any,
    folder: Path,
    weights: Sequence[float] = FUSION_GRID,
    *,
    k: int = 10,
    rerank_top_n: int = RERANK_TOP_N,
) -> dict[str, Any]:
    """nDCG@k of the calibrated first stage, and of the fused scores at each of ``weights``.

    Returns:
        ``{"queries", "calibrated_ndcg@10", "fusion_sweep": {"0.0": nDCG, ...}}`` (keys carry ``k``).
    """
    from omniretrieve.demo.evaluation import demo_judged_queries
    from omniretrieve.evaluation import run_judged_queries

    judged = demo_judged_queries(world)
    store = open_indexed(world, folder)
    try:
        calibrated = run_judged_queries(store, judged, calibration=DEFAULT_CALIBRATION, k=k).run
        fused = fused_runs(store, judged, reranker, sorted(set(weights)), k=k, rerank_top_n=rerank_top_n)
    finally:
        store.close()
    return {
        "queries": len(judged.queries),
        f"calibrated_ndcg@{k}": _ndcg(judged, calibrated, k),
        "fusion_sweep": {str(w): _ndcg(judged, found.run, k) for w, found in fused.items()},
    }


def choose_first_stage_weight(mean_by_weight: Mapping[float, float]) -> float:
    """The weight :data:`WEIGHT_RULE` picks: the highest mean nDCG (rounded to 4 decimals), ties to the larger weight.

    Raises:
        InvalidInputError: no weight is given.
    """
    if not mean_by_weight:
        raise InvalidInputError("mean_by_weight", "give at least one weight and its mean nDCG")
    return max(mean_by_weight, key=lambda w: (round(mean_by_weight[w], 4), w))


def validate_fusion(
    reranker: Any,
    folder: Path,
    *,
    worlds: Mapping[str, DemoWorld] | None = None,
    grid: Sequence[float] = FUSION_GRID,
    k: int = 10,
    rerank_top_n: int = RERANK_TOP_N,
) -> dict[str, Any]:
    """Choose the first-stage weight on validation queries only (:data:`WEIGHT_RULE`).

    Args:
        reranker: A :class:`~omniretrieve.rerank.CrossEncoderReranker` (its own weight is not used:
            the grid is measured on its raw scores).
        folder: Where the validation stores are built (one sub-folder per split).
        worlds: The validation worlds by name; default :func:`easy_validation_split` and
            :func:`hard_validation_split`.
        grid: The weights measured.
        k: The cutoff of nDCG.
        rerank_top_n: How many calibrated hits are fused per query.

    Returns:
        ``{"rule", "grid", "splits": {name: sweep_split(...)}, "mean_ndcg@10": {"0.0": ...},
        "first_stage_weight", "chosen": {name: nDCG at the chosen weight, "mean": ...}}``.
    """
    if worlds is None:
        worlds = {"easy": easy_validation_split(), "hard": hard_validation_split()}
    splits = {
        name: sweep_split(world, reranker, Path(folder) / name, grid, k=k, rerank_top_n=rerank_top_n)
        for name, world in worlds.items()
    }
    means = {w: statistics.fmean(split["fusion_sweep"][str(w)] for split in splits.values()) for w in grid}
    weight = choose_first_stage_weight(means)
    chosen = {name: split["fusion_sweep"][str(weight)] for name, split in splits.items()}
    return {
        "rule": WEIGHT_RULE,
        "grid": [float(w) for w in grid],
        "seed": VALIDATION_SEED,
        "splits": splits,
        f"mean_ndcg@{k}": {str(w): round(m, 4) for w, m in means.items()},
        "first_stage_weight": float(weight),
        "chosen": chosen | {"mean": round(means[weight], 4)},
    }


def measure_split(
    world: DemoWorld,
    reranker: Reranker,
    folder: Path,
    *,
    k: int = 10,
    rerank_top_n: int = RERANK_TOP_N,
    sweep: Sequence[float] = (),
) -> dict[str, Any]:
    """nDCG@k of raw, calibrated, reranked and reranker-alone search over ``world``'s queries.

    ``reranked`` is ``Store.search`` with ``reranker`` as it is: for ``load_reranker("demo")``, the
    shipped pipeline (fused with the calibrated scores at its shipped weight);
    ``reranker_alone`` ranks the same candidates by the reranker's scores only; ``sweep`` adds the
    fused nDCG at other weights, for information (``fusion_sweep_diagnostic``).

    Returns:
        ``{"raw_ndcg@10", "calibrated_ndcg@10", "reranked_ndcg@10", "reranker_alone_ndcg@10",
        "first_stage_weight", "queries", "groups": {group: {column: nDCG}},
        "fusion_sweep_diagnostic": {weight: nDCG}}`` (the key names carry ``k``;
        ``fusion_sweep_diagnostic`` only with ``sweep``).
    """
    from omniretrieve.demo.evaluation import demo_judged_queries
    from omniretrieve.evaluation import evaluate_by_group

    judged = demo_judged_queries(world)
    store = open_indexed(world, folder)
    weights = sorted({0.0, *sweep})
    try:
        runs = three_runs(store, judged, reranker, k=k, rerank_top_n=rerank_top_n)
        fused = fused_runs(store, judged, reranker, weights, k=k, rerank_top_n=rerank_top_n)
    finally:
        store.close()
    runs["reranker_alone"] = fused[0.0].run
    by_column = {column: evaluate_by_group(judged, run, k) for column, run in runs.items()}
    metric = f"ndcg@{k}"
    result: dict[str, Any] = {f"{c}_{metric}": round(by_column[c]["all"][metric], 4) for c in runs}
    result["first_stage_weight"] = float(getattr(reranker, "first_stage_weight", 0.0))
    result["queries"] = len(judged.queries)
    result["groups"] = {
        group: {c: round(by_column[c][group][metric], 4) for c in runs}
        for group in by_column["raw"]
        if group != "all"
    }
    if sweep:
        result["fusion_sweep_diagnostic"] = {str(w): _ndcg(judged, fused[w].run, k) for w in weights}
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


def pair_accuracy(
    reranker: Reranker, render_seed: int = 7, bags: Sequence[Bag] | None = None
) -> dict[str, Any]:
    """How often the reranker scores a hard scene's picture above each of three confusers.

    For every scene of ``bags`` (default: the held-out (test) bags,
    :func:`~omniretrieve.demo.hard_world.split_bags`; the reranker's training records the same on
    its validation bags), query text template 0 against four pictures: the scene,
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
    scenes = [s for bag in (split_bags()[1] if bags is None else bags) for s in bag_scenes(bag)]
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


def __getattr__(name: str) -> float:
    """``DEMO_FIRST_STAGE_WEIGHT``: the shipped demo reranker's weight (read from its files when asked).

    Kept for callers that set it on a reranker; ``load_reranker("demo")`` already carries it
    (:func:`omniretrieve.rerank.loading.demo_first_stage_weight`).
    """
    if name == "DEMO_FIRST_STAGE_WEIGHT":
        from omniretrieve.rerank.loading import demo_first_stage_weight

        return demo_first_stage_weight()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "FUSION_GRID",
    "RERANK_TOP_N",
    "VALIDATION_SEED",
    "WEIGHT_RULE",
    "choose_first_stage_weight",
    "easy_split",
    "easy_validation_split",
    "fused_runs",
    "hard_split",
    "hard_validation_split",
    "measure_split",
    "open_indexed",
    "pair_accuracy",
    "rerank_latency",
    "sweep_split",
    "three_runs",
    "validate_fusion",
]
