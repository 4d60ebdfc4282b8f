"""A cross-encoder whose sigmoid saturates in float32 is still ranked by what it computed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from omniretrieve.rerank import CrossEncoderReranker

LOGITS = {"weak": 16.0, "good": 17.5, "best": 19.0, "other": 16.8}
"""A confident model's logits: their float32 sigmoids are all 0.99999994 or 1.0."""


class _ConfidentCrossEncoder:
    """Duck-typed one-output CrossEncoder with a sigmoid activation, as sentence-transformers loads one."""

    modalities = ["text"]
    num_labels = 1

    def __init__(self) -> None:
        self.activation_fn = torch.nn.Sigmoid()

    def predict(self, pairs: list[Any], activation_fn: Any = None, **kwargs: Any) -> np.ndarray:
        logits = torch.tensor([LOGITS[doc] for _, doc in pairs], dtype=torch.float32)
        activation = self.activation_fn if activation_fn is None else activation_fn
        return activation(logits).numpy()  # float32, as CrossEncoder.predict returns


def test_the_float32_sigmoid_really_saturates() -> None:
    model = _ConfidentCrossEncoder()
    assert len(set(model.predict([("q", d) for d in LOGITS]).tolist())) <= 2


def test_a_saturated_model_is_ranked_by_its_logits_and_scored_in_float64() -> None:
    reranker = CrossEncoderReranker(_ConfidentCrossEncoder(), first_stage_weight=0.0)  # type: ignore[arg-type]
    docs = list(LOGITS)
    results = reranker.rerank("q", docs)
    assert [docs[r.index] for r in results] == ["best", "good", "other", "weak"]
    for r in results:
        logit = float(np.float32(LOGITS[docs[r.index]]))  # what the model returned
        assert math.isclose(r.score, 1.0 / (1.0 + math.exp(-logit)), rel_tol=0, abs_tol=1e-15)
    assert len({r.score for r in results}) == 4 and all(r.score < 1.0 for r in results)


def test_fusion_reads_the_scores_in_float64() -> None:
    """Min-max over the float64 sigmoids: the model's order among its near-1 scores survives fusion."""
    reranker = CrossEncoderReranker(_ConfidentCrossEncoder(), first_stage_weight=0.5)  # type: ignore[arg-type]
    docs = ["weak", "best", "good"]
    results = reranker.rerank("q", docs, first_stage_scores=[1.0, 0.0, 0.9])
    p = {d: 1.0 / (1.0 + math.exp(-float(np.float32(LOGITS[d])))) for d in docs}
    good = (p["good"] - p["weak"]) / (p["best"] - p["weak"])  # min-max of the reranker's scores
    assert docs[results[0].index] == "good"
    assert math.isclose(results[0].score, 0.5 * 0.9 + 0.5 * good, abs_tol=1e-6)
    assert {docs[r.index]: round(r.score, 6) for r in results[1:]} == {"weak": 0.5, "best": 0.5}
