"""Retrieval metrics over ranked lists with graded judgments: recall@k, MRR@k, nDCG@k (``trec_eval``'s).

See :mod:`omniretrieve.evaluation` for the definitions and an example.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from omniretrieve.errors import InvalidInputError

Run = Mapping[str, Sequence[str]]
"""Query id -> ranked document ids, best first."""

Qrels = Mapping[str, Mapping[str, int]]
"""Query id -> {document id: grade}; grade > 0 means relevant."""


def check_k(k: int) -> None:
    """Raise :class:`InvalidInputError` unless ``k`` is a positive int."""
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
    check_k(k)
    relevant = _relevant(judgments)
    if not relevant:
        return 0.0
    return sum(1 for d in _dedupe(ranked, k) if d in relevant) / len(relevant)


def reciprocal_rank(ranked: Sequence[str], judgments: Mapping[str, int], k: int = 10) -> float:
    """``1 / rank`` of the first relevant document in the top ``k``, or 0."""
    check_k(k)
    relevant = _relevant(judgments)
    for rank, d in enumerate(_dedupe(ranked, k), start=1):
        if d in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked: Sequence[str], judgments: Mapping[str, int], k: int = 10) -> float:
    """Normalised discounted cumulative gain at ``k`` (linear gain = grade; 0 when none is relevant)."""
    check_k(k)
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
    check_k(k)
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


__all__ = ["Qrels", "Run", "check_k", "evaluate", "ndcg_at_k", "per_query", "recall_at_k", "reciprocal_rank"]
