"""Measuring retrieval quality over one mixed ranked list: recall@k, MRR and nDCG@k with graded judgments.

A *run* maps each query id to its ranked list of document ids (best first); *qrels* map each query
id to ``{document id: grade}`` with grade > 0 for relevant documents (documents left out are not
relevant). The definitions (those of ``trec_eval``):

* ``recall@k``: relevant documents in the top ``k`` / all relevant documents of the query;
* ``mrr@k``: ``1 / rank`` of the first relevant document in the top ``k`` (0 if none);
* ``ndcg@k``: ``DCG@k / IDCG@k`` with linear gain ``grade`` and discount ``1 / log2(rank + 1)``;
  IDCG is the DCG of the judged documents in the best order.

Queries with no relevant document are left out of the means (nothing can be found for them); a
query of the qrels missing from the run counts as found nothing (scores 0). A document id
repeated in a ranked list counts once, at its first rank.

Example::

    from omniretrieve.evaluation import evaluate

    run = {"q1": ["d3", "d1", "d7"]}
    qrels = {"q1": {"d1": 2, "d9": 1}}
    evaluate(run, qrels, k=10)   # {"ndcg@10": 0.4797..., "recall@10": 0.5, "mrr@10": 0.5}

:func:`evaluate_demo` runs the demo world's queries (:mod:`omniretrieve.demo.world`) through a
store and reports these metrics per query group and calibration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from omniretrieve.calibration import CALIBRATIONS, Calibration, check_calibration
from omniretrieve.errors import InvalidInputError

if TYPE_CHECKING:
    from omniretrieve.demo.world import DemoWorld
    from omniretrieve.store import Store, WriteResult

Run = Mapping[str, Sequence[str]]
"""Query id -> ranked document ids, best first."""

Qrels = Mapping[str, Mapping[str, int]]
"""Query id -> {document id: grade}; grade > 0 means relevant."""

DEMO_GROUPS: dict[str, tuple[str, str]] = {
    "text->mixed": ("text", "mixed"),
    "text->image": ("text", "image"),
    "image->image": ("image", "image"),
}
"""The demo world's query groups: name -> (query modality, target)."""


def _check_k(k: int) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"k={k!r}", "must be a positive int")


def _dedupe(ranked: Sequence[str], k: int) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            out.append(doc_id)
        if len(out) == k:
            break
    return out


def _relevant(judgments: Mapping[str, int]) -> dict[str, int]:
    return {d: int(g) for d, g in judgments.items() if g > 0}


def recall_at_k(ranked: Sequence[str], judgments: Mapping[str, int], k: int = 10) -> float:
    """Fraction of the relevant documents found in the top ``k`` (0 when none is relevant)."""
    _check_k(k)
    relevant = _relevant(judgments)
    if not relevant:
        return 0.0
    return sum(1 for d in _dedupe(ranked, k) if d in relevant) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], judgments: Mapping[str, int], k: int = 10) -> float:
    """``1 / rank`` of the first relevant document in the top ``k``, or 0."""
    _check_k(k)
    relevant = _relevant(judgments)
    for rank, d in enumerate(_dedupe(ranked, k), start=1):
        if d in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], judgments: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain at ``k`` (linear gain = grade; 0 when none is relevant)."""
    _check_k(k)
    relevant = _relevant(judgments)
    if not relevant:
        return 0.0
    dcg = sum(relevant.get(d, 0) / math.log2(rank + 1) for rank, d in enumerate(_dedupe(ranked, k), start=1))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(ideal, start=1))
    return dcg / idcg


def per_query(run: Run, qrels: Qrels, k: int = 10) -> dict[str, dict[str, float]]:
    """Each metric for each query of ``qrels`` that has a relevant document.

    Returns:
        ``{query id: {"ndcg@k": ..., "recall@k": ..., "mrr@k": ...}}``.
    """
    _check_k(k)
    out: dict[str, dict[str, float]] = {}
    for qid, judgments in qrels.items():
        if not _relevant(judgments):
            continue
        ranked = list(run.get(qid, ()))
        out[qid] = {
            f"ndcg@{k}": ndcg_at_k(ranked, judgments, k),
            f"recall@{k}": recall_at_k(ranked, judgments, k),
            f"mrr@{k}": reciprocal_rank(ranked, judgments, k),
        }
    return out


def evaluate(run: Run, qrels: Qrels, k: int = 10) -> dict[str, float]:
    """Mean nDCG@k, recall@k and MRR@k over the queries of ``qrels`` with a relevant document.

    Returns:
        ``{"ndcg@k": ..., "recall@k": ..., "mrr@k": ...}``; all 0.0 when no query counts.
    """
    scores = per_query(run, qrels, k)
    names = (f"ndcg@{k}", f"recall@{k}", f"mrr@{k}")
    if not scores:
        return dict.fromkeys(names, 0.0)
    return {name: sum(s[name] for s in scores.values()) / len(scores) for name in names}


# ---------------------------------------------------------------------------------------------
# The demo world
# ---------------------------------------------------------------------------------------------


def index_demo_world(store: Store, world: DemoWorld, *, batch_size: int = 64) -> list[WriteResult]:
    """Add the demo world's corpus to a store, under the world's document ids.

    Metadata: ``{"scene": "red-circle-top_left" | "none", "role": "caption" | "image" | "distractor"}``.
    """
    from omniretrieve.types import Image

    items: list[Any] = []
    ids: list[str | None] = []
    metas: list[Mapping[str, Any] | None] = []
    for d in world.docs:
        items.append(Image(d.image) if d.image is not None else d.text)
        ids.append(d.id)
        role = "image" if d.image is not None else ("caption" if d.scene is not None else "distractor")
        metas.append({"scene": d.scene.key if d.scene is not None else "none", "role": role})
    return store.upsert(items, ids=ids, metadatas=metas, batch_size=batch_size)


def demo_qrels(world: DemoWorld, group: str | None = None) -> dict[str, dict[str, int]]:
    """The world's judgments, for one query group of :data:`DEMO_GROUPS` or all."""
    return {q.id: dict(q.judgments) for q in _demo_queries(world, group)}


def _demo_queries(world: DemoWorld, group: str | None) -> list[Any]:
    if group is None:
        return list(world.queries)
    if group not in DEMO_GROUPS:
        raise InvalidInputError(f"group={group!r}", f"must be one of {list(DEMO_GROUPS)}")
    modality, target = DEMO_GROUPS[group]
    return [q for q in world.queries if q.modality == modality and q.target == target]


def demo_run(
    store: Store, world: DemoWorld, *, calibration: Calibration = "gap", k: int = 10, group: str | None = None
) -> dict[str, list[str]]:
    """Search every demo query (of one group, or all) and return the ranked ids (a run).

    Queries with target ``"image"`` search the image documents only; ``"mixed"`` the whole store.
    """
    from omniretrieve.types import Image

    check_calibration(calibration)
    run: dict[str, list[str]] = {}
    for q in _demo_queries(world, group):
        query = Image(q.image) if q.image is not None else q.text
        modalities = None if q.target == "mixed" else (q.target,)
        hits = store.search(query, k, calibration=calibration, modalities=modalities)
        run[q.id] = [h.id for h in hits]
    return run


def evaluate_demo(
    store: Store,
    world: DemoWorld,
    *,
    calibrations: Sequence[Calibration] = CALIBRATIONS,
    groups: Sequence[str] = tuple(DEMO_GROUPS),
    k: int = 10,
) -> dict[str, dict[str, dict[str, float]]]:
    """Metrics of the demo world's queries through a store that holds its corpus.

    Index the corpus first with :func:`index_demo_world`.

    Returns:
        ``{calibration: {group: {"ndcg@k", "recall@k", "mrr@k"}}}``.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for calibration in calibrations:
        out[calibration] = {}
        for group in groups:
            run = demo_run(store, world, calibration=calibration, k=k, group=group)
            out[calibration][group] = evaluate(run, demo_qrels(world, group), k)
    return out


__all__ = [
    "DEMO_GROUPS",
    "Qrels",
    "Run",
    "demo_qrels",
    "demo_run",
    "evaluate",
    "evaluate_demo",
    "index_demo_world",
    "ndcg_at_k",
    "per_query",
    "recall_at_k",
    "reciprocal_rank",
]
