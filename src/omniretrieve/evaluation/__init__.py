"""Measuring retrieval quality over one mixed ranked list, and the judged-query sets to measure it on.

**Metrics.** A *run* maps each query id to its ranked list of document ids (best first); *qrels*
map each query id to ``{document id: grade}`` with grade > 0 for relevant documents (documents left
out are not relevant). The definitions (those of ``trec_eval``):

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

**Judged-query sets** (:class:`JudgedQueries`): queries plus graded judgments, the files that
``omniretrieve eval`` reads (the README shows a complete example)::

    folder/queries.json    # [{"id": "q1", "text": "a red circle"},
                           #  {"id": "q2", "image": "queries/q2.png", "target": "image"}]
    folder/judgments.json  # {"q1": {"notes/red.txt": 2, "photos/red.png": 2}, "q2": {...}}
    folder/docs.json       # optional: {"doc-7": {"path": "corpus/doc-7.png"}, ...}

:func:`load_judged_queries` reads them, :func:`run_judged_queries` searches every query in a store
and returns the run, and :func:`evaluate_judged_queries` gives the metrics per query group
(``text->mixed``, ``image->image``, ...) and calibration::

    from omniretrieve import Store, load_embedder
    from omniretrieve.evaluation import evaluate_judged_queries, load_judged_queries

    judged = load_judged_queries("my-queries")       # or queries=..., judgments=...
    with Store(load_embedder("demo"), path="my-store") as store:
        metrics = evaluate_judged_queries(store, judged, k=10)
    metrics["gap"]["all"]   # {"ndcg@10": ..., "recall@10": ..., "mrr@10": ...}

The demo world's own judged set and helpers live in :mod:`omniretrieve.demo.evaluation`.
"""

from __future__ import annotations

from omniretrieve.evaluation.judged import (
    QUERY_PARTS,
    TARGETS,
    JudgedQueries,
    JudgedQuery,
    load_judged_queries,
    source_path,
)
from omniretrieve.evaluation.metrics import (
    Qrels,
    Run,
    evaluate,
    ndcg_at_k,
    per_query,
    recall_at_k,
    reciprocal_rank,
)
from omniretrieve.evaluation.runs import (
    JudgedRun,
    UnknownJudgments,
    embed_judged_queries,
    evaluate_by_group,
    evaluate_judged_queries,
    find_unknown_judgments,
    run_judged_queries,
)

__all__ = [
    "QUERY_PARTS",
    "TARGETS",
    "JudgedQueries",
    "JudgedQuery",
    "JudgedRun",
    "UnknownJudgments",
    "Qrels",
    "Run",
    "embed_judged_queries",
    "evaluate",
    "evaluate_by_group",
    "evaluate_judged_queries",
    "find_unknown_judgments",
    "load_judged_queries",
    "ndcg_at_k",
    "per_query",
    "recall_at_k",
    "reciprocal_rank",
    "run_judged_queries",
    "source_path",
]
