"""A cross-encoder whose sigmoid saturates in float32 is still ranked by what it computed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from omniretrieve.rerank import CrossEncoderReranker

LOGITS = {"weak": 16.0, "good": 17.5, "best": 19.0, "other": 16.8}
"""A confident model's logits: their float32 sigmoids are all 0.99999994 or 1.0."""

SURE_NEGATIVE = {"wrong": -8.0}
"""A candidate the same model is sure is wrong."""


class _ConfidentCrossEncoder:
    """Duck-typed one-output CrossEncoder with a sigmoid activation, as sentence-transformers loads one."""

    modalities = ["text"]
    num_labels = 1

    def __init__(self) -> None:
        self.activation_fn = torch.nn.Sigmoid()

    def predict(self, pairs: list[Any], activation_fn: Any = None, **kwargs: Any) -> np.ndarray:
        logits = torch.tensor([(LOGITS | SURE_NEGATIVE)[doc] for _, doc in pairs], dtype=torch.float32)
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


def test_fusion_reads_the_logits_so_a_sure_models_order_survives_a_sure_negative() -> None:
    """Min-max over the logits: a sure negative in the list does not flatten the sure candidates.

    Over sigmoids (even float64 ones) "good" and "best" would normalise to 0.99999998 and 1, and
    the first stage's small preference for "good" would win at any weight above 0.
    """
    reranker = CrossEncoderReranker(_ConfidentCrossEncoder(), first_stage_weight=0.2)  # type: ignore[arg-type]
    docs = ["good", "best", "wrong"]
    results = reranker.rerank("q", docs, first_stage_scores=[1.0, 0.9, 0.0])
    span = LOGITS["best"] - SURE_NEGATIVE["wrong"]
    expected = {
        "best": 0.2 * 0.9 + 0.8 * 1.0,
        "good": 0.2 * 1.0 + 0.8 * (LOGITS["good"] - SURE_NEGATIVE["wrong"]) / span,
        "wrong": 0.0,
    }
    assert [docs[r.index] for r in results] == ["best", "good", "wrong"]
    assert {docs[r.index]: r.score for r in results} == pytest.approx(expected, abs=1e-6)


def test_raw_scores_are_the_logits_in_candidate_order() -> None:
    reranker = CrossEncoderReranker(_ConfidentCrossEncoder(), first_stage_weight=0.0)  # type: ignore[arg-type]
    docs = ["wrong", "best", "good"]
    assert reranker.raw_scores("q", docs) == [(LOGITS | SURE_NEGATIVE)[d] for d in docs]
    from omniretrieve.types import Image

    # a candidate the text-only model cannot read is not scored (kept last by rerank): -inf here
    picture = Image(np.zeros((4, 4, 3), dtype=np.uint8))
    assert reranker.raw_scores("q", ["good", picture]) == [LOGITS["good"], float("-inf")]
