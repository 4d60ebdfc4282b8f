"""Loading options reach sentence-transformers through ``model_kwargs`` (as in ``HuggingFaceEmbeddings``)."""

from __future__ import annotations

from typing import Any

import pytest
import sentence_transformers
from omniretrieve.demo import model_path
from omniretrieve.models import directory_revision
from omniretrieve.testing.fakes import FakeEmbedder
from pydantic import ValidationError

from langchain_omniretrieve import OmniretrieveEmbeddings, OmniretrieveReranker


def test_embeddings_model_kwargs_reach_the_model() -> None:
    embeddings = OmniretrieveEmbeddings(
        model=str(model_path()), device="cpu", model_kwargs={"truncate_dim": 16, "local_files_only": True}
    )
    assert len(embeddings.embed_query("a red circle")) == 16
    assert embeddings.omniretrieve_embedder.revision == directory_revision(model_path())  # type: ignore[attr-defined]


def test_model_kwargs_with_a_ready_embedder_are_refused() -> None:
    with pytest.raises(ValidationError, match="model_kwargs"):
        OmniretrieveEmbeddings(embedder=FakeEmbedder(8), model_kwargs={"revision": "main"})


class _Reached(Exception):
    """Raised by the spy instead of loading."""


def test_reranker_model_kwargs_reach_the_cross_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    class Spy(sentence_transformers.CrossEncoder):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen.append(kwargs)
            raise _Reached

    monkeypatch.setattr(sentence_transformers, "CrossEncoder", Spy)
    with pytest.raises(_Reached):
        OmniretrieveReranker(model="org/reranker", model_kwargs={"revision": "v2", "backend": "onnx"})
    assert seen[0]["revision"] == "v2" and seen[0]["backend"] == "onnx"
