"""The fused column of the rerank evaluation agrees with the store's own runs at both ends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omniretrieve.calibration import DEFAULT_CALIBRATION


def test_fused_runs_span_the_first_stage_and_the_reranker(tmp_path: Path) -> None:
    from omniretrieve.demo.evaluation import demo_judged_queries
    from omniretrieve.demo.hard_world import make_hard_world
    from omniretrieve.demo.rerank_eval import fused_runs, open_indexed
    from omniretrieve.evaluation import run_judged_queries
    from omniretrieve.rerank import load_reranker

    world = make_hard_world(0, n_text_queries=3, n_text_to_image_queries=3, n_distractors=2)
    judged = demo_judged_queries(world)
    alone = load_reranker("demo", first_stage_weight=0.0)
    shipped = load_reranker("demo")  # fused at the weight chosen on validation
    store = open_indexed(world, tmp_path / "store")
    try:
        weights = [0.0, 0.3, shipped.first_stage_weight, 1.0]
        fused = fused_runs(store, judged, alone, weights, k=10, rerank_top_n=20)
        calibrated = run_judged_queries(store, judged, calibration=DEFAULT_CALIBRATION, k=10).run

        def through_store(reranker: Any) -> dict[str, list[str]]:
            return run_judged_queries(
                store, judged, calibration=DEFAULT_CALIBRATION, k=10, reranker=reranker, rerank_top_n=20
            ).run

        reranked_alone, reranked_shipped = through_store(alone), through_store(shipped)
    finally:
        store.close()
    assert fused[1.0].run == calibrated  # all weight on the first stage: its order
    assert fused[0.0].run == reranked_alone  # none: the reranker's order, as Store.search reranks
    # Store.search with the demo reranker as loaded is the fused pipeline the benchmark reports
    assert fused[shipped.first_stage_weight].run == reranked_shipped
    for qid, hits in fused[0.3].hits.items():
        scores = [h.rerank_score for h in hits]
        assert scores == sorted(scores, reverse=True) and len(hits) == 10, qid
        assert all(s is not None and 0.0 <= s <= 1.0 for s in scores)
