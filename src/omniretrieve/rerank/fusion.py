"""Score fusion: interpolate the first stage's scores with a reranker's (min-max normalised per list).

A reranker's scores are fused on their own unbounded scale (a cross-encoder's logits,
:meth:`~omniretrieve.rerank.CrossEncoderReranker.raw_scores`), not squashed into [0, 1]: a
sigmoid packs the candidates a model is sure of into a sliver near 1, and min-max over a list that
also holds sure negatives then leaves the reranker's order among them almost no weight.

A reranker trained on little data can be sure where the first stage is unsure (two-object scenes
a bag-of-words bi-encoder confuses) and unsure where the first stage is sure (one-object scenes it
solves). A weighted sum of both scores, each min-max normalised over the candidate list, lets
each stage decide where it separates the candidates most: the first stage's large score gaps
survive normalisation, its near ties are broken by the reranker. This is the linear combination
with a ``minmax`` normaliser that hybrid search engines offer (e.g. Elasticsearch's linear
retriever, Pyserini's hybrid runs), applied to the two stages of one pipeline.

Use it through :class:`~omniretrieve.rerank.CrossEncoderReranker` (``first_stage_weight=`` and
``rerank(..., first_stage_scores=...)``) or directly with :func:`fuse_scores`. Measured on the
demo worlds in ``benchmarks/results/rerank.json`` (``fused`` columns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from omniretrieve.errors import InvalidInputError
from omniretrieve.rerank.protocol import RerankResult

if TYPE_CHECKING:
    from omniretrieve.rerank.protocol import Reranker


def check_weight(first_stage_weight: float) -> float:
    """``first_stage_weight`` as a float in [0, 1].

    Raises:
        InvalidInputError: it is not a finite number in [0, 1].
    """
    if isinstance(first_stage_weight, bool) or not isinstance(first_stage_weight, (int, float)):
        raise InvalidInputError(f"first_stage_weight={first_stage_weight!r}", "must be a number in [0, 1]")
    weight = float(first_stage_weight)
    if not (math.isfinite(weight) and 0.0 <= weight <= 1.0):
        raise InvalidInputError(f"first_stage_weight={first_stage_weight!r}", "must be a number in [0, 1]")
    return weight


def minmax(values: Sequence[float]) -> list[float]:
    """``values`` scaled to [0, 1] over the finite ones (all 0 when they are equal; -inf stays -inf)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return [float("-inf")] * len(values)
    low, high = min(finite), max(finite)
    span = high - low
    return [((v - low) / span if span > 0 else 0.0) if math.isfinite(v) else float("-inf") for v in values]


def fuse_scores(
    first_stage_scores: Sequence[float], rerank_scores: Sequence[float], first_stage_weight: float
) -> list[float]:
    """``w * minmax(first_stage) + (1 - w) * minmax(rerank)`` per candidate (``w`` = ``first_stage_weight``).

    A candidate the reranker did not score (``-inf``) stays ``-inf``; ``w = 0`` keeps the
    reranker's order, ``w = 1`` the first stage's.

    Raises:
        InvalidInputError: the two lists differ in length, or the weight is outside [0, 1].
    """
    weight = check_weight(first_stage_weight)
    if len(first_stage_scores) != len(rerank_scores):
        raise InvalidInputError(
            "first_stage_scores",
            f"{len(first_stage_scores)} scores for {len(rerank_scores)} candidates; give one per candidate",
        )
    first = minmax([float(s) for s in first_stage_scores])
    second = minmax([float(s) for s in rerank_scores])
    fused: list[float] = []
    for a, b in zip(first, second, strict=True):
        if not math.isfinite(b):
            fused.append(float("-inf"))
        else:
            fused.append(weight * (a if math.isfinite(a) else 0.0) + (1.0 - weight) * b)
    return fused


def fuse_results(
    results: Sequence[RerankResult], first_stage_scores: Sequence[float], first_stage_weight: float
) -> list[RerankResult]:
    """``results`` with the scored ones' scores fused (:func:`fuse_scores`) with ``first_stage_scores``.

    ``first_stage_scores`` holds one score per candidate of the reranked list (a result's
    ``index`` points into it); unscored results are kept, unchanged, after the scored ones.
    """
    scored = [r for r in results if r.ok]
    fused = fuse_scores(
        [float(first_stage_scores[r.index]) for r in scored], [r.score for r in scored], first_stage_weight
    )
    return [RerankResult(r.index, f) for r, f in zip(scored, fused, strict=True)] + [
        r for r in results if not r.ok
    ]


def rerank_candidates(
    reranker: Reranker,
    query: Any,
    candidates: Sequence[Any],
    first_stage_scores: Sequence[float | None] | None = None,
    *,
    top_n: int | None = None,
) -> list[RerankResult]:
    """``reranker.rerank(query, candidates)``, given the first stage's scores when it fuses with them.

    The one rule ``Store.search`` and the framework adapters share: a reranker whose
    ``first_stage_weight`` is above 0 gets ``first_stage_scores=`` when every candidate has a
    score; otherwise (a score missing, none given, a reranker that does not fuse) it ranks alone.

    Args:
        reranker: Any :class:`~omniretrieve.rerank.Reranker`.
        query: The query item.
        candidates: The candidates, in first-stage order.
        first_stage_scores: One first-stage score per candidate (``None`` where unknown), or ``None``.
        top_n: Keep the first ``top_n`` results.
    """
    fuses = getattr(reranker, "first_stage_weight", 0) or 0
    if first_stage_scores is not None and fuses > 0 and all(s is not None for s in first_stage_scores):
        scores = [float(s) for s in first_stage_scores if s is not None]
        return reranker.rerank(query, candidates, top_n=top_n, first_stage_scores=scores)  # type: ignore[call-arg]
    return reranker.rerank(query, candidates, top_n=top_n)


__all__ = ["check_weight", "fuse_results", "fuse_scores", "minmax", "rerank_candidates"]
