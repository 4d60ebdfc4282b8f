"""A reranker that fuses with the first stage gets the store's calibrated scores, in candidate order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omniretrieve.rerank import RerankResult
from omniretrieve.store import Store
from omniretrieve.testing import FakeEmbedder


class RecordingReranker:
    """Scores by the first stage only (weight 1), remembering what it was given."""

    model_id = "recording"
    first_stage_weight = 1.0

    def __init__(self) -> None:
        self.seen: list[float] | None = None

    def supports(self, modality: Any) -> bool:
        return True

    def rerank(
        self,
        query: Any,
        candidates: Sequence[Any],
        *,
        top_n: int | None = None,
        first_stage_scores: Sequence[float] | None = None,
    ) -> list[RerankResult]:
        assert first_stage_scores is not None and len(first_stage_scores) == len(candidates)
        self.seen = list(first_stage_scores)
        order = sorted(range(len(candidates)), key=lambda i: -first_stage_scores[i])
        return [RerankResult(i, float(first_stage_scores[i])) for i in order]


def test_fusing_reranker_receives_the_first_stage_scores(tmp_path: Path) -> None:
    with Store(FakeEmbedder(16), path=tmp_path / "s") as store:
        store.add([f"document number {i}" for i in range(12)])
        plain = store.search("document number 3", k=5, rerank_top_n=8)
        reranker = RecordingReranker()
        fused = store.search("document number 3", k=5, reranker=reranker, rerank_top_n=8)
    assert reranker.seen is not None and len(reranker.seen) == 8
    assert reranker.seen == sorted(reranker.seen, reverse=True)  # the calibrated order
    assert [h.id for h in fused] == [h.id for h in plain]  # weight 1: the first stage decides
