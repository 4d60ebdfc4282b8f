"""The metrics: recall@k, MRR@k and nDCG@k with graded judgments (trec_eval's definitions)."""

from __future__ import annotations

import math

import pytest

from omniretrieve.errors import InvalidInputError
from omniretrieve.evaluation import (
    evaluate,
    ndcg_at_k,
    per_query,
    recall_at_k,
    reciprocal_rank,
)

LOG3 = math.log2(3)


def test_recall() -> None:
    judgments = {"a": 2, "b": 1, "c": 1, "z": 0}
    assert recall_at_k(["a", "x", "b"], judgments, k=10) == pytest.approx(2 / 3)
    assert recall_at_k(["x", "a", "b"], judgments, k=1) == 0.0
    assert recall_at_k(["a", "a", "b"], judgments, k=2) == pytest.approx(2 / 3)  # repeats count once
    assert recall_at_k(["z"], {"z": 0}, k=10) == 0.0  # nothing relevant


def test_reciprocal_rank() -> None:
    judgments = {"b": 1}
    assert reciprocal_rank(["a", "b"], judgments) == 0.5
    assert reciprocal_rank(["a", "c", "b"], judgments, k=2) == 0.0
    assert reciprocal_rank([], judgments) == 0.0


def test_ndcg_graded() -> None:
    judgments = {"d1": 2, "d9": 1}
    # d1 (grade 2) at rank 2; ideal: d1 then d9
    expected = (2 / LOG3) / (2 / 1 + 1 / LOG3)
    assert ndcg_at_k(["d3", "d1", "d7"], judgments, k=10) == pytest.approx(expected)
    assert ndcg_at_k(["d1", "d9"], judgments, k=10) == pytest.approx(1.0)
    assert ndcg_at_k(["d9", "d1"], judgments, k=10) == pytest.approx((1 + 2 / LOG3) / (2 + 1 / LOG3))
    assert ndcg_at_k(["x"], judgments, k=10) == 0.0
    # k cuts both the run and the ideal list
    assert ndcg_at_k(["d1"], {"d1": 1, "d2": 1, "d3": 1}, k=1) == pytest.approx(1.0)


def test_evaluate_means_over_judged_queries() -> None:
    run = {"q1": ["d3", "d1", "d7"], "q2": ["a"], "extra": ["a"]}
    qrels = {"q1": {"d1": 2, "d9": 1}, "q2": {"a": 1}, "q3": {"b": 1}, "empty": {"c": 0}}
    result = evaluate(run, qrels, k=10)
    assert set(result) == {"ndcg@10", "recall@10", "mrr@10"}
    # q1, q2 and q3 (missing from the run: scores 0) count; "empty" has nothing relevant
    assert result["recall@10"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert result["mrr@10"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    scores = per_query(run, qrels, k=10)
    assert set(scores) == {"q1", "q2", "q3"}
    assert result["ndcg@10"] == pytest.approx(sum(s["ndcg@10"] for s in scores.values()) / 3)
    assert evaluate({}, {}, k=5) == {"ndcg@5": 0.0, "recall@5": 0.0, "mrr@5": 0.0}


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_k(k: object) -> None:
    with pytest.raises(InvalidInputError):
        evaluate({}, {}, k=k)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ndcg_at_k([], {}, k=k)  # type: ignore[arg-type]
